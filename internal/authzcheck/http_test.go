package authzcheck

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// fakeAuth maps bearer tokens to principals.
type fakeAuth map[string]auth.Principal

func (a fakeAuth) Authenticate(r *http.Request) (auth.Principal, error) {
	tok, ok := auth.BearerToken(r)
	if !ok {
		return auth.Principal{}, auth.ErrNoCredentials
	}
	p, ok := a[tok]
	if !ok {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	return p, nil
}

// newServer serves the check API of f's Checker.
func newServer(t testing.TB, c *Checker, a auth.Authenticator, now func() time.Time) *httptest.Server {
	t.Helper()
	table, err := httpapi.NewErrorTable(Errors())
	if err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.DiscardHandler), Errors: table})
	h := &Handlers{Checker: c, Auth: a, Now: now, Locate: func(ip string) string {
		if ip == "127.0.0.1" {
			return "DE"
		}
		return ""
	}}
	h.Routes(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, srv *httptest.Server, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %d %s", path, res.StatusCode, raw)
	}
	return res.StatusCode, out
}

func TestCheckAPI(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		f := newFixture(t, st)
		u, other := f.user(t), f.user(t)
		reader := f.role(t, store.Role{Name: "reader", Allow: allow("invoices:read")})
		accountant := f.role(t, store.Role{Name: "accountant", Parents: []string{reader.ID},
			Deny: allow("invoices:delete"), Allow: []store.RolePermission{{Permission: "invoices:approve", Condition: "request.mfa"}}})
		g := f.grant(t, store.RoleGrant{UserID: u.ID, RoleID: accountant.ID})
		f.grant(t, store.RoleGrant{UserID: other.ID, RoleID: reader.ID, ValidUntil: t0.Add(-time.Hour)})

		srv := newServer(t, f.c, fakeAuth{
			"user":        {UserID: u.ID, ClientID: "app", AMR: []string{"pwd"}},
			"user-mfa":    {UserID: u.ID, AMR: []string{"pwd", "mfa"}},
			"client":      {ClientID: "rs", Scopes: []string{apis.ScopeAuthzCheck}},
			"client-weak": {ClientID: "rs2", Scopes: []string{apis.ScopeIntrospect}},
		}, f.clock.Now)

		t.Run("self", func(t *testing.T) {
			code, out := post(t, srv, "/v1/authz/check", "user", `{"permission":"invoices:read"}`)
			want := map[string]any{"allowed": true, "reason": "allowed",
				"matched": []any{map[string]any{"grant_id": g.ID, "role": "reader", "via": []any{"accountant", "reader"}}}}
			if code != 200 || !cmp.Equal(out, want) {
				t.Errorf("self check: %d %s", code, cmp.Diff(want, out))
			}
			code, out = post(t, srv, "/v1/authz/check", "user", `{"subject":"`+u.ID+`","permission":"invoices:delete"}`)
			if code != 200 || out["allowed"] != false || out["reason"] != "denied_by_rule" ||
				!cmp.Equal(out["denied_by"], map[string]any{"grant_id": g.ID, "role": "accountant", "via": []any{"accountant"}}) {
				t.Errorf("deny: %d %v", code, out)
			}
		})
		t.Run("self context comes from the token", func(t *testing.T) {
			// A body claiming mfa is ignored for a user.
			code, out := post(t, srv, "/v1/authz/check", "user", `{"permission":"invoices:approve","context":{"mfa":true}}`)
			if code != 200 || out["allowed"] != false || out["reason"] != "condition_failed" {
				t.Errorf("forged mfa: %d %v", code, out)
			}
			code, out = post(t, srv, "/v1/authz/check", "user-mfa", `{"permission":"invoices:approve"}`)
			if code != 200 || out["allowed"] != true {
				t.Errorf("token with mfa: %d %v", code, out)
			}
		})
		t.Run("other subject", func(t *testing.T) {
			code, out := post(t, srv, "/v1/authz/check", "user", `{"subject":"`+other.ID+`","permission":"invoices:read"}`)
			if code != 403 || out["code"] != "forbidden" {
				t.Errorf("%d %v", code, out)
			}
		})
		t.Run("client", func(t *testing.T) {
			code, out := post(t, srv, "/v1/authz/check", "client", `{"subject":"`+u.ID+`","permission":"invoices:approve","context":{"mfa":true,"ip":"10.1.2.3","country":"fr"}}`)
			if code != 200 || out["allowed"] != true {
				t.Errorf("client with context: %d %v", code, out)
			}
			code, out = post(t, srv, "/v1/authz/check", "client", `{"subject":"`+u.ID+`","permission":"invoices:approve"}`)
			if code != 200 || out["allowed"] != false {
				t.Errorf("client without mfa: %d %v", code, out)
			}
			// The context's time decides the grant's window.
			past := t0.Add(-2 * time.Hour).Format(time.RFC3339)
			code, out = post(t, srv, "/v1/authz/check", "client", `{"subject":"`+other.ID+`","permission":"invoices:read","context":{"time":"`+past+`"}}`)
			if code != 200 || out["allowed"] != true {
				t.Errorf("client at a past time: %d %v", code, out)
			}
			code, out = post(t, srv, "/v1/authz/check", "client", `{"subject":"`+other.ID+`","permission":"invoices:read"}`)
			if code != 200 || out["allowed"] != false {
				t.Errorf("client now: %d %v", code, out)
			}
			code, out = post(t, srv, "/v1/authz/check", "client", `{"permission":"invoices:read"}`)
			if code != 422 || !hasField(out, "subject") {
				t.Errorf("client without subject: %d %v", code, out)
			}
			code, out = post(t, srv, "/v1/authz/check", "client-weak", `{"subject":"`+u.ID+`","permission":"invoices:read"}`)
			if code != 403 || out["code"] != "insufficient_scope" {
				t.Errorf("client without the scope: %d %v", code, out)
			}
		})
		t.Run("unknown subject", func(t *testing.T) {
			for _, s := range []string{"0190a0a0-0000-7000-8000-000000000000", "nobody"} {
				code, out := post(t, srv, "/v1/authz/check", "client", `{"subject":"`+s+`","permission":"invoices:read"}`)
				if code != 200 || out["allowed"] != false || out["reason"] != "no_matching_grant" {
					t.Errorf("%s: %d %v", s, code, out)
				}
			}
		})
		t.Run("validation", func(t *testing.T) {
			for body, field := range map[string]string{
				`{"permission":"invoices:*"}`: "permission",
				`{"permission":"*"}`:          "permission",
				`{"permission":"Invoices"}`:   "permission",
				`{}`:                          "permission",
				`{"subject":"x","permission":"a:b","context":{"time":"yesterday"}}`: "context.time",
				`{"subject":"x","permission":"a:b","context":{"ip":"10.0.0"}}`:      "context.ip",
				`{"subject":"x","permission":"a:b","context":{"country":"FRA"}}`:    "context.country",
			} {
				code, out := post(t, srv, "/v1/authz/check", "client", body)
				if code != 422 || !hasField(out, field) {
					t.Errorf("%s: %d %v, want 422 on %s", body, code, out, field)
				}
			}
			for _, body := range []string{`{"permission":`, `{"permission":"a:b","extra":1}`, `[]`} {
				if code, out := post(t, srv, "/v1/authz/check", "client", body); code != 400 || out["code"] != "invalid_json" {
					t.Errorf("%s: %d %v", body, code, out)
				}
			}
			if code, _ := post(t, srv, "/v1/authz/check", "", `{"permission":"a:b"}`); code != 401 {
				t.Errorf("no token: %d", code)
			}
		})
		t.Run("explain", func(t *testing.T) {
			_, out := post(t, srv, "/v1/authz/check", "user", `{"permission":"invoices:read"}`)
			if _, ok := out["explain"]; ok {
				t.Error("explain without ?explain=true")
			}
			code, out := post(t, srv, "/v1/authz/check?explain=true", "user", `{"permission":"invoices:read"}`)
			steps, _ := out["explain"].([]any)
			if code != 200 || len(steps) < 3 {
				t.Fatalf("%d %v", code, out)
			}
			first := steps[0].(map[string]any)
			if first["role"] != "accountant" || first["grant_id"] != g.ID || first["applied"] != true || first["why"] == "" {
				t.Errorf("first step %v", first)
			}
			var named bool
			for _, s := range steps {
				if s.(map[string]any)["role"] == "reader" {
					named = true
				}
			}
			if !named {
				t.Errorf("no step names the inherited role: %v", steps)
			}
		})
		t.Run("batch", func(t *testing.T) {
			body := `{"checks":[{"permission":"invoices:read"},{"permission":"invoices:delete"},{"permission":"payments:read"},{"subject":"` + u.ID + `","permission":"invoices:read"}]}`
			code, out := post(t, srv, "/v1/authz/check-batch", "user", body)
			results, _ := out["results"].([]any)
			if code != 200 || len(results) != 4 {
				t.Fatalf("%d %v", code, out)
			}
			var got []any
			for _, r := range results {
				got = append(got, r.(map[string]any)["reason"])
			}
			if want := []any{"allowed", "denied_by_rule", "no_matching_grant", "allowed"}; !cmp.Equal(got, want) {
				t.Errorf("reasons %v, want %v", got, want)
			}
			code, out = post(t, srv, "/v1/authz/check-batch", "user", `{"checks":[{"permission":"a:b"},{"subject":"`+other.ID+`","permission":"a:b"}]}`)
			if code != 403 || out["code"] != "forbidden" {
				t.Errorf("batch with another subject: %d %v", code, out)
			}
			code, out = post(t, srv, "/v1/authz/check-batch", "client", `{"checks":[{"subject":"x","permission":"a:b"},{"subject":"x","permission":"a"},{"permission":"a:b"}]}`)
			if code != 422 || !hasField(out, "checks[1].permission") || !hasField(out, "checks[2].subject") || hasField(out, "checks[0].permission") {
				t.Errorf("per-check validation: %d %v", code, out)
			}
			var many bytes.Buffer
			many.WriteString(`{"checks":[`)
			for i := range MaxBatch + 1 {
				if i > 0 {
					many.WriteByte(',')
				}
				many.WriteString(`{"permission":"a:b"}`)
			}
			many.WriteString(`]}`)
			for _, b := range []string{`{"checks":[]}`, `{}`, many.String()} {
				if code, out := post(t, srv, "/v1/authz/check-batch", "user", b); code != 422 || !hasField(out, "checks") {
					t.Errorf("count: %d %v", code, out)
				}
			}
			exactly := strings.Replace(many.String(), `{"permission":"a:b"},`, "", 1)
			if code, out := post(t, srv, "/v1/authz/check-batch?explain=true", "user", exactly); code != 200 || len(out["results"].([]any)) != MaxBatch {
				t.Errorf("%d checks: %d", MaxBatch, code)
			}
		})
	})
}

func hasField(problem map[string]any, field string) bool {
	errs, _ := problem["errors"].([]any)
	for _, e := range errs {
		if e.(map[string]any)["field"] == field {
			return true
		}
	}
	return false
}
