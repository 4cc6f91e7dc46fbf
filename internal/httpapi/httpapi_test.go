package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse/gatehouse/internal/logging"
	"github.com/gatehouse/gatehouse/internal/store"
)

type fixture struct {
	handler http.Handler
	logs    *bytes.Buffer
	reg     *prometheus.Registry
}

func newFixture(t *testing.T, mount func(rt *Router)) *fixture {
	t.Helper()
	logs := &bytes.Buffer{}
	log := logging.New(logs, "debug", "json")
	rt := NewRouter(ErrorWriter{Log: log})
	mount(rt)
	reg := prometheus.NewRegistry()
	ips, err := NewClientIPResolver([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	h := Chain(rt, RequestID(), Observe(log, NewMetrics(reg), ips), Recover(log),
		SecurityHeaders(true), CORS([]string{"https://app.example.com"}), BodyLimit(1024))
	return &fixture{handler: h, logs: logs, reg: reg}
}

func (f *fixture) do(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder) Problem {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %s)", ct, rec.Body)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != rec.Code || p.Code == "" || p.Title == "" || !strings.HasPrefix(p.Type, ProblemTypePrefix) {
		t.Errorf("malformed problem %+v for status %d", p, rec.Code)
	}
	return p
}

type echoBody struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func mountAll(rt *Router) {
	rt.Handle("POST /echo", func(w http.ResponseWriter, r *http.Request) error {
		var b echoBody
		if err := DecodeJSON(r, &b); err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, b)
	})
	rt.Handle("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) error {
		if r.PathValue("id") == "missing" {
			return fmt.Errorf("load item: %w", store.ErrNotFound)
		}
		return WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	})
	rt.Handle("GET /boom", func(w http.ResponseWriter, r *http.Request) error {
		return errors.New("pq: password authentication failed for user secret_admin")
	})
	rt.Handle("GET /panic", func(w http.ResponseWriter, r *http.Request) error {
		panic("secret internal state")
	})
	rt.Handle("POST /invalid", func(w http.ResponseWriter, r *http.Request) error {
		return Validation(FieldError{Field: "email", Rule: "format", Message: "not an email address"})
	})
}

func TestUnknownRouteIsProblem(t *testing.T) {
	f := newFixture(t, mountAll)
	rec := f.do(t, httptest.NewRequest("GET", "/nope", nil))
	if rec.Code != 404 {
		t.Fatalf("status = %d", rec.Code)
	}
	if p := decodeProblem(t, rec); p.Code != "not_found" || p.RequestID == "" {
		t.Errorf("problem = %+v", p)
	}
}

func TestWrongMethodIsProblemWithAllow(t *testing.T) {
	f := newFixture(t, mountAll)
	rec := f.do(t, httptest.NewRequest("DELETE", "/items/1", nil))
	if rec.Code != 405 {
		t.Fatalf("status = %d", rec.Code)
	}
	if p := decodeProblem(t, rec); p.Code != "method_not_allowed" {
		t.Errorf("problem = %+v", p)
	}
	if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("Allow = %q", allow)
	}
}

func TestRequestID(t *testing.T) {
	f := newFixture(t, mountAll)
	req := httptest.NewRequest("GET", "/items/1", nil)
	req.Header.Set("X-Request-ID", "client-chosen-42")
	rec := f.do(t, req)
	if got := rec.Header().Get("X-Request-ID"); got != "client-chosen-42" {
		t.Errorf("echoed X-Request-ID = %q", got)
	}
	if !strings.Contains(f.logs.String(), `"request_id":"client-chosen-42"`) || !strings.Contains(f.logs.String(), `"route":"/items/{id}"`) {
		t.Errorf("access log line lacks the request ID or route: %s", f.logs)
	}

	for _, bad := range []string{"", "has space", "new\nline", strings.Repeat("x", 200)} {
		req := httptest.NewRequest("GET", "/items/1", nil)
		if bad != "" {
			req.Header.Set("X-Request-ID", bad)
		}
		rec := f.do(t, req)
		got := rec.Header().Get("X-Request-ID")
		if got == "" || got == bad || len(got) != 32 {
			t.Errorf("incoming %q: response X-Request-ID = %q, want a generated one", bad, got)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	f := newFixture(t, mountAll)
	tests := []struct {
		name, body, contentType string
		status                  int
		code                    string
	}{
		{"ok", `{"name":"a","count":2}`, "application/json", 200, ""},
		{"ok charset", `{"name":"a"}`, "application/json; charset=utf-8", 200, ""},
		{"malformed", `{"name":`, "application/json", 400, "invalid_json"},
		{"syntax", `{name: "a"}`, "application/json", 400, "invalid_json"},
		{"empty", ``, "application/json", 400, "invalid_json"},
		{"wrong type", `{"count":"two"}`, "application/json", 400, "invalid_json"},
		{"not object", `[1,2]`, "application/json", 400, "invalid_json"},
		{"unknown field", `{"nmae":"a"}`, "application/json", 400, "invalid_json"},
		{"trailing", `{"name":"a"} {"name":"b"}`, "application/json", 400, "invalid_json"},
		{"form", `name=a`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"too large", `{"name":"` + strings.Repeat("a", 2000) + `"}`, "application/json", 413, "request_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/echo", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			rec := f.do(t, req)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.status, rec.Body)
			}
			if tt.code != "" {
				if p := decodeProblem(t, rec); p.Code != tt.code {
					t.Errorf("code = %q, want %q", p.Code, tt.code)
				}
			}
		})
	}
	// A body over the limit without Content-Length is cut off while reading.
	req := httptest.NewRequest("POST", "/echo", io.MultiReader(strings.NewReader(`{"name":"`), strings.NewReader(strings.Repeat("a", 4000)+`"}`)))
	req.ContentLength = -1
	rec := f.do(t, req)
	if rec.Code != 413 {
		t.Errorf("chunked oversize body: status = %d", rec.Code)
	}
}

