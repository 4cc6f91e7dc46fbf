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
var errorTable = []mappedError{
	{store.ErrNotFound, http.StatusNotFound, "not_found", "The resource was not found."},
	{store.ErrConflict, http.StatusConflict, "conflict", "The resource conflicts with an existing one."},
	{store.ErrInvalidCursor, http.StatusBadRequest, "invalid_cursor", "The pagination cursor is not valid."},
	{store.ErrInvalidText, http.StatusUnprocessableEntity, "validation_failed", "The request holds text that is not valid UTF-8 or contains a NUL character."},
}

type mappedError struct {
	err    error
	status int
	code   string
	detail string
}

// RegisterError adds a sentinel error to the mapping table. Call it only
// during start-up (package init or wiring), never concurrently with requests.
func RegisterError(err error, status int, code, detail string) {
	errorTable = append(errorTable, mappedError{err, status, code, detail})
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
			return NewProblem(m.status, m.code, m.detail)
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
