package authzcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// Limits of the check API.
const (
	// MaxBatch is the most checks in one check-batch request.
	MaxBatch = 100
	// maxCheckBody and maxBatchBody bound the request bodies.
	maxCheckBody = 64 << 10
	maxBatchBody = 1 << 20
	// maxSubject bounds a subject: user IDs are UUIDs.
	maxSubject = 128
)

var (
	// ErrForbiddenSubject is a user's token asking about another subject
	// (403 forbidden): users may check only for themselves.
	ErrForbiddenSubject = errors.New("authzcheck: a user may check only their own permissions")
	// ErrInsufficientScope is a client's token without the authz:check
	// scope (403 insufficient_scope).
	ErrInsufficientScope = errors.New("authzcheck: the client lacks the authz:check scope")
)

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrForbiddenSubject, http.StatusForbidden, "forbidden", "A user's token may check only that user's own permissions; leave subject out or use your own ID."),
		httpapi.MapError(ErrInsufficientScope, http.StatusForbidden, "insufficient_scope", "A client needs the scope "+apis.ScopeAuthzCheck+" to check permissions."),
	}
}

// Handlers serve the check API.
type Handlers struct {
	Checker *Checker
	Auth    auth.Authenticator
	// Locate returns the country (ISO 3166-1 alpha-2) of an IP address,
	// "" when unknown; nil leaves request.country empty for users.
	Locate func(ip string) string
	Now    func() time.Time
}

// Routes mounts POST /v1/authz/check and POST /v1/authz/check-batch.
func (h *Handlers) Routes(rt *httpapi.Router) {
	rt.Handle("POST /v1/authz/check", auth.Require(h.Auth, h.check))
	rt.Handle("POST /v1/authz/check-batch", auth.Require(h.Auth, h.checkBatch))
}

// CheckRequest is one check as the API takes it.
type CheckRequest struct {
	Subject    string           `json:"subject"`
	Permission string           `json:"permission"`
	Resource   *ResourceRequest `json:"resource"`
	Context    *ContextRequest  `json:"context"`
}

// ResourceRequest is the resource of a check (resource.* in conditions).
type ResourceRequest struct {
	Type           string         `json:"type"`
	ID             string         `json:"id"`
	OrganizationID string         `json:"organization_id"`
	OwnerID        string         `json:"owner_id"`
	Attributes     map[string]any `json:"attributes"`
}

// ContextRequest is the request context of a check (request.* in
// conditions), taken from a client's check only.
type ContextRequest struct {
	IP      string `json:"ip"`
	Time    string `json:"time"` // RFC 3339
	MFA     bool   `json:"mfa"`
	Country string `json:"country"`
}

// BatchRequest is the body of check-batch.
type BatchRequest struct {
	Checks []CheckRequest `json:"checks"`
}

// CheckResponse is the answer to one check.
type CheckResponse struct {
	Allowed  bool          `json:"allowed"`
	Reason   string        `json:"reason"`
	Matched  []MatchJSON   `json:"matched"`
	DeniedBy *MatchJSON    `json:"denied_by,omitempty"`
	Explain  []ExplainStep `json:"explain,omitempty"`
}

// MatchJSON is a rule that decided: the grant, the role holding the rule
// and the chain of roles from the granted one to it, by name.
type MatchJSON struct {
	GrantID string   `json:"grant_id"`
	Role    string   `json:"role"`
	Via     []string `json:"via"`
}

// ExplainStep is one grant or role considered, by name.
type ExplainStep struct {
	Role    string `json:"role"`
	GrantID string `json:"grant_id"`
	Applied bool   `json:"applied"`
	Why     string `json:"why"`
}

// BatchResponse is the answer to check-batch, in the order of the checks.
type BatchResponse struct {
	Results []CheckResponse `json:"results"`
}

// caller is what the principal allows: whose permissions it may check and
// the request context of a user checking themselves.
type caller struct {
	userID   string // set for a user's token
	defaults authz.Request
	// keyPermissions are a personal API key's permissions (nil: no
	// key, or a key without such a limit): the caller holds only what
	// both the key and its owner hold.
	keyPermissions []string
}