func TestErrorMappingNeverLeaksInternals(t *testing.T) {
	f := newFixture(t, mountAll)
	rec := f.do(t, httptest.NewRequest("GET", "/items/missing", nil))
	if p := decodeProblem(t, rec); rec.Code != 404 || p.Code != "not_found" {
		t.Errorf("mapped ErrNotFound: %d %+v", rec.Code, p)
	}

	for _, path := range []string{"/boom", "/panic"} {
		rec := f.do(t, httptest.NewRequest("GET", path, nil))
		if rec.Code != 500 {
			t.Fatalf("%s: status = %d", path, rec.Code)
		}
		p := decodeProblem(t, rec)
		if p.Code != "internal_error" || strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("%s: body leaks internals: %s", path, rec.Body)
		}
	}
	if !strings.Contains(f.logs.String(), "secret_admin") || !strings.Contains(f.logs.String(), "secret internal state") {
		t.Errorf("5xx causes not logged server-side: %s", f.logs)
	}
}

func TestValidationProblem(t *testing.T) {
	f := newFixture(t, mountAll)
	rec := f.do(t, httptest.NewRequest("POST", "/invalid", nil))
	p := decodeProblem(t, rec)
	if rec.Code != 422 || p.Code != "validation_failed" || len(p.Errors) != 1 || p.Errors[0].Field != "email" {
		t.Errorf("validation problem = %d %+v", rec.Code, p)
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, mountAll)
	rec := f.do(t, httptest.NewRequest("GET", "/items/1", nil))
	for k, want := range map[string]string{
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "DENY",
		"Referrer-Policy":           "no-referrer",
		"Content-Security-Policy":   APIContentSecurityPolicy,
		"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		"Cache-Control":             "no-store",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestCORS(t *testing.T) {
	f := newFixture(t, mountAll)

	req := httptest.NewRequest("GET", "/items/1", nil)
	req.Header.Set("Origin", "https://app.example.com")
	rec := f.do(t, req)
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" || rec.Header().Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("allowed origin not granted: %v", rec.Header())
	}

	req = httptest.NewRequest("GET", "/items/1", nil)
	req.Header.Set("Origin", "https://evil.example.com")
	rec = f.do(t, req)
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin granted: %v", rec.Header())
	}

	req = httptest.NewRequest("OPTIONS", "/echo", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type, authorization, x-evil")
	rec = f.do(t, req)
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Headers") != "Content-Type, Authorization" {
		t.Errorf("preflight = %d %v", rec.Code, rec.Header())
	}

	req = httptest.NewRequest("OPTIONS", "/echo", nil)
	req.Header.Set("Origin", "https://evil.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	rec = f.do(t, req)
	if rec.Code != 403 || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight = %d %v", rec.Code, rec.Header())
	}
}

func TestMetricsByRoutePattern(t *testing.T) {
	f := newFixture(t, mountAll)
	for _, p := range []string{"/items/1", "/items/2", "/nope/a", "/nope/b"} {
		f.do(t, httptest.NewRequest("GET", p, nil))
	}
	m, _ := NewMetricsForTest(f.reg)
	if got := testutil.ToFloat64(m.WithLabelValues("GET", "/items/{id}", "200")); got != 2 {
		t.Errorf("requests for /items/{id} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.WithLabelValues("GET", "unmatched", "404")); got != 2 {
		t.Errorf("unmatched requests = %v, want 2", got)
	}
}

// NewMetricsForTest finds the request counter registered in reg.
func NewMetricsForTest(reg *prometheus.Registry) (*prometheus.CounterVec, error) {
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_http_requests_total",
		Help: "HTTP requests answered, by method, route pattern and status.",
	}, []string{"method", "route", "status"})
	err := reg.Register(cv)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		return are.ExistingCollector.(*prometheus.CounterVec), nil
	}
	return cv, err
}

