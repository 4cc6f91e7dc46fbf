package security_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/gatehouse/gatehouse/api"
	"github.com/gatehouse/gatehouse/api/apitest"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/security"
	"github.com/gatehouse/gatehouse/internal/store"
)

// adminID is the administrator "Bearer admin" authenticates.
var adminID = user(999)

// tokens authenticates "Bearer admin" as an administrator and "Bearer
// user" as a user who is not.
type tokens struct{}

func (tokens) Authenticate(r *http.Request) (auth.Principal, error) {
	tok, ok := auth.BearerToken(r)
	switch {
	case !ok:
		return auth.Principal{}, auth.ErrNoCredentials
	case tok == "admin":
		return auth.Principal{UserID: adminID}, nil
	case tok == "user":
		return auth.Principal{UserID: user(1)}, nil
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

// adminOnly grants every permission to one user, the administrator.
type adminOnly string

func (a adminOnly) Authorize(_ context.Context, p auth.Principal, _, _ string) (bool, error) {
	return p.UserID == string(a), nil
}

// client calls the admin API of a test server, checking every answer
// against the OpenAPI document.
type client struct {
	t      *testing.T
	srv    *httptest.Server
	spec   routers.Router
	server *url.URL
}

func newClient(t *testing.T, e *env) *client {
	t.Helper()
	table, err := httpapi.NewErrorTable(security.Errors())
	if err != nil {
		t.Fatalf("the error table refuses security.Errors: %v", err)
	}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.DiscardHandler), Errors: table})
	(&security.Handlers{Admin: auth.Admin{Authn: tokens{}, Authz: adminOnly(adminID)}, Service: e.svc}).Routes(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)

	apitest.StrictFormats()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.YAML())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range rt.Routes() {
		served[r.Method+" "+r.Path] = true
		if item := doc.Paths.Find(r.Path); item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is not in api/openapi.yaml", r.Method, r.Path)
		}
	}
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/v1/admin/security-") {
			continue
		}
		for method := range item.Operations() {
			if !served[method+" "+path] {
				t.Errorf("api/openapi.yaml documents %s %s, which Routes does not mount", method, path)
			}
		}
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	server, err := url.Parse(doc.Servers[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, srv: srv, spec: router, server: server}
}

// do sends a request with the given bearer token ("" for none) and JSON
// body (nil for none), and returns the status and the decoded body.
func (c *client) do(token, method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.srv.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.srv.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	c.check(req, res, raw)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, raw, err)
	}
	return res.StatusCode, out
}

