package app

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// revokedTokens are access tokens revoked in every way there is, and one
// that is not.
type revokedTokens struct {
	loggedOut, clientRevoked, killed, control string
}

// revokeEveryWay revokes tokens through the API: one by the kill switch,
// one by logout, one client_credentials token through /oauth2/revoke.
func revokeEveryWay(t *testing.T, e *accountEnv, admin oauthClient) revokedTokens {
	t.Helper()
	if _, code := e.cli(t, "users", "create", "--email", "root@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
		t.Fatal("users create --admin failed")
	}
	if _, code := e.cli(t, "users", "create", "--email", "user@example.com", "--password-stdin", "--verified"); code != 0 {
		t.Fatal("users create failed")
	}
	var r revokedTokens
	r.killed = e.login(t, "user@example.com", strongPassword)
	// iat has whole seconds: step over them, so that the kill switch cuts
	// off only the token issued before it.
	e.s.clock.Advance(1100 * time.Millisecond)
	adminAT := e.login(t, "root@example.com", strongPassword)
	cut := e.s.clock.Now()
	e.s.clock.Advance(1100 * time.Millisecond)
	if code, body, _ := call(t, "POST", e.url("/v1/admin/tokens/revoke-before"), map[string]string{"before": cut.UTC().Format(time.RFC3339Nano)}, bearer(adminAT)...); code != 200 {
		t.Fatalf("revoke-before = %d %v", code, body)
	}
	r.loggedOut = e.login(t, "user@example.com", strongPassword)
	r.control = e.login(t, "user@example.com", strongPassword)
	if code, body, _ := call(t, "POST", e.url("/v1/auth/logout"), nil, bearer(r.loggedOut)...); code/100 != 2 {
		t.Fatalf("logout = %d %v", code, body)
	}
	r.clientRevoked = e.clientToken(t, admin, "")
	if code, body, _ := form(t, e.url("/oauth2/revoke"), url.Values{"token": {r.clientRevoked}}, admin.ID, admin.Secret); code != 200 {
		t.Fatalf("revoke = %d %v", code, body)
	}
	return r
}

// meStatus is the status of GET /v1/me with tok on the server at base.
func meStatus(t *testing.T, base, tok string) int {
	t.Helper()
	code, body, h := call(t, "GET", base+"/v1/me", nil, bearer(tok)...)
	if code == 503 && (body["code"] != "service_unavailable" || h.Get("Retry-After") == "") {
		t.Errorf("GET /v1/me = 503 %v (Retry-After %q), want code service_unavailable with Retry-After", body, h.Get("Retry-After"))
	}
	return code
}

// wantRevoked checks, on the server at base, that the revoked tokens are
// refused by /v1/me and inactive by introspection, and that the control
// token works.
func wantRevoked(t *testing.T, base string, introspector oauthClient, r revokedTokens) {
	t.Helper()
	for what, tok := range map[string]string{"logged out": r.loggedOut, "revoked by its client": r.clientRevoked, "cut off by the kill switch": r.killed} {
		if code := meStatus(t, base, tok); code != 401 {
			t.Errorf("%s: /v1/me with a token %s = %d, want 401", base, what, code)
		}
		code, body, _ := form(t, base+"/oauth2/introspect", url.Values{"token": {tok}}, introspector.ID, introspector.Secret)
		if code != 200 || body["active"] != false {
			t.Errorf("%s: introspection of a token %s = %d %v, want active false", base, what, code, body)
		}
	}
	if code := meStatus(t, base, r.control); code != 200 {
		t.Errorf("%s: /v1/me with a live token = %d, want 200", base, code)
	}
}