func TestClientIP(t *testing.T) {
	res, err := NewClientIPResolver([]string{"10.0.0.0/8", "192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ remote, xff, want string }{
		{"203.0.113.5:1234", "1.2.3.4", "203.0.113.5"},                       // untrusted peer: header ignored
		{"10.1.2.3:1234", "198.51.100.7", "198.51.100.7"},                    // trusted proxy
		{"10.1.2.3:1234", "6.6.6.6, 198.51.100.7, 10.9.9.9", "198.51.100.7"}, // rightmost untrusted wins
		{"192.168.1.1:80", "garbage", "192.168.1.1"},
		{"[::ffff:10.0.0.1]:80", "2001:db8::1", "2001:db8::1"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := res.Resolve(r); got != tt.want {
			t.Errorf("remote %s xff %q: got %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

func TestLimitKey(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"198.51.100.7", "198.51.100.7"},
		{"::ffff:198.51.100.7", "198.51.100.7"},
		{"::ffff:c633:6407", "198.51.100.7"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:DB8:1:2:ffff::", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
		{"", ""},
		{"not-an-ip", "not-an-ip"},
	}
	for _, tt := range tests {
		if got := LimitKey(tt.ip); got != tt.want {
			t.Errorf("LimitKey(%q) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}

func TestReadiness(t *testing.T) {
	dbUp := true
	h := &Health{Checks: []Check{
		{Name: "database", Backend: "sqlite", Ping: func(context.Context) error {
			if !dbUp {
				return errors.New("dial tcp: connection refused")
			}
			return nil
		}},
		{Name: "redis", Backend: "memory", Ping: func(context.Context) error { return nil }},
	}}
	f := newFixture(t, h.Routes)
	rec := f.do(t, httptest.NewRequest("GET", "/readyz", nil))
	var body Readiness
	json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != 200 || body.Status != "ok" || body.Checks["database"].Status != "ok" || body.Checks["redis"].Status != "ok" {
		t.Errorf("ready = %d %s", rec.Code, rec.Body)
	}

	dbUp = false
	rec = f.do(t, httptest.NewRequest("GET", "/readyz", nil))
	body = Readiness{}
	json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != 503 || body.Checks["database"].Status != "unavailable" || body.Checks["redis"].Status != "ok" {
		t.Errorf("not ready = %d %s", rec.Code, rec.Body)
	}
	for _, leak := range []string{"connection refused", "sqlite", "memory", "reachable", "error", "backend"} {
		if strings.Contains(rec.Body.String(), leak) {
			t.Errorf("public readiness body says %q: %s", leak, rec.Body)
		}
	}

	// The admin listener's readiness names backends and quotes the error.
	h.Detailed = true
	rec = f.do(t, httptest.NewRequest("GET", "/readyz", nil))
	body = Readiness{}
	json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != 503 || body.Checks["database"].Backend != "sqlite" || body.Checks["database"].Error != "dial tcp: connection refused" ||
		body.Checks["redis"].Backend != "memory" || body.Checks["redis"].Error != "" {
		t.Errorf("detailed not ready = %d %s", rec.Code, rec.Body)
	}
	h.Detailed = false

	dbUp = true
	if rec = f.do(t, httptest.NewRequest("GET", "/readyz", nil)); rec.Code != 200 {
		t.Errorf("did not recover: %d", rec.Code)
	}
	for _, p := range []string{"/healthz", "/livez"} {
		if rec := f.do(t, httptest.NewRequest("GET", p, nil)); rec.Code != 200 {
			t.Errorf("%s = %d", p, rec.Code)
		}
	}
}

// TestCancellation maps a cancelled context to client_closed_request only
// when the client went away; a cancellation inside the server is a 500,
// logged. Either way the body's status is the status sent.
func TestCancellation(t *testing.T) {
	f := newFixture(t, func(rt *Router) {
		rt.Handle("GET /inner", func(w http.ResponseWriter, r *http.Request) error {
			return fmt.Errorf("db: %w", context.Canceled)
		})
	})
	rec := f.do(t, httptest.NewRequest("GET", "/inner", nil))
	if p := decodeProblem(t, rec); rec.Code != 500 || p.Code != "internal_error" {
		t.Errorf("server-side cancellation = %d %s, want 500 internal_error", rec.Code, p.Code)
	}
	if !strings.Contains(f.logs.String(), "request failed") {
		t.Errorf("server-side cancellation not logged: %s", f.logs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec = f.do(t, httptest.NewRequest("GET", "/inner", nil).WithContext(ctx))
	if p := decodeProblem(t, rec); p.Code != "client_closed_request" {
		t.Errorf("client gone = %d %s, want client_closed_request", rec.Code, p.Code)
	}
}

func TestInvalidTextFromTheStoreIs422(t *testing.T) {
	p := (*ErrorTable)(nil).Problem(fmt.Errorf("get user: %w", fmt.Errorf("%w: driver says no", store.ErrInvalidText)))
	if p.Status != http.StatusUnprocessableEntity || p.Code != "validation_failed" {
		t.Errorf("ErrInvalidText = %d %s, want 422 validation_failed", p.Status, p.Code)
	}
}