// check validates an answer against the operation of req in the OpenAPI
// document.
func (c *client) check(req *http.Request, res *http.Response, body []byte) {
	c.t.Helper()
	r := req.Clone(context.Background())
	u := *req.URL
	u.Scheme, u.Host = c.server.Scheme, c.server.Host
	r.URL, r.Host = &u, c.server.Host
	route, params, err := c.spec.FindRoute(r)
	if err != nil {
		c.t.Errorf("%s %s is not in the OpenAPI document: %v", req.Method, req.URL.Path, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.t.Errorf("%s %s answered %d, which the OpenAPI document does not describe: %v\nbody: %.500s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
}

func problem(t *testing.T, what string, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["code"] != wantCode {
		t.Errorf("%s = %d %v, want %d %s", what, status, body, wantStatus, wantCode)
	}
}

func list(body map[string]any, key string) []map[string]any {
	raw, _ := body[key].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, v := range raw {
		m, _ := v.(map[string]any)
		out = append(out, m)
	}
	return out
}

func TestHandlers(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		c := newClient(t, e)
		score := 62
		e.clock.Advance(time.Minute)
		e.record(t, security.Event{Type: security.TypeRiskStepUp, UserID: user(7), IP: "203.0.113.7", Country: "AU", City: "Sydney",
			ASN: 64500, Score: &score, Reasons: []store.SecurityReason{{Code: "impossible_travel", Points: 50}, {Code: "new_country", Points: 12}}})
		stuff(t, e, "198.51.100.7", 100, 12)

		// Access.
		st, body := c.do("", "GET", "/v1/admin/security-events", nil)
		problem(t, "no token", st, body, http.StatusUnauthorized, body["code"].(string))
		st, body = c.do("user", "GET", "/v1/admin/security-events", nil)
		problem(t, "not an admin", st, body, http.StatusForbidden, "forbidden")
		st, body = c.do("user", "POST", "/v1/admin/security-incidents/x/resolve", map[string]any{})
		problem(t, "resolve, not an admin", st, body, http.StatusForbidden, "forbidden")

		// Events: newest first, in pages.
		var got []map[string]any
		path := "/v1/admin/security-events?limit=5"
		for range 10 {
			st, body = c.do("admin", "GET", path, nil)
			if st != http.StatusOK {
				t.Fatalf("events = %d %v", st, body)
			}
			got = append(got, list(body, "events")...)
			next, _ := body["next_cursor"].(string)
			if next == "" {
				break
			}
			path = "/v1/admin/security-events?limit=5&cursor=" + url.QueryEscape(next)
		}
		if len(got) != 13 {
			t.Fatalf("%d events over the pages, want 13", len(got))
		}
		first := got[len(got)-1]
		if first["type"] != "risk_step_up" || first["severity"] != "medium" || first["ip"] != "203.0.113.7" || first["score"] != float64(62) ||
			first["asn"] != float64(64500) || first["incident_id"] != nil || first["user_id"] != user(7) {
			t.Errorf("oldest event = %v", first)
		}
		if loc, _ := first["location"].(map[string]any); loc["country"] != "AU" || loc["city"] != "Sydney" {
			t.Errorf("location = %v", first["location"])
		}
		if r := first["reasons"].([]any); len(r) != 2 || r[0].(map[string]any)["code"] != "impossible_travel" {
			t.Errorf("reasons = %v", first["reasons"])
		}
		// Filters.
		for q, want := range map[string]int{
			"type=risk_step_up":                 1,
			"severity=low":                      12,
			"user_id=" + user(100):              1,
			"ip=198.51.100.7":                   12,
			"since=2036-03-04T05:07:08Z":        12, // after the step-up (start + 1 min)
			"until=2036-03-04T05:07:08Z":        1,
			"type=lockout":                      0,
			"ip=198.51.100.7&severity=critical": 0,
		} {
			st, body := c.do("admin", "GET", "/v1/admin/security-events?"+q, nil)
			if n := len(list(body, "events")); st != http.StatusOK || n != want {
				t.Errorf("?%s = %d, %d events, want %d", q, st, n, want)
			}
		}
		for q, status := range map[string]int{
			"severity=urgent": http.StatusUnprocessableEntity, "since=yesterday": http.StatusUnprocessableEntity,
			"limit=0": http.StatusUnprocessableEntity, "limit=201": http.StatusUnprocessableEntity,
			"cursor=bogus": http.StatusBadRequest, "type=" + strings.Repeat("x", 201): http.StatusUnprocessableEntity,
		} {
			if st, body := c.do("admin", "GET", "/v1/admin/security-events?"+q, nil); st != status {
				t.Errorf("?%.40s = %d %v, want %d", q, st, body, status)
			}
		}

		// Incidents.
		st, body = c.do("admin", "GET", "/v1/admin/security-incidents?status=open&type=credential_stuffing", nil)
		incs := list(body, "incidents")
		if st != http.StatusOK || len(incs) != 1 || body["next_cursor"] != "" {
			t.Fatalf("incidents = %d %v", st, body)
		}
		inc := incs[0]
		if inc["type"] != "credential_stuffing" || inc["status"] != "open" || inc["event_count"] != float64(12) ||
			len(inc["user_ids"].([]any)) != 12 || inc["ips"].([]any)[0] != "198.51.100.7" {
			t.Errorf("incident = %v", inc)
		}
		id := inc["id"].(string)
		if st, body := c.do("admin", "GET", "/v1/admin/security-incidents?status=resolved", nil); st != http.StatusOK || len(list(body, "incidents")) != 0 {
			t.Errorf("resolved = %d %v", st, body)
		}
		if st, body := c.do("admin", "GET", "/v1/admin/security-incidents?status=closed", nil); st != http.StatusUnprocessableEntity {
			t.Errorf("?status=closed = %d %v", st, body)
		}
		st, body = c.do("admin", "GET", "/v1/admin/security-incidents/"+id, nil)
		if st != http.StatusOK || body["id"] != id || len(list(body, "events")) != 12 || body["next_cursor"] != "" {
			t.Errorf("incident %s = %d %v", id, st, body)
		}
		for _, ev := range list(body, "events") {
			if ev["incident_id"] != id {
				t.Errorf("event of the incident: %v", ev)
			}
		}
		st, body = c.do("admin", "GET", "/v1/admin/security-incidents/sinc_nope", nil)
		problem(t, "unknown incident", st, body, http.StatusNotFound, "not_found")

		// Resolve: once.
		st, body = c.do("admin", "POST", "/v1/admin/security-incidents/"+id+"/resolve", map[string]any{"note": "blocked upstream"})
		if st != http.StatusOK || body["status"] != "resolved" || body["note"] != "blocked upstream" || body["resolved_by"] != adminID || body["resolved_at"] == nil {
			t.Errorf("resolve = %d %v", st, body)
		}
		st, body = c.do("admin", "POST", "/v1/admin/security-incidents/"+id+"/resolve", map[string]any{"note": "again"})
		problem(t, "second resolve", st, body, http.StatusConflict, "incident_resolved")
		st, body = c.do("admin", "POST", "/v1/admin/security-incidents/sinc_nope/resolve", map[string]any{})
		problem(t, "resolve unknown", st, body, http.StatusNotFound, "not_found")
		st, body = c.do("admin", "POST", "/v1/admin/security-incidents/"+id+"/resolve", map[string]any{"note": strings.Repeat("n", 2001)})
		problem(t, "long note", st, body, http.StatusUnprocessableEntity, "validation_failed")
		audit, _, err := e.store.ListAuditEvents(context.Background(), store.AuditFilter{SubjectID: id})
		if err != nil || len(audit) != 1 || audit[0].Action != "security.incident_resolved" || audit[0].ActorID != adminID {
			t.Errorf("audit = %+v %v", audit, err)
		}
	})
}
