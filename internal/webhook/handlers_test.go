package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

// tokens authenticates "Bearer admin" as an administrator and "Bearer
// user" as a user who is not.
type tokens struct{}

func (tokens) Authenticate(r *http.Request) (auth.Principal, error) {
	tok, ok := auth.BearerToken(r)
	switch {
	case !ok:
		return auth.Principal{}, auth.ErrNoCredentials
	case tok == "admin":
		return auth.Principal{UserID: admin.ActorID}, nil
	case tok == "user":
		return auth.Principal{UserID: "0190d5c4-7a6b-7c3e-9f00-0000000000u1"}, nil
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
	table, err := httpapi.NewErrorTable(webhook.Errors())
	if err != nil {
		t.Fatalf("the error table refuses webhook.Errors: %v", err)
	}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.DiscardHandler), Errors: table})
	(&webhook.Handlers{Admin: auth.Admin{Authn: tokens{}, Authz: adminOnly(admin.ActorID)}, Service: e.svc}).Routes(rt)
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
	// Every route is documented, and every documented webhook admin
	// route is served.
	served := map[string]bool{}
	for _, r := range rt.Routes() {
		served[r.Method+" "+r.Path] = true
		if item := doc.Paths.Find(r.Path); item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is not in api/openapi.yaml", r.Method, r.Path)
		}
	}
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/v1/admin/webhooks") {
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
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, raw, err)
		}
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

// problem checks a problem answer's status and code.
func problem(t *testing.T, what string, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["code"] != wantCode {
		t.Errorf("%s = %d %v, want %d %s", what, status, body, wantStatus, wantCode)
	}
}

