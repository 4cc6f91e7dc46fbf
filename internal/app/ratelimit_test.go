package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Black-box tests of the rate-limit policy (issue 15): a policy file with
// small limits, counted per client address through a trusted proxy, per
// user and per OAuth client with tiers; the RateLimit headers; 429 with
// the rule and Retry-After; progressive penalties; bypass networks and
// exempt clients; silent rules; the admin report and lifting a block;
// metrics; reloading the file; and one count across nodes.

const testPolicy = `
tiers: [gold]
rules:
  - name: login-ip
    routes: [login]
    key: ip
    limit: 3/1m
  - name: me-user
    routes: ["GET /v1/me"]
    key: user
    limit: 4/1m
    penalty: false
  - name: token-client
    routes: [token]
    key: client
    limit: 2/1m
    tiers:
      gold: 5/1m
  # Counts every client's token requests from this test's address: an
  # exempt client is not counted, a tier does not change it.
  - name: token-ip
    routes: [token]
    key: ip
    limit: 12/1m
    penalty: false
  # A built-in rule, retuned: the feature applies it, after validation.
  - name: register-ip
    routes: [register]
    key: ip
    limit: 2/1h
    penalty: false
  - name: forgot-email
    routes: [email_request]
    key: email
    limit: 1/1h
`

func rateLimitEnv(t *testing.T, base map[string]string, policy string) (map[string]string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rate-limits.yaml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"GATEHOUSE_RATE_LIMITS_FILE":        path,
		"GATEHOUSE_TRUSTED_PROXIES":         "127.0.0.1/32,::1/128",
		"GATEHOUSE_RATE_LIMIT_BYPASS_CIDRS": "198.51.100.0/24",
	}
	for k, v := range base {
		env[k] = v
	}
	return env, path
}

// loginFrom signs in with a wrong password as a client at ip behind the
// trusted proxy, each time for another address (so that no account's
// lockout, which is not a rule, answers instead).
func loginFrom(t *testing.T, e *accountEnv, ip string) (int, map[string]any, map[string][]string) {
	t.Helper()
	return loginAt(t, e.s.public, ip)
}

var loginN atomic.Int64

func loginAt(t *testing.T, base, ip string) (int, map[string]any, map[string][]string) {
	t.Helper()
	email := "nobody-" + strconv.FormatInt(loginN.Add(1), 10) + "@example.com"
	code, body, h := call(t, "POST", base+"/v1/auth/login", map[string]string{"email": email, "password": "wrong password 123"}, "X-Forwarded-For", ip)
	return code, body, h
}

func retryAfter(t *testing.T, h map[string][]string) int {
	t.Helper()
	v := ""
	if vs := h["Retry-After"]; len(vs) > 0 {
		v = vs[0]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("Retry-After = %q, want a positive number of seconds", v)
	}
	return n
}

