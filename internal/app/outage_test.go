package app

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// outageEnv is a server whose PostgreSQL sits behind a proxy the test can
// cut and whose Redis is a private server the test can stop.
type outageEnv struct {
	*accountEnv
	db    *testenv.Proxy
	redis *testenv.RedisServer
}

func newOutageEnv(t *testing.T) *outageEnv {
	t.Helper()
	dbURL := testenv.PostgresURL(t)
	rs := testenv.PrivateRedis(t)
	p := testenv.NewProxy(t, testenv.HostPort(t, dbURL))
	e := newAccountEnv(t, map[string]string{
		"GATEHOUSE_DATABASE_URL":       p.Via(dbURL),
		"GATEHOUSE_DATABASE_MIN_CONNS": "0",
		"GATEHOUSE_REDIS_URL":          rs.URL,
		"GATEHOUSE_REDIS_KEY_PREFIX":   "gatehouse_outage:",
	})
	return &outageEnv{accountEnv: e, db: p, redis: rs}
}

// rawCall sends a request and returns the status, headers and raw body.
func rawCall(t *testing.T, method, target, contentType, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	res, raw := request(t, method, target, contentType, []byte(body), header...)
	return res.StatusCode, res.Header, string(raw)
}

// leaks are fragments of backend names, addresses and driver messages that
// no response body may carry during an outage.
var leaks = []string{"postgres", "redis", "127.0.0.1", "refused", "dial", "EOF", "connect", "rediskv", "store:", "kv:"}

func noLeak(t *testing.T, what, body string, allowed ...string) {
	t.Helper()
	for _, l := range leaks {
		if slices.Contains(allowed, l) {
			continue
		}
		if strings.Contains(strings.ToLower(body), strings.ToLower(l)) {
			t.Errorf("%s: body says %q: %s", what, l, body)
		}
	}
}

// wantProblem503 checks an outage answered as a problem: 503
// service_unavailable with Retry-After, and nothing about the backend.
func wantProblem503(t *testing.T, what string, code int, h http.Header, body string) {
	t.Helper()
	var p map[string]any
	_ = json.Unmarshal([]byte(body), &p)
	if code != 503 || p["code"] != "service_unavailable" || h.Get("Retry-After") != "5" ||
		!strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
		t.Errorf("%s = %d Retry-After=%q %s, want 503 service_unavailable with Retry-After 5", what, code, h.Get("Retry-After"), body)
	}
	noLeak(t, what, body)
}

// wantOAuth503 checks an outage answered in RFC 6749's shape: 503
// temporarily_unavailable with Retry-After.
func wantOAuth503(t *testing.T, what string, code int, h http.Header, body string) {
	t.Helper()
	var p map[string]any
	_ = json.Unmarshal([]byte(body), &p)
	if code != 503 || p["error"] != "temporarily_unavailable" || h.Get("Retry-After") != "5" || p["error_description"] == nil {
		t.Errorf("%s = %d Retry-After=%q %s, want 503 temporarily_unavailable with Retry-After 5", what, code, h.Get("Retry-After"), body)
	}
	noLeak(t, what, body)
}

