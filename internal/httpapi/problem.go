// Package httpapi is Gatehouse's HTTP core: the router, the middleware chain,
// RFC 9457 problem responses, JSON decoding and health endpoints. Domain
// packages mount their handlers on a *Router and return errors; this package
// turns every error into a response in one place.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/logging"
	"github.com/gatehouse/gatehouse/internal/store"
)

// ProblemTypePrefix is the URI prefix of every problem type; the stable
// machine-readable code follows it and is repeated in the "code" member.
const ProblemTypePrefix = "urn:gatehouse:problem:"

// Problem is an RFC 9457 problem details object with Gatehouse's stable
// "code" extension member. It implements error, so handlers can return it.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	Code      string       `json:"code"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
	// Rule names the rate-limit rule that refused the request
	// (rate_limited from the rate limiter).
	Rule string `json:"rule,omitempty"`
	// Permission names the permission the caller lacks (forbidden from
	// an RBAC-guarded route).
	Permission string `json:"permission,omitempty"`

	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
	// Header holds extra response headers (e.g. WWW-Authenticate, Allow).
	Header http.Header `json:"-"`
}

// FieldError names one invalid input field and the rule it broke.
type FieldError struct {
	Field   string `json:"field"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Code + ": " + p.Detail
	}
	return p.Code
}

// NewProblem returns a problem with the given status, stable code and detail.
// The title is the standard text of the status.
func NewProblem(status int, code, detail string) *Problem {
	return &Problem{Status: status, Code: code, Title: http.StatusText(status), Detail: detail}
}

// Validation returns the 422 problem for invalid input, naming every field.
func Validation(errs ...FieldError) *Problem {
	p := NewProblem(http.StatusUnprocessableEntity, "validation_failed", "The request has invalid fields.")
	p.Errors = errs
	return p
}

// ErrorMapping is one row of the error table: a sentinel error and the
// problem that answers every error wrapping it. Each domain package
// exports its rows (an Errors function); the wiring builds the one table
// from those lists with NewErrorTable.
type ErrorMapping struct {
	Err    error
	Status int
	Code   string
	Detail string
	// RetryAfter, when positive, is sent as Retry-After (seconds).
	RetryAfter int
}

// MapError returns the row that answers err with the given status, stable
// code and detail.
func MapError(err error, status int, code, detail string) ErrorMapping {
	return ErrorMapping{Err: err, Status: status, Code: code, Detail: detail}
}

// MapUnavailable returns the row of a sentinel error that means a
// retryable outage: 503 service_unavailable with Retry-After:
// RetryAfterUnavailable.
func MapUnavailable(err error, detail string) ErrorMapping {
	return ErrorMapping{Err: err, Status: http.StatusServiceUnavailable, Code: CodeServiceUnavailable,
		Detail: detail, RetryAfter: RetryAfterUnavailable}
}

// baseErrors are the rows of the storage contracts, first in every table.
// An outage (store.ErrUnavailable, kv.ErrUnavailable) comes first: it is
// checked before "not found" so that an error wrapping both can never
// answer 404.
func baseErrors() []ErrorMapping {
	return []ErrorMapping{
		MapUnavailable(store.ErrUnavailable, unavailableDetail),
		MapUnavailable(kv.ErrUnavailable, unavailableDetail),
		MapError(store.ErrNotFound, http.StatusNotFound, "not_found", "The resource was not found."),
		MapError(store.ErrConflict, http.StatusConflict, "conflict", "The resource conflicts with an existing one."),
		MapError(store.ErrInvalidCursor, http.StatusBadRequest, "invalid_cursor", "The pagination cursor is not valid."),
		MapError(store.ErrInvalidText, http.StatusUnprocessableEntity, "validation_failed", "The request holds text that is not valid UTF-8 or contains a NUL character."),
	}
}

// baseTable is the table of a nil *ErrorTable: the base rows only.
var baseTable = &ErrorTable{rows: baseErrors()}

// CodeServiceUnavailable is the problem code of a retryable outage: a
// database, Redis or other dependency that cannot be reached right now.
const CodeServiceUnavailable = "service_unavailable"

// RetryAfterUnavailable is the Retry-After (seconds) sent with every
// outage: long enough for a failover or restart to make progress, short
// enough that a client or load balancer retries soon.
const RetryAfterUnavailable = 5

// unavailableDetail is the one detail of an outage; what failed and why
// goes to the log only.
const unavailableDetail = "The service is temporarily unavailable; try again shortly."

// ErrorTable maps sentinel errors to problems: the one place where errors
// become status codes. It is built once by NewErrorTable and never changes
// after; an error gets the answer of the first row whose sentinel it wraps.
// A nil *ErrorTable holds the base rows only (the storage contracts'
// errors).
type ErrorTable struct {
	rows []ErrorMapping
}

// NewErrorTable builds the table: the base rows (storage and kv outages,
// not found, conflict, invalid cursor, invalid text), then each list in
// the order given. A row that an earlier row would always answer first (the
// same sentinel twice, or a sentinel that wraps an earlier one) could never
// be used and is refused, as is a row without an error, a code or an error
// status; so a more specific error that wraps a general one must come
// before it.
func NewErrorTable(lists ...[]ErrorMapping) (*ErrorTable, error) {
	rows := baseErrors()
	var errs []error
	for _, list := range lists {
		for _, m := range list {
			if err := checkRow(rows, m); err != nil {
				errs = append(errs, err)
				continue
			}
			rows = append(rows, m)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &ErrorTable{rows: rows}, nil
}

func checkRow(rows []ErrorMapping, m ErrorMapping) error {
	if m.Err == nil {
		return fmt.Errorf("httpapi: error table: row %q has no error", m.Code)
	}
	if m.Code == "" || m.Status < 400 || m.Status > 599 || m.RetryAfter < 0 {
		return fmt.Errorf("httpapi: error table: row %q needs a code, a 4xx or 5xx status and no negative Retry-After", m.Err)
	}
	for _, e := range rows {
		if errors.Is(m.Err, e.Err) {
			return fmt.Errorf("httpapi: error table: %q (%s) is already answered by the earlier row %q (%s)", m.Err, m.Code, e.Err, e.Code)
		}
	}
	return nil
}

func (t *ErrorTable) lookup(err error) (ErrorMapping, bool) {
	if t == nil {
		t = baseTable
	}
	for _, m := range t.rows {
		if errors.Is(err, m.Err) {
			return m, true
		}
	}
	return ErrorMapping{}, false
}

// Unavailable reports whether err is a retryable outage (any error the
// table maps to service_unavailable), and the Retry-After to send with
// it. Handlers that write their own error format (OAuth's RFC 6749 bodies)
// use it to answer 503 as the problem responses do.
func (t *ErrorTable) Unavailable(err error) (retryAfter int, ok bool) {
	var p *Problem
	if err == nil || errors.As(err, &p) {
		return 0, false
	}
	if m, found := t.lookup(err); found {
		return m.RetryAfter, m.Code == CodeServiceUnavailable
	}
	return 0, false
}

// Problem maps any error to the problem to send.
func (t *ErrorTable) Problem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return NewProblem(http.StatusRequestEntityTooLarge, "request_too_large",
			"The request body is larger than "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes.")
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; 499 is the de-facto code for that in logs.
		return NewProblem(499, "client_closed_request", "")
	}
	if m, ok := t.lookup(err); ok {
		p := NewProblem(m.Status, m.Code, m.Detail)
		p.RetryAfter = m.RetryAfter
		return p
	}
	return NewProblem(http.StatusInternalServerError, "internal_error", "An unexpected error occurred. Quote the request ID when reporting it.")
}

// ErrorWriter writes errors as problem responses and logs server-side
// failures with the request ID. It never puts err.Error() of an unexpected
// error into a response body.
type ErrorWriter struct {
	Log *slog.Logger
	// Errors maps errors to problems; nil knows the base rows only.
	Errors *ErrorTable
}

// Write sends err as application/problem+json.
func (ew ErrorWriter) Write(w http.ResponseWriter, r *http.Request, err error) {
	p := ew.Errors.Problem(err)
	ctx := r.Context()
	if p.Status == 499 && ctx.Err() == nil {
		// A cancellation the client did not cause (a deadline or shutdown
		// inside the server) is the server's failure.
		p = ew.Errors.Problem(errors.New("internal"))
	}
	if p.Status >= 500 {
		ew.Log.ErrorContext(ctx, "request failed", "error", err.Error(), "method", r.Method, "path", r.URL.Path)
	} else if errors.Is(err, store.ErrInvalidText) {
		// The edge (ValidText) should have refused it: a request field that
		// escapes validation, or text the server made itself.
		ew.Log.WarnContext(ctx, "the database refused text that passed validation", "error", err.Error(), "method", r.Method, "path", r.URL.Path)
	}
	WriteProblem(w, r, p)
}

// WriteProblem sends p as application/problem+json.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	out := *p
	if out.Type == "" {
		out.Type = ProblemTypePrefix + out.Code
	}
	if out.Title == "" {
		out.Title = http.StatusText(out.Status)
	}
	out.RequestID = logging.RequestID(r.Context())
	h := w.Header()
	for k, vs := range p.Header {
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	status := out.Status
	if status == 499 {
		status = http.StatusBadRequest // never sent on the wire to a real client
		out.Status, out.Title = status, http.StatusText(status)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(out)
}

// WriteJSON sends v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