func TestHandlers(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	c := newClient(t, e)

	// Administrators only.
	st, body := c.do("", "GET", "/v1/admin/webhooks", nil)
	problem(t, "no token", st, body, 401, "unauthorized")
	st, body = c.do("user", "POST", "/v1/admin/webhooks", map[string]any{"url": "https://x.example", "events": []string{"*"}})
	problem(t, "not an administrator", st, body, 403, "forbidden")
	if list, _ := e.svc.ListEndpoints(t.Context()); len(list) != 0 {
		t.Fatal("a non-administrator created an endpoint")
	}

	// Create: the secret once.
	st, created := c.do("admin", "POST", "/v1/admin/webhooks", map[string]any{
		"url": "https://hooks.example.com/in", "events": []string{"user.*"}, "description": "CRM",
	})
	if st != 201 {
		t.Fatalf("create = %d %v", st, created)
	}
	id, _ := created["id"].(string)
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || created["enabled"] != true || created["organization_id"] != nil || created["disabled_reason"] != nil {
		t.Errorf("created = %v", created)
	}
	for _, path := range []string{"/v1/admin/webhooks", "/v1/admin/webhooks/" + id} {
		st, body := c.do("admin", "GET", path, nil)
		b, _ := json.Marshal(body)
		if st != 200 || strings.Contains(string(b), "whsec_") || strings.Contains(string(b), "secret\"") || !strings.Contains(string(b), id) {
			t.Errorf("GET %s = %d %s: want the endpoint without its secret", path, st, b)
		}
	}
	st, body = c.do("admin", "POST", "/v1/admin/webhooks", map[string]any{"url": "http://127.0.0.1/x", "events": []string{"user.nope"}})
	problem(t, "bad create", st, body, 422, "validation_failed")
	if errs, _ := body["errors"].([]any); len(errs) != 2 || !strings.Contains(errs[0].(map[string]any)["message"].(string), "loopback") {
		t.Errorf("bad create errors = %v", body["errors"])
	}
	st, body = c.do("admin", "POST", "/v1/admin/webhooks", map[string]any{"url": "https://x.example", "events": []string{"*"}, "secret": "mine"})
	problem(t, "unknown member", st, body, 400, "invalid_json")

	// PATCH.
	st, body = c.do("admin", "PATCH", "/v1/admin/webhooks/"+id, map[string]any{"events": []string{"user.created", "session.*"}, "enabled": false})
	if st != 200 || body["enabled"] != false || body["disabled_reason"] != "admin" || len(body["events"].([]any)) != 2 {
		t.Errorf("patch = %d %v", st, body)
	}
	st, body = c.do("admin", "POST", "/v1/admin/webhooks/"+id+"/test", nil)
	problem(t, "test of a disabled endpoint", st, body, 409, "endpoint_disabled")
	if st, body = c.do("admin", "PATCH", "/v1/admin/webhooks/"+id, map[string]any{"enabled": true}); st != 200 || body["disabled_reason"] != nil {
		t.Errorf("enable = %d %v", st, body)
	}

	// Rotate.
	st, body = c.do("admin", "POST", "/v1/admin/webhooks/"+id+"/rotate-secret", nil)
	if rotated, _ := body["secret"].(string); st != 200 || !strings.HasPrefix(rotated, "whsec_") || rotated == secret || len(body) != 1 {
		t.Errorf("rotate = %d %v", st, body)
	}
	if _, body = c.do("admin", "GET", "/v1/admin/webhooks/"+id, nil); body["previous_secret_expires_at"] != e.clock.Now().Add(overlap).Format(time.RFC3339) {
		t.Errorf("after rotation: previous_secret_expires_at = %v", body["previous_secret_expires_at"])
	}

	// Test, then the delivery log.
	st, test := c.do("admin", "POST", "/v1/admin/webhooks/"+id+"/test", nil)
	if st != 202 || test["event_type"] != "webhook.test" || test["status"] != "pending" || test["next_attempt_at"] == nil {
		t.Errorf("test = %d %v", st, test)
	}
	dID := test["id"].(string)
	e.clock.Advance(time.Minute)
	e.publish(t, event.UserRegistered{User: e.mustUser(t, "ann@example.com")})
	if _, err := e.store.RecordWebhookAttempt(t.Context(), dID, store.WebhookAttempt{
		At: e.clock.Now(), StatusCode: 500, Latency: 87 * time.Millisecond, Error: "HTTP 500", Response: "oops",
	}, store.DeliveryFailed, time.Time{}); err != nil {
		t.Fatal(err)
	}
	st, body = c.do("admin", "GET", "/v1/admin/webhooks/"+id+"/deliveries", nil)
	list, _ := body["deliveries"].([]any)
	if st != 200 || len(list) != 2 || body["next_cursor"] != "" {
		t.Fatalf("deliveries = %d %v", st, body)
	}
	newest, oldest := list[0].(map[string]any), list[1].(map[string]any)
	if newest["event_type"] != "user.created" || oldest["id"] != dID || oldest["status"] != "failed" || oldest["next_attempt_at"] != nil {
		t.Errorf("deliveries = %v", list)
	}
	want := []any{map[string]any{"at": e.clock.Now().Format(time.RFC3339), "status_code": 500.0, "latency_ms": 87.0, "error": "HTTP 500", "response": "oops"}}
	if got := oldest["attempts"]; !jsonEqual(got, want) {
		t.Errorf("attempts = %v, want %v", got, want)
	}
	// Filters and pages.
	st, body = c.do("admin", "GET", "/v1/admin/webhooks/"+id+"/deliveries?status=failed&event_type=webhook.test&since="+url.QueryEscape(start.Format(time.RFC3339)), nil)
	if list, _ := body["deliveries"].([]any); st != 200 || len(list) != 1 {
		t.Errorf("filtered deliveries = %d %v", st, body)
	}
	st, body = c.do("admin", "GET", "/v1/admin/webhooks/"+id+"/deliveries?limit=1", nil)
	cursor, _ := body["next_cursor"].(string)
	if list, _ := body["deliveries"].([]any); st != 200 || len(list) != 1 || cursor == "" {
		t.Fatalf("first page = %d %v", st, body)
	}
	st, body = c.do("admin", "GET", "/v1/admin/webhooks/"+id+"/deliveries?limit=1&cursor="+url.QueryEscape(cursor), nil)
	if list, _ := body["deliveries"].([]any); st != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != dID || body["next_cursor"] != "" {
		t.Errorf("second page = %d %v", st, body)
	}
	st, body = c.do("admin", "GET", "/v1/admin/webhooks/"+id+"/deliveries?status=lost&limit=0&since=yesterday", nil)
	problem(t, "bad filters", st, body, 422, "validation_failed")
	if errs, _ := body["errors"].([]any); len(errs) != 3 {
		t.Errorf("bad filters name %v, want status, since and limit", errs)
	}
	st, body = c.do("admin", "GET", "/v1/admin/webhooks/"+id+"/deliveries?cursor=nonsense", nil)
	problem(t, "foreign cursor", st, body, 400, "invalid_cursor")
	st, body = c.do("admin", "GET", "/v1/admin/webhooks/whep_none/deliveries", nil)
	problem(t, "deliveries of an unknown endpoint", st, body, 404, "not_found")

	// Retry and replay.
	st, body = c.do("admin", "POST", "/v1/admin/webhooks/deliveries/"+dID+"/retry", nil)
	if st != 202 || body["status"] != "pending" || len(body["attempts"].([]any)) != 1 {
		t.Errorf("retry = %d %v", st, body)
	}
	st, body = c.do("admin", "POST", "/v1/admin/webhooks/deliveries/"+dID+"/retry", nil)
	problem(t, "retry of a pending delivery", st, body, 409, "delivery_pending")
	st, body = c.do("admin", "POST", "/v1/admin/webhooks/deliveries/whdl_none/retry", nil)
	problem(t, "retry of an unknown delivery", st, body, 404, "not_found")
	if _, err := e.store.RecordWebhookAttempt(t.Context(), dID, store.WebhookAttempt{At: e.clock.Now(), StatusCode: 503}, store.DeliveryFailed, time.Time{}); err != nil {
		t.Fatal(err)
	}
	st, body = c.do("admin", "POST", "/v1/admin/webhooks/"+id+"/replay", map[string]any{"since": start.Format(time.RFC3339), "status": "failed"})
	if st != 202 || body["replayed"] != 1.0 {
		t.Errorf("replay = %d %v", st, body)
	}
	st, body = c.do("admin", "POST", "/v1/admin/webhooks/"+id+"/replay", map[string]any{"status": "pending"})
	problem(t, "bad replay", st, body, 422, "validation_failed")
	st, body = c.do("admin", "POST", "/v1/admin/webhooks/"+id+"/replay", map[string]any{"since": "yesterday"})
	problem(t, "replay since no time", st, body, 400, "invalid_json")

	// Stats.
	st, body = c.do("admin", "GET", "/v1/admin/webhooks/"+id+"/stats", nil)
	day, _ := body["24h"].(map[string]any)
	wantDay := map[string]any{
		"since": e.clock.Now().Add(-24 * time.Hour).Format(time.RFC3339), "deliveries": 2.0, "delivered": 0.0, "failed": 0.0,
		"pending": 2.0, "success_rate": nil, "attempts": 2.0, "attempts_succeeded": 0.0, "latency_p50_ms": 5.0,
		"latency_p95_ms": 100.0, "failures_by_status": map[string]any{"500": 1.0, "503": 1.0},
	}
	if st != 200 || !jsonEqual(day, wantDay) || body["7d"] == nil {
		t.Errorf("stats = %d %v, want 24h %v", st, body, wantDay)
	}

	// Delete.
	if st, body = c.do("admin", "DELETE", "/v1/admin/webhooks/"+id, nil); st != 204 {
		t.Errorf("delete = %d %v", st, body)
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/admin/webhooks/" + id}, {"DELETE", "/v1/admin/webhooks/" + id},
		{"PATCH", "/v1/admin/webhooks/" + id}, {"POST", "/v1/admin/webhooks/" + id + "/rotate-secret"},
		{"POST", "/v1/admin/webhooks/" + id + "/test"}, {"GET", "/v1/admin/webhooks/" + id + "/stats"},
		{"POST", "/v1/admin/webhooks/" + id + "/replay"},
	} {
		var b any
		if r.method == "PATCH" {
			b = map[string]any{}
		} else if strings.HasSuffix(r.path, "/replay") {
			b = map[string]any{"since": start.Format(time.RFC3339)}
		}
		st, body := c.do("admin", r.method, r.path, b)
		problem(t, r.method+" "+r.path+" after delete", st, body, 404, "not_found")
	}
	actions := e.audit(t, id, secret)
	wantActions := []string{"webhook.endpoint_created", "webhook.endpoint_updated", "webhook.endpoint_updated", "webhook.secret_rotated",
		"webhook.test_sent", "webhook.delivery_retried", "webhook.replayed", "webhook.endpoint_deleted"}
	if !slices.Equal(actions, wantActions) {
		t.Errorf("audit = %v, want %v", actions, wantActions)
	}
}

// jsonEqual compares two decoded JSON values.
func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