// TestRevocationSurvivesRestartEmbedded: the embedded default keeps its
// ephemeral state in process, so a restart empties it; revocations come
// back from SQLite.
func TestRevocationSurvivesRestartEmbedded(t *testing.T) {
	e := newAccountEnv(t, nil)
	admin := e.newClient(t, "ops", "introspect revoke")
	r := revokeEveryWay(t, e, admin)
	wantRevoked(t, e.s.public, admin, r)

	if err := e.s.stop(); err != nil {
		t.Fatal(err)
	}
	restarted := startServerWithClock(t, testConfig(t, e.cfgEnv), e.s.clock)
	wantRevoked(t, restarted.public, admin, r)
}

// TestRevocationSurvivesRedisLossPostgresRedis: two nodes; Redis loses
// every key of the installation (as a restart without persistence does).
// At no moment does either node accept a revoked token: until the deny
// list is rebuilt from PostgreSQL they answer 503, then 401.
func TestRevocationSurvivesRedisLossPostgresRedis(t *testing.T) {
	env := postgresRedisEnv(t)
	e := newAccountEnv(t, env)
	other := startServerWithClock(t, testConfig(t, e.cfgEnv), e.s.clock)
	admin := e.newClient(t, "ops", "introspect revoke")
	r := revokeEveryWay(t, e, admin)
	nodes := []string{e.s.public, other.public}
	for _, n := range nodes {
		wantRevoked(t, n, admin, r)
	}

	if err := testenv.FlushRedisPrefix(context.Background(), env["GATEHOUSE_REDIS_URL"], env["GATEHOUSE_REDIS_KEY_PREFIX"]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	unavailable := 0
	for _, n := range nodes {
		for {
			for _, tok := range []string{r.loggedOut, r.clientRevoked, r.killed} {
				switch code := meStatus(t, n, tok); code {
				case 401:
				case 503:
					unavailable++
				default:
					t.Fatalf("%s: /v1/me with a revoked token after Redis lost its data = %d, want 401 or 503", n, code)
				}
				code, body, _ := form(t, n+"/oauth2/introspect", url.Values{"token": {tok}}, admin.ID, admin.Secret)
				if code == 200 && body["active"] != false {
					t.Fatalf("%s: introspection of a revoked token after Redis lost its data = %v", n, body)
				}
			}
			code := meStatus(t, n, r.control)
			if code == 200 {
				break
			}
			if code != 503 || time.Now().After(deadline) {
				t.Fatalf("%s: /v1/me with a live token = %d while the deny list is rebuilt, want 503 then 200", n, code)
			}
			unavailable++
			time.Sleep(20 * time.Millisecond)
		}
		wantRevoked(t, n, admin, r)
	}
	t.Logf("%d requests answered 503 while the deny list was rebuilt", unavailable)
}

// TestAccessTokenDiesAtExp: Gatehouse allows no clock skew on the exp of
// the tokens it issued itself (other servers verifying with
// pkg/accesstoken keep theirs). The shortest lifetime allowed is a minute,
// so this test waits one out, in parallel with the others.
func TestAccessTokenDiesAtExp(t *testing.T) {
	t.Parallel()
	e := newAccountEnv(t, map[string]string{"GATEHOUSE_ACCESS_TOKEN_TTL": "1m"})
	if _, code := e.cli(t, "users", "create", "--email", "user@example.com", "--password-stdin", "--verified"); code != 0 {
		t.Fatal("users create failed")
	}
	admin := e.newClient(t, "ops", "introspect")
	tok := e.login(t, "user@example.com", strongPassword)
	exp := time.Unix(int64(claimsOf(t, tok)["exp"].(float64)), 0)
	if code := meStatus(t, e.s.public, tok); code != 200 {
		t.Fatalf("/v1/me with a fresh token = %d", code)
	}
	// The server's clock jumps past exp instead of the test sleeping a
	// minute.
	e.s.clock.Advance(exp.Add(time.Second).Sub(e.s.clock.Now()))
	if code := meStatus(t, e.s.public, tok); code != 401 {
		t.Errorf("/v1/me a second after exp = %d, want 401", code)
	}
	if body := e.introspect(t, admin, tok); body["active"] != false {
		t.Errorf("introspection a second after exp = %v, want active false", body)
	}
}