// readyDuringOutage checks /readyz on both listeners while down is out:
// the public body says only ok/unavailable, the admin one names backends
// and quotes the error.
func readyDuringOutage(t *testing.T, e *outageEnv, down, up string) {
	t.Helper()
	code, _, body := rawCall(t, "GET", e.s.public+"/readyz", "", "")
	var pub struct {
		Status string                    `json:"status"`
		Checks map[string]map[string]any `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &pub); err != nil {
		t.Fatalf("public readyz %q: %v", body, err)
	}
	if code != 503 || pub.Status != "unavailable" || pub.Checks[down]["status"] != "unavailable" || pub.Checks[up]["status"] != "ok" {
		t.Errorf("public readyz = %d %s", code, body)
	}
	for name, c := range pub.Checks {
		if len(c) != 1 {
			t.Errorf("public readyz check %s has more than a status: %v", name, c)
		}
	}
	noLeak(t, "public readyz", body, "redis") // the check's name
	for _, l := range []string{"memory", "sqlite", "backend", "error"} {
		if strings.Contains(body, l) {
			t.Errorf("public readyz says %q: %s", l, body)
		}
	}

	code, _, body = rawCall(t, "GET", e.s.admin+"/readyz", "", "")
	var adm struct {
		Checks map[string]map[string]any `json:"checks"`
	}
	_ = json.Unmarshal([]byte(body), &adm)
	msg, _ := adm.Checks[down]["error"].(string)
	if code != 503 || adm.Checks[down]["backend"] == nil || !strings.Contains(msg, "127.0.0.1") {
		t.Errorf("admin readyz = %d %s, want the backend and the error text", code, body)
	}
}

// TestOutagesAnswer503 takes PostgreSQL, then Redis, away from a running
// server: every affected endpoint must answer 503 with Retry-After (a
// problem, or RFC 6749's temporarily_unavailable on the OAuth endpoints),
// never 500, 401, 400 invalid_grant or an inactive introspection, and
// recover when the backend is back.
func TestOutagesAnswer503(t *testing.T) {
	e := newOutageEnv(t)
	e.signUp(t, "outage@example.com")
	login := func() (int, http.Header, string) {
		return rawCall(t, "POST", e.url("/v1/auth/login"), "application/json",
			`{"email":"outage@example.com","password":"`+strongPassword+`"}`)
	}
	code, _, body := login()
	var sess map[string]any
	if err := json.Unmarshal([]byte(body), &sess); err != nil || code != 200 {
		t.Fatalf("login = %d %s", code, body)
	}
	access, refresh := sess["access_token"].(string), sess["refresh_token"].(string)
	intro := e.newClient(t, "introspector", "introspect")
	introspect := func(tok string) (int, http.Header, string) {
		return rawCall(t, "POST", e.url("/oauth2/introspect"), "application/x-www-form-urlencoded",
			url.Values{"token": {tok}}.Encode(), intro.basic()...)
	}
	// Warm the client cache: the endpoints must fail on the outage, not
	// on authenticating the client.
	if code, _, body := introspect(refresh); code != 200 || !strings.Contains(body, `"active":true`) {
		t.Fatalf("introspect before = %d %s", code, body)
	}
	register := func(email string) (int, http.Header, string) {
		return rawCall(t, "POST", e.url("/v1/auth/register"), "application/json",
			`{"email":"`+email+`","password":"`+strongPassword+`","name":"X"}`)
	}
	refreshCall := func() (int, http.Header, string) {
		return rawCall(t, "POST", e.url("/oauth2/token"), "application/x-www-form-urlencoded",
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}.Encode())
	}
	me := func() (int, http.Header, string) {
		return rawCall(t, "GET", e.url("/v1/me"), "", "", bearer(access)...)
	}

	t.Run("PostgreSQL", func(t *testing.T) {
		e.db.Cut()
		code, h, body := login()
		wantProblem503(t, "login", code, h, body)
		code, h, body = register("new-pg@example.com")
		wantProblem503(t, "register", code, h, body)
		code, h, body = me()
		wantProblem503(t, "/v1/me", code, h, body)
		code, h, body = refreshCall()
		wantOAuth503(t, "refresh", code, h, body)
		code, h, body = introspect(refresh)
		wantOAuth503(t, "introspect a refresh token", code, h, body)
		code, h, body = rawCall(t, "POST", e.url("/v1/auth/password/forgot"), "application/json", `{"email":"outage@example.com"}`)
		wantProblem503(t, "forgot-password", code, h, body)
		// An unknown address must answer as a known one does: the outage
		// says nothing about which accounts exist.
		code, h, body = rawCall(t, "POST", e.url("/v1/auth/password/forgot"), "application/json", `{"email":"nobody@example.com"}`)
		wantProblem503(t, "forgot-password, unknown address", code, h, body)
		readyDuringOutage(t, e, "database", "redis")

		e.db.Restore()
		waitFor(t, "login after PostgreSQL is back", func() bool { code, _, _ := login(); return code == 200 })
	})

	t.Run("Redis", func(t *testing.T) {
		e.redis.Stop()
		code, h, body := login()
		wantProblem503(t, "login", code, h, body)
		code, h, body = register("new-redis@example.com")
		wantProblem503(t, "register", code, h, body)
		code, h, body = me()
		wantProblem503(t, "/v1/me", code, h, body)
		code, h, body = introspect(access)
		wantOAuth503(t, "introspect an access token", code, h, body)
		readyDuringOutage(t, e, "redis", "database")

		e.redis.Start()
		waitFor(t, "login after Redis is back", func() bool { code, _, _ := login(); return code == 200 })
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