func header(h map[string][]string, name string) string {
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func TestRateLimitsEmbedded(t *testing.T) {
	env, path := rateLimitEnv(t, nil, testPolicy)
	runRateLimits(t, newAccountEnv(t, env), path)
}

func TestRateLimitsPostgresRedis(t *testing.T) {
	env, path := rateLimitEnv(t, postgresRedisEnv(t), testPolicy)
	e := runRateLimits(t, newAccountEnv(t, env), path)

	// Two nodes sharing Redis keep one count.
	other := startServer(t, testConfig(t, e.cfgEnv))
	const ip = "203.0.113.200"
	for i, node := range []string{e.s.public, other.public, e.s.public} {
		if code, body, _ := loginAt(t, node, ip); code != 401 {
			t.Fatalf("request %d = %d %v, want 401", i+1, code, body)
		}
	}
	if code, body, _ := loginAt(t, other.public, ip); code != 429 || body["rule"] != "login-ip" {
		t.Errorf("fourth request, on the other node = %d %v, want 429 login-ip", code, body)
	}
}

func runRateLimits(t *testing.T, e *accountEnv, policyPath string) *accountEnv {
	t.Run("ByAddressWithHeaders", func(t *testing.T) {
		const ip = "203.0.113.1"
		for i := 1; i <= 3; i++ {
			code, _, h := loginFrom(t, e, ip)
			if code != 401 {
				t.Fatalf("attempt %d = %d, want 401", i, code)
			}
			if p := header(h, "Ratelimit-Policy"); p != `"login-ip";q=3;w=60` {
				t.Errorf("attempt %d RateLimit-Policy = %q", i, p)
			}
			if rl := header(h, "Ratelimit"); !strings.HasPrefix(rl, `"login-ip";r=`+strconv.Itoa(3-i)+";t=") {
				t.Errorf("attempt %d RateLimit = %q, want r=%d", i, rl, 3-i)
			}
		}
		code, body, h := loginFrom(t, e, ip)
		if code != 429 || body["code"] != "rate_limited" || body["rule"] != "login-ip" {
			t.Fatalf("fourth attempt = %d %v, want 429 rate_limited, rule login-ip", code, body)
		}
		first := retryAfter(t, h)
		if first > 20 || !strings.HasPrefix(header(h, "Ratelimit"), `"login-ip";r=0;`) {
			t.Errorf("first refusal: Retry-After %d (want ≤ 20: a token every 20 s), RateLimit %q", first, header(h, "Ratelimit"))
		}
		// Knocking again while refused: blocked, for longer (progressive).
		code, _, h = loginFrom(t, e, ip)
		if second := retryAfter(t, h); code != 429 || second < 55 || second <= first {
			t.Errorf("knocking again = %d, Retry-After %d; want 429 with a block of about a minute", code, second)
		}
		// Another address through the proxy is counted on its own.
		if code, _, _ := loginFrom(t, e, "203.0.113.2"); code != 401 {
			t.Errorf("another address = %d, want 401", code)
		}
		// A bypass network is never limited, and told nothing.
		for i := range 6 {
			code, _, h := loginFrom(t, e, "198.51.100.7")
			if code != 401 || header(h, "Ratelimit") != "" {
				t.Fatalf("bypassed attempt %d = %d, RateLimit %q", i+1, code, header(h, "Ratelimit"))
			}
		}
	})

	t.Run("ByUser", func(t *testing.T) {
		at := e.signUp(t, "limited-user@example.com")
		for i := 1; i <= 4; i++ {
			code, _, h := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...)
			if code != 200 || header(h, "Ratelimit-Policy") != `"me-user";q=4;w=60` {
				t.Fatalf("GET /v1/me %d = %d, RateLimit-Policy %q", i, code, header(h, "Ratelimit-Policy"))
			}
		}
		if code, body, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); code != 429 || body["rule"] != "me-user" {
			t.Errorf("fifth GET /v1/me = %d %v, want 429 me-user", code, body)
		}
		// A request without a valid token has no user: the rule does not
		// count it, the route answers 401.
		if code, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer("not-a-token")...); code != 401 {
			t.Errorf("bad token = %d, want 401", code)
		}
	})

	t.Run("ClientTiers", func(t *testing.T) {
		plain := e.newClient(t, "plain", "introspect")
		out, code := e.cli(t, "clients", "create", "--name", "gold", "--scopes", "introspect", "--tier", "gold", "--output", "json")
		if code != 0 {
			t.Fatalf("clients create --tier gold failed: %s", out)
		}
		var g struct {
			ID     string `json:"client_id"`
			Secret string `json:"client_secret"`
			Tier   string `json:"rate_limit_tier"`
		}
		if err := json.Unmarshal([]byte(out), &g); err != nil || g.Tier != "gold" {
			t.Fatalf("clients create output %q: %v", out, err)
		}
		gold := oauthClient{g.ID, g.Secret}
		if _, code := e.cli(t, "clients", "create", "--name", "x", "--tier", "platinum"); code == 0 {
			t.Error("clients create with an undeclared tier succeeded")
		}
		out, code = e.cli(t, "clients", "create", "--name", "internal", "--scopes", "introspect", "--rate-limit-exempt", "--output", "json")
		if code != 0 {
			t.Fatalf("clients create --rate-limit-exempt failed")
		}
		var x struct {
			ID     string `json:"client_id"`
			Secret string `json:"client_secret"`
		}
		json.Unmarshal([]byte(out), &x)
		exempt := oauthClient{x.ID, x.Secret}

		cc := func(c oauthClient) (int, map[string]any) {
			code, body, _ := form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"client_credentials"}}, c.ID, c.Secret)
			return code, body
		}
		for _, tc := range []struct {
			c       oauthClient
			allowed int
		}{{plain, 2}, {gold, 5}} {
			for i := range tc.allowed {
				if code, body := cc(tc.c); code != 200 {
					t.Fatalf("%s request %d = %d %v", tc.c.ID, i+1, code, body)
				}
			}
			if code, body := cc(tc.c); code != 429 || body["rule"] != "token-client" {
				t.Errorf("%s over its limit = %d %v, want 429 token-client", tc.c.ID, code, body)
			}
		}
		for i := range 8 {
			if code, body := cc(exempt); code != 200 {
				t.Fatalf("exempt client request %d = %d %v", i+1, code, body)
			}
		}
		// A wrong secret is not the client: not counted as it.
		if code, _, _ := form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"client_credentials"}}, plain.ID, "wrong"); code != 401 {
			t.Errorf("wrong secret = %d, want 401", code)
		}
	})

	t.Run("SilentRule", func(t *testing.T) {
		const email = "silent-limit@example.com"
		e.signUp(t, email)
		for i := range 2 {
			code, body, h := call(t, "POST", e.url("/v1/auth/password/forgot"), map[string]string{"email": email}, "X-Forwarded-For", "203.0.113.30")
			if code != 202 || header(h, "Ratelimit") != "" || header(h, "Ratelimit-Policy") != "" {
				t.Fatalf("forgot %d = %d %v, RateLimit %q: want 202 alike and no header", i+1, code, body, header(h, "Ratelimit"))
			}
		}
		e.mail.wait(t, email, "Reset your")
		time.Sleep(2 * time.Second) // the second request's job, had it been enqueued, runs at once
		n := 0
		for _, m := range e.mail.all(t) {
			if strings.HasPrefix(m, email+": ") && strings.Contains(m, "Reset your") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d reset emails, want 1: the second request is dropped silently", n)
		}
	})

	t.Run("BuiltInRuleRetuned", func(t *testing.T) {
		register := func(email string, body map[string]string) (int, map[string]any) {
			code, out, _ := call(t, "POST", e.url("/v1/auth/register"), body, "X-Forwarded-For", "203.0.113.40")
			return code, out
		}
		// A malformed request is answered as such and counts nothing.
		for range 3 {
			if code, out := register("", map[string]string{"email": "not an address", "password": strongPassword}); code != 422 {
				t.Fatalf("malformed sign-up = %d %v, want 422", code, out)
			}
		}
		for i := range 2 {
			email := "retuned-" + strconv.Itoa(i) + "@example.com"
			if code, out := register(email, map[string]string{"email": email, "password": strongPassword, "name": "R"}); code != 201 {
				t.Fatalf("sign-up %d = %d %v", i+1, code, out)
			}
		}
		if code, out := register("", map[string]string{"email": "retuned-x@example.com", "password": strongPassword, "name": "R"}); code != 429 || out["code"] != "rate_limited" {
			t.Errorf("third sign-up under register-ip 2/1h = %d %v, want 429", code, out)
		}
	})

	var adminAT string
	t.Run("AdminReportAndLift", func(t *testing.T) {
		if _, code := e.cli(t, "users", "create", "--email", "rl-admin@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
			t.Fatal("users create --admin failed")
		}
		code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "rl-admin@example.com", "password": strongPassword}, "X-Forwarded-For", "203.0.113.99")
		if code != 200 {
			t.Fatalf("admin login = %d %v", code, body)
		}
		adminAT = body["access_token"].(string)
		var rule map[string]any
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, body, _ := call(t, "GET", e.url("/v1/admin/rate-limits"), nil, bearer(adminAT)...)
			if code != 200 || body["source"] != policyPath {
				t.Fatalf("report = %d %v", code, body)
			}
			for _, r := range body["rules"].([]any) {
				if r.(map[string]any)["name"] == "login-ip" {
					rule = r.(map[string]any)
				}
			}
			if rule != nil && rule["refusals_1h"].(float64) >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the report never showed the refusals: %v", rule)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if rule["key"] != "ip" || rule["limit"] != "3/1m" || rule["refusals_24h"].(float64) < 2 {
			t.Errorf("login-ip in the report = %v", rule)
		}
		top := rule["top_keys"].([]any)
		if len(top) == 0 || top[0].(map[string]any)["key"] != "203.0.113.1" {
			t.Errorf("top keys = %v, want 203.0.113.1 first", top)
		}
		// Lifting the block: the address may try again at once.
		if code, _, _ := call(t, "DELETE", e.url("/v1/admin/rate-limits/keys/nope/203.0.113.1"), nil, bearer(adminAT)...); code != 404 {
			t.Errorf("lift under an unknown rule = %d, want 404", code)
		}
		if code, body, _ := call(t, "DELETE", e.url("/v1/admin/rate-limits/keys/login-ip/203.0.113.1"), nil, bearer(adminAT)...); code != 204 {
			t.Fatalf("lift = %d %v", code, body)
		}
		if code, _, _ := loginFrom(t, e, "203.0.113.1"); code != 401 {
			t.Errorf("after the lift = %d, want 401", code)
		}
		// The metrics show the decisions.
		res, raw := get(t, e.s.admin+"/metrics")
		if res.StatusCode != 200 || !strings.Contains(string(raw), `gatehouse_rate_limit_decisions_total{decision="limited",rule="login-ip"}`) ||
			!strings.Contains(string(raw), `gatehouse_rate_limit_decisions_total{decision="bypassed",rule="login-ip"}`) {
			t.Errorf("metrics lack the rate-limit decisions")
		}
	})

	t.Run("FileReloaded", func(t *testing.T) {
		stricter := strings.Replace(testPolicy, "limit: 3/1m", "limit: 1/1m", 1)
		if err := os.WriteFile(policyPath, []byte(stricter), 0o600); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			ip := "203.0.113." + strconv.Itoa(100+i)
			loginFrom(t, e, ip)
			if code, _, _ := loginFrom(t, e, ip); code == 429 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the changed file never took effect")
			}
			time.Sleep(500 * time.Millisecond)
		}
		// A bad new file is ignored: the last good policy stays.
		if err := os.WriteFile(policyPath, []byte("rules:\n  - name: x\n    routes: [nowhere]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second) // a poll has seen it
		loginFrom(t, e, "203.0.113.250")
		if code, _, _ := loginFrom(t, e, "203.0.113.250"); code != 429 {
			t.Errorf("after a bad file = %d, want the last good policy's 429", code)
		}
		// Back to the test policy, once this node has it again.
		if err := os.WriteFile(policyPath, []byte(testPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			ip := "203.0.113." + strconv.Itoa(150+i)
			loginFrom(t, e, ip)
			if code, _, _ := loginFrom(t, e, ip); code == 401 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the restored file never took effect")
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	_ = adminAT
	return e
}

// TestRateLimitsUntrustedPeer: without a trusted proxy, X-Forwarded-For
// changes nothing: every request is the peer's.
func TestRateLimitsUntrustedPeer(t *testing.T) {
	env, _ := rateLimitEnv(t, nil, testPolicy)
	delete(env, "GATEHOUSE_TRUSTED_PROXIES")
	e := newAccountEnv(t, env)
	for i := range 3 {
		if code, _, _ := loginFrom(t, e, "203.0.113."+strconv.Itoa(i+1)); code != 401 {
			t.Fatalf("attempt %d = %d", i+1, code)
		}
	}
	if code, body, _ := loginFrom(t, e, "203.0.113.9"); code != 429 || body["rule"] != "login-ip" {
		t.Errorf("fourth attempt with yet another X-Forwarded-For = %d %v, want 429", code, body)
	}
	// Nor does a bypass network named only in the header.
	if code, _, _ := loginFrom(t, e, "198.51.100.7"); code != 429 {
		t.Errorf("a spoofed bypass address = %d, want 429", code)
	}
}

// TestRateLimitsBadFile: a bad policy file refuses the start, naming every
// problem.
func TestRateLimitsBadFile(t *testing.T) {
	bad := `
tiers: [gold]
rules:
  - name: a
    routes: [nowhere]
    key: ip
    limit: 10/1m
  - name: a
    routes: [login]
    key: phone
    limit: ten/1m
`
	env, _ := rateLimitEnv(t, nil, bad)
	cfg := testConfig(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := runServer(ctx, cfg, slog.New(slog.DiscardHandler), time.Now, nil)
	if err == nil {
		t.Fatal("serve started with a bad policy file")
	}
	for _, want := range []string{"GATEHOUSE_RATE_LIMITS_FILE", "nowhere", "phone", "ten/1m", "duplicate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q:\n%v", want, err)
		}
	}
}
