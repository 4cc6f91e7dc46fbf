// Package httpapi is Gatehouse's HTTP core: the router, the middleware chain,
// RFC 9457 problem responses, JSON decoding and health endpoints. Domain
// packages mount their handlers on a *Router and return errors; this package
// turns every error into a response in one place.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
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

// errorTable maps domain sentinel errors to problems: the one place where
// errors become status codes. Domain packages add their own with
// RegisterError at wiring time.
//
// An outage (store.ErrUnavailable, kv.ErrUnavailable) comes first: it is
// checked before "not found" so that an error wrapping both can never
// answer 404.
var errorTable = []mappedError{
	{err: store.ErrUnavailable, status: http.StatusServiceUnavailable, code: CodeServiceUnavailable, detail: unavailableDetail, retryAfter: RetryAfterUnavailable},
	{err: kv.ErrUnavailable, status: http.StatusServiceUnavailable, code: CodeServiceUnavailable, detail: unavailableDetail, retryAfter: RetryAfterUnavailable},
	{err: store.ErrNotFound, status: http.StatusNotFound, code: "not_found", detail: "The resource was not found."},
	{err: store.ErrConflict, status: http.StatusConflict, code: "conflict", detail: "The resource conflicts with an existing one."},
	{err: store.ErrInvalidCursor, status: http.StatusBadRequest, code: "invalid_cursor", detail: "The pagination cursor is not valid."},
	{err: store.ErrInvalidText, status: http.StatusUnprocessableEntity, code: "validation_failed", detail: "The request holds text that is not valid UTF-8 or contains a NUL character."},
}

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

type mappedError struct {
	err    error
	status int
	code   string
	detail string
	// retryAfter, when positive, is sent as Retry-After (seconds).
	retryAfter int
}

// RegisterError adds a sentinel error to the mapping table. Call it only
// during start-up (package init or wiring), never concurrently with requests.
func RegisterError(err error, status int, code, detail string) {
	errorTable = append(errorTable, mappedError{err: err, status: status, code: code, detail: detail})
}

// RegisterUnavailable adds a sentinel error that means a retryable outage:
// 503 service_unavailable with Retry-After: RetryAfterUnavailable. The
// same start-up-only rule as RegisterError applies.
func RegisterUnavailable(err error, detail string) {
	errorTable = append(errorTable, mappedError{err: err, status: http.StatusServiceUnavailable,
		code: CodeServiceUnavailable, detail: detail, retryAfter: RetryAfterUnavailable})
}

// Unavailable reports whether err is a retryable outage (any error the
// table maps to service_unavailable), and the Retry-After to send with
// it. Handlers that write their own error format (OAuth's RFC 6749 bodies)
// use it to answer 503 as the problem responses do.
func Unavailable(err error) (retryAfter int, ok bool) {
	var p *Problem
	if err == nil || errors.As(err, &p) {
		return 0, false
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			return m.retryAfter, m.code == CodeServiceUnavailable
		}
	}
	return 0, false
}

// problemFor maps any error to the problem to send.
func problemFor(err error) *Problem {
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
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			p := NewProblem(m.status, m.code, m.detail)
			p.RetryAfter = m.retryAfter
			return p
		}
	}
	return NewProblem(http.StatusInternalServerError, "internal_error", "An unexpected error occurred. Quote the request ID when reporting it.")
}

// ErrorWriter writes errors as problem responses and logs server-side
// failures with the request ID. It never puts err.Error() of an unexpected
// error into a response body.
type ErrorWriter struct {
	Log *slog.Logger
}

// Write sends err as application/problem+json.
func (ew ErrorWriter) Write(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	ctx := r.Context()
	if p.Status == 499 && ctx.Err() == nil {
		// A cancellation the client did not cause (a deadline or shutdown
		// inside the server) is the server's failure.
		p = problemFor(errors.New("internal"))
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