// ReasonKeyNotPermitted is the reason of a check denied because the
// personal API key it was made with was not given the permission, whatever
// its owner holds.
const ReasonKeyNotPermitted = "api_key_not_permitted"

// restrict denies out when the caller's API key does not cover
// permission.
func (c caller) restrict(permission string, out CheckResponse) CheckResponse {
	if c.keyPermissions == nil || slices.ContainsFunc(c.keyPermissions, func(p string) bool { return authz.Matches(p, permission) }) {
		return out
	}
	out.Allowed, out.Reason, out.DeniedBy = false, ReasonKeyNotPermitted, nil
	return out
}

func (h *Handlers) caller(r *http.Request) (caller, error) {
	p, _ := auth.FromContext(r.Context())
	if p.UserID == "" || p.IsClient() {
		if !p.IsClient() || !p.HasScope(apis.ScopeAuthzCheck) {
			return caller{}, ErrInsufficientScope
		}
		return caller{}, nil
	}
	ip := httpapi.ClientIP(r.Context())
	if ip == "" {
		ip = peerIP(r.RemoteAddr)
	}
	c := caller{userID: p.UserID, keyPermissions: p.KeyPermissions, defaults: authz.Request{
		IP:   ip,
		Time: h.now(),
		MFA:  slices.Contains(p.AMR, "mfa"),
	}}
	if h.Locate != nil && ip != "" {
		c.defaults.Country = h.Locate(ip)
	}
	return c, nil
}

func peerIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

func (h *Handlers) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handlers) check(w http.ResponseWriter, r *http.Request) error {
	c, err := h.caller(r)
	if err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxCheckBody)
	var in CheckRequest
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	q, fe, err := h.query(c, &in, "")
	if err != nil {
		return err
	}
	if fe != nil {
		return httpapi.Validation(fe...)
	}
	q.Explain = explain(r)
	out, err := h.decide(r, q)
	if err != nil {
		return err
	}
	out = c.restrict(q.Permission, out)
	return writeJSON(w, &out)
}

func (h *Handlers) checkBatch(w http.ResponseWriter, r *http.Request) error {
	c, err := h.caller(r)
	if err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBatchBody)
	var in BatchRequest
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	if len(in.Checks) == 0 || len(in.Checks) > MaxBatch {
		return httpapi.Validation(httpapi.FieldError{Field: "checks", Rule: "count",
			Message: "Send 1 to " + strconv.Itoa(MaxBatch) + " checks."})
	}
	queries := make([]Query, len(in.Checks))
	var fes []httpapi.FieldError
	for i := range in.Checks {
		q, fe, err := h.query(c, &in.Checks[i], "checks["+strconv.Itoa(i)+"].")
		if err != nil {
			return err
		}
		fes = append(fes, fe...)
		queries[i] = q
	}
	if fes != nil {
		return httpapi.Validation(fes...)
	}
	ex := explain(r)
	out := BatchResponse{Results: make([]CheckResponse, len(queries))}
	for i := range queries {
		queries[i].Explain = ex
		if out.Results[i], err = h.decide(r, queries[i]); err != nil {
			return err
		}
		out.Results[i] = c.restrict(queries[i].Permission, out.Results[i])
	}
	return writeJSON(w, &out)
}

func explain(r *http.Request) bool {
	if r.URL.RawQuery == "" {
		return false
	}
	v, _ := strconv.ParseBool(r.URL.Query().Get("explain"))
	return v
}

// query validates one check for the caller; field names start with
// prefix. A user asking about someone else is ErrForbiddenSubject.
func (h *Handlers) query(c caller, in *CheckRequest, prefix string) (Query, []httpapi.FieldError, error) {
	var fe []httpapi.FieldError
	q := Query{Subject: in.Subject, Permission: in.Permission}
	if c.userID != "" {
		if in.Subject != "" && in.Subject != c.userID {
			return Query{}, nil, ErrForbiddenSubject
		}
		// A user's own context comes from their request and token; what
		// the body says is ignored (mfa must not be forged).
		q.Subject, q.Request = c.userID, c.defaults
	} else {
		switch {
		case in.Subject == "":
			fe = append(fe, httpapi.FieldError{Field: prefix + "subject", Rule: "required", Message: "A client must name the subject (a user ID) to check."})
		case len(in.Subject) > maxSubject:
			fe = append(fe, httpapi.FieldError{Field: prefix + "subject", Rule: "max_length", Message: "The subject is at most " + strconv.Itoa(maxSubject) + " characters."})
		}
		if in.Context != nil {
			fe = h.context(&q.Request, in.Context, prefix, fe)
		}
	}
	if !authz.ValidPermission(in.Permission) || strings.Contains(in.Permission, authz.Wildcard) {
		fe = append(fe, httpapi.FieldError{Field: prefix + "permission", Rule: "permission",
			Message: "A permission to check is resource:action (lowercase letters, digits, '_', '-', '.'), without a wildcard."})
	}
	if res := in.Resource; res != nil {
		q.Resource = authz.Resource{Type: res.Type, ID: res.ID, OrganizationID: res.OrganizationID, OwnerID: res.OwnerID, Attributes: res.Attributes}
	}
	return q, fe, nil
}

// context applies a client's request context to req.
func (h *Handlers) context(req *authz.Request, in *ContextRequest, prefix string, fe []httpapi.FieldError) []httpapi.FieldError {
	if in.IP != "" {
		if a, err := netip.ParseAddr(in.IP); err != nil {
			fe = append(fe, httpapi.FieldError{Field: prefix + "context.ip", Rule: "ip", Message: "An IPv4 or IPv6 address."})
		} else {
			req.IP = a.Unmap().String()
		}
	}
	if in.Time != "" {
		t, err := time.Parse(time.RFC3339, in.Time)
		if err != nil {
			fe = append(fe, httpapi.FieldError{Field: prefix + "context.time", Rule: "rfc3339", Message: "A time in RFC 3339 form, e.g. 2026-01-02T15:04:05Z."})
		}
		req.Time = t
	}
	if in.Country != "" {
		if len(in.Country) != 2 || !isLetter(in.Country[0]) || !isLetter(in.Country[1]) {
			fe = append(fe, httpapi.FieldError{Field: prefix + "context.country", Rule: "country", Message: "An ISO 3166-1 alpha-2 country code, e.g. DE."})
		} else {
			req.Country = strings.ToUpper(in.Country)
		}
	}
	req.MFA = in.MFA
	return fe
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

func (h *Handlers) decide(r *http.Request, q Query) (CheckResponse, error) {
	if q.Request.Time.IsZero() {
		q.Request.Time = h.now()
	}
	d, roles, err := h.Checker.check(r.Context(), q)
	if err != nil {
		return CheckResponse{}, err
	}
	return response(d, roles), nil
}

// response is the API form of d: roles by name.
func response(d authz.Decision, roles map[string]authz.Role) CheckResponse {
	name := func(id string) string {
		if r, ok := roles[id]; ok && r.Name != "" {
			return r.Name
		}
		return id
	}
	match := func(m authz.Match) MatchJSON {
		via := make([]string, len(m.Via))
		for i, id := range m.Via {
			via[i] = name(id)
		}
		return MatchJSON{GrantID: m.GrantID, Role: name(m.Role), Via: via}
	}
	out := CheckResponse{Allowed: d.Allowed, Reason: d.Reason, Matched: make([]MatchJSON, len(d.Matched))}
	for i, m := range d.Matched {
		out.Matched[i] = match(m)
	}
	if d.DeniedBy != nil {
		m := match(*d.DeniedBy)
		out.DeniedBy = &m
	}
	if d.Explain != nil {
		out.Explain = make([]ExplainStep, len(d.Explain))
		for i, s := range d.Explain {
			out.Explain[i] = ExplainStep{Role: name(s.Role), GrantID: s.GrantID, Applied: s.Applied, Why: s.Why}
		}
	}
	return out
}

// Header values shared by every answer (net/http only reads them).
var (
	contentTypeJSON = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// buffers recycles the encoding buffers of answers.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeJSON writes v with one Write from a recycled buffer, so that
// net/http sends it with a Content-Length.
func writeJSON(w http.ResponseWriter, v any) error {
	buf := buffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			buffers.Put(buf)
		}
	}()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return err
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = noStore
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(buf.Bytes())
	return err
}
