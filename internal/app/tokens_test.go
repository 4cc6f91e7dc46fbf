package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// form posts an application/x-www-form-urlencoded body, optionally with
// HTTP Basic client credentials.
func form(t *testing.T, target string, values url.Values, basic ...string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", target, strings.NewReader(values.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	res, raw := do(t, req)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return res.StatusCode, out, res.Header
}

func refresh(t *testing.T, e *accountEnv, rt string) (int, map[string]any) {
	t.Helper()
	code, body, h := form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("token response Cache-Control = %q", h.Get("Cache-Control"))
	}
	return code, body
}

func loginFull(t *testing.T, e *accountEnv, email, pw string) map[string]any {
	t.Helper()
	code, body, h := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": pw})
	if code != 200 {
		t.Fatalf("login = %d %v", code, body)
	}
	if body["token_type"] != "Bearer" || body["expires_in"] == nil || body["refresh_token"] == nil || body["session_id"] == nil || body["user"] == nil {
		t.Errorf("login body = %v", body)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("login Cache-Control = %q", h.Get("Cache-Control"))
	}
	return body
}

// cli runs a gatehouse command in process against the server's settings.
func (e *accountEnv) cli(t testing.TB, args ...string) (string, int) {
	t.Helper()
	return e.cliEnv(t, nil, args...)
}

// cliEnv is cli with some settings overridden.
func (e *accountEnv) cliEnv(t testing.TB, override map[string]string, args ...string) (string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := map[string]string{"GATEHOUSE_ENV": "test", "GATEHOUSE_LOG_LEVEL": "error"}
	for k, v := range e.cfgEnv {
		env[k] = v
	}
	for k, v := range override {
		env[k] = v
	}
	code := Run(context.Background(), Env{Args: args, Getenv: func(k string) string { return env[k] }, Stdin: strings.NewReader(strongPassword + "\n"), Stdout: &stdout, Stderr: &stderr})
	if code != 0 {
		t.Logf("gatehouse %v: exit %d\n%s", args, code, stderr.String())
	}
	return stdout.String(), code
}

// verifyIndependently checks an access token's signature against the served
// JWKS with only the standard library, and returns its header and claims.
func verifyIndependently(t *testing.T, jwksURL, tok string) (map[string]any, map[string]any) {
	t.Helper()
	res, raw := get(t, jwksURL)
	if res.StatusCode != 200 {
		t.Fatalf("jwks = %d", res.StatusCode)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact token: %q", tok)
	}
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var header, claims map[string]any
	json.Unmarshal(dec(parts[0]), &header)
	json.Unmarshal(dec(parts[1]), &claims)
	var key map[string]string
	for _, k := range set.Keys {
		if k["kid"] == header["kid"] {
			key = k
		}
	}
	if key == nil {
		t.Fatalf("kid %v not in the JWKS", header["kid"])
	}
	signed := []byte(parts[0] + "." + parts[1])
	sig := dec(parts[2])
	digest := sha256.Sum256(signed)
	ok := false
	switch header["alg"] {
	case "RS256":
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(dec(key["n"])), E: int(new(big.Int).SetBytes(dec(key["e"])).Int64())}
		ok = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
	case "ES256":
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, dec(key["x"])...), dec(key["y"])...))
		if err != nil {
			t.Fatalf("JWKS EC key: %v", err)
		}
		ok = len(sig) == 64 && ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	case "EdDSA":
		ok = ed25519.Verify(ed25519.PublicKey(dec(key["x"])), signed, sig)
	}
	if !ok {
		t.Fatalf("signature of %v token does not verify against the JWKS", header["alg"])
	}
	return header, claims
}

func runTokenSuite(t *testing.T, e *accountEnv) {
	t.Run("LoginRefreshReuse", func(t *testing.T) {
		e.signUp(t, "dora@example.com")
		first := loginFull(t, e, "dora@example.com", strongPassword)
		at, rt1 := first["access_token"].(string), first["refresh_token"].(string)
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); c != 200 {
			t.Fatalf("/v1/me with the access token = %d", c)
		}
		code, second := refresh(t, e, rt1)
		if code != 200 || second["refresh_token"] == rt1 {
			t.Fatalf("refresh = %d %v", code, second)
		}
		rt2, at2 := second["refresh_token"].(string), second["access_token"].(string)
		// Within the grace window the predecessor yields the same successor.
		code, again := refresh(t, e, rt1)
		if code != 200 || again["refresh_token"] != rt2 {
			t.Errorf("predecessor within grace = %d %v, want the same successor", code, again)
		}
		e.s.clock.Advance(1200 * time.Millisecond) // grace is 1 s in this suite
		code, body := refresh(t, e, rt1)
		if code != 400 || body["error"] != "invalid_grant" {
			t.Errorf("reused refresh token = %d %v, want invalid_grant", code, body)
		}
		if code, body := refresh(t, e, rt2); code != 400 || body["error"] != "invalid_grant" {
			t.Errorf("newest token of a killed family = %d %v, want invalid_grant", code, body)
		}
		if c, _, h := call(t, "GET", e.url("/v1/me"), nil, bearer(at2)...); c != 401 || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("access token of a killed family = %d %v", c, h)
		}
		e.mail.wait(t, "dora@example.com", "Security alert")
		other := e.login(t, "dora@example.com", strongPassword)
		_, act, _ := call(t, "GET", e.url("/v1/me/activity"), nil, bearer(other)...)
		found := false
		for _, ev := range act["events"].([]any) {
			found = found || ev.(map[string]any)["action"] == "security.refresh_token_reuse"
		}
		if !found {
			t.Errorf("no security event recorded for the reuse: %v", act)
		}
	})

	t.Run("ParallelRefreshYieldsOneSuccessor", func(t *testing.T) {
		rt := loginFull(t, e, "dora@example.com", strongPassword)["refresh_token"].(string)
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				code, body := refresh(t, e, rt)
				mu.Lock()
				defer mu.Unlock()
				if code != 200 {
					got["error"]++
					return
				}
				got[body["refresh_token"].(string)]++
			})
		}
		wg.Wait()
		if len(got) != 1 || got["error"] != 0 {
			t.Errorf("8 parallel refreshes gave %d distinct results %v, want one successor", len(got), got)
		}
	})

	t.Run("JWKSAndRotation", func(t *testing.T) {
		at := e.login(t, "dora@example.com", strongPassword)
		header, claims := verifyIndependently(t, e.url("/.well-known/jwks.json"), at)
		if header["typ"] != "at+jwt" || header["alg"] != "RS256" {
			t.Errorf("header = %v", header)
		}
		for _, c := range []string{"iss", "sub", "aud", "client_id", "exp", "iat", "nbf", "jti", "sid", "auth_time", "amr"} {
			if _, ok := claims[c]; !ok {
				t.Errorf("claim %s missing: %v", c, claims)
			}
		}
		if claims["iss"] != "http://localhost:8080" {
			t.Errorf("iss = %v", claims["iss"])
		}
		out, code := e.cli(t, "keys", "rotate", "--output", "json")
		if code != 0 {
			t.Fatalf("keys rotate exit %d", code)
		}
		var rotated struct{ KID string }
		json.Unmarshal([]byte(out), &rotated)
		deadline := time.Now().Add(10 * time.Second)
		var newHeader map[string]any
		for {
			newHeader, _ = verifyIndependently(t, e.url("/.well-known/jwks.json"), e.login(t, "dora@example.com", strongPassword))
			if newHeader["kid"] == rotated.KID || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if newHeader["kid"] != rotated.KID || rotated.KID == header["kid"] {
			t.Fatalf("after rotation tokens carry kid %v, want %s", newHeader["kid"], rotated.KID)
		}
		verifyIndependently(t, e.url("/.well-known/jwks.json"), at) // the old key is still published
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); c != 200 {
			t.Errorf("token signed by the old key refused after rotation: %d", c)
		}
	})

	t.Run("IntrospectionAndRevocation", func(t *testing.T) {
		out, code := e.cli(t, "clients", "create", "--name", "api gateway", "--scopes", "introspect,revoke", "--output", "json")
		if code != 0 {
			t.Fatal("clients create failed")
		}
		var cl struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}
		if err := json.Unmarshal([]byte(out), &cl); err != nil || cl.ClientID == "" || cl.ClientSecret == "" {
			t.Fatalf("clients create output %q: %v", out, err)
		}
		login := loginFull(t, e, "dora@example.com", strongPassword)
		at, rt := login["access_token"].(string), login["refresh_token"].(string)
		intro := func(tok string, basic ...string) (int, map[string]any) {
			c, b, _ := form(t, e.url("/oauth2/introspect"), url.Values{"token": {tok}}, basic...)
			return c, b
		}
		if c, _ := intro(at); c != 401 {
			t.Errorf("unauthenticated introspection = %d, want 401", c)
		}
		if c, _ := intro(at, cl.ClientID, "wrong"); c != 401 {
			t.Errorf("introspection with a wrong secret = %d, want 401", c)
		}
		c, b := intro(at, cl.ClientID, cl.ClientSecret)
		if c != 200 || b["active"] != true || b["sub"] == nil || b["username"] != "dora@example.com" || b["sid"] != login["session_id"] || b["token_type"] != "Bearer" {
			t.Errorf("introspect live access token = %d %v", c, b)
		}
		c, b = intro(rt, cl.ClientID, cl.ClientSecret)
		if c != 200 || b["active"] != true || b["token_type"] != "refresh_token" {
			t.Errorf("introspect live refresh token = %d %v", c, b)
		}
		if c, b = intro("garbage.garbage.garbage", cl.ClientID, cl.ClientSecret); c != 200 || b["active"] != false || len(b) != 1 {
			t.Errorf("introspect garbage = %d %v", c, b)
		}
		if c, _, _ := form(t, e.url("/oauth2/revoke"), url.Values{"token": {rt}}, cl.ClientID, cl.ClientSecret); c != 200 {
			t.Errorf("revoke = %d", c)
		}
		if _, b = intro(at, cl.ClientID, cl.ClientSecret); b["active"] != false {
			t.Errorf("access token active after revocation: %v", b)
		}
		if _, b = intro(rt, cl.ClientID, cl.ClientSecret); b["active"] != false {
			t.Errorf("refresh token active after revocation: %v", b)
		}
		if c, _, _ := form(t, e.url("/oauth2/revoke"), url.Values{"token": {"unknown-token"}}, cl.ClientID, cl.ClientSecret); c != 200 {
			t.Errorf("revoking an unknown token = %d, want 200", c)
		}
		// A first-party refresh token presented by another client has leaked:
		// refused, and its session ends.
		leaked := loginFull(t, e, "dora@example.com", strongPassword)["refresh_token"].(string)
		if c, b, _ := form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {leaked}}, cl.ClientID, cl.ClientSecret); c != 400 || b["error"] != "invalid_grant" {
			t.Errorf("refresh token of another client = %d %v", c, b)
		}
		if c, _ := refresh(t, e, leaked); c != 400 {
			t.Errorf("the leaked token's session still refreshes: %d", c)
		}
		// client_credentials grant.
		c, b, _ = form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"client_credentials"}, "scope": {"introspect"}}, cl.ClientID, cl.ClientSecret)
		if c != 200 || b["access_token"] == nil || b["scope"] != "introspect" {
			t.Errorf("client_credentials = %d %v", c, b)
		}
		if c, b, _ = form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"password"}}); c != 400 || b["error"] != "unsupported_grant_type" {
			t.Errorf("unsupported grant = %d %v", c, b)
		}
	})

	t.Run("LogoutEndsAccessAtOnce", func(t *testing.T) {
		login := loginFull(t, e, "dora@example.com", strongPassword)
		at := login["access_token"].(string)
		code, body, _ := call(t, "GET", e.url("/v1/me/sessions"), nil, bearer(at)...)
		if code != 200 {
			t.Fatalf("sessions = %d %v", code, body)
		}
		current := 0
		for _, s := range body["sessions"].([]any) {
			if s.(map[string]any)["current"] == true {
				current++
			}
		}
		if current != 1 {
			t.Errorf("sessions list marks %d as current", current)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/auth/logout"), nil, bearer(at)...); c != 204 {
			t.Errorf("logout = %d", c)
		}
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); c != 401 {
			t.Errorf("access token after logout = %d, want 401", c)
		}
		if c, _ := refresh(t, e, login["refresh_token"].(string)); c != 400 {
			t.Errorf("refresh after logout = %d", c)
		}
	})

	t.Run("Lockout", func(t *testing.T) {
		e.signUp(t, "eve@example.com")
		for i := 1; i <= 5; i++ {
			code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "eve@example.com", "password": "wrong password number"})
			if code != 401 || body["code"] != "invalid_credentials" {
				t.Fatalf("wrong password %d = %d %v", i, code, body)
			}
		}
		code, body, h := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "eve@example.com", "password": "wrong password number"})
		if code != 429 || body["code"] != "account_locked" || h.Get("Retry-After") == "" {
			t.Errorf("sixth wrong password = %d %v Retry-After=%q", code, body, h.Get("Retry-After"))
		}
		code, body, _ = call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "eve@example.com", "password": strongPassword})
		if code != 429 || body["code"] != "account_locked" {
			t.Errorf("right password during the lock = %d %v", code, body)
		}
		e.mail.wait(t, "eve@example.com", "temporarily locked")
		// Unknown and known emails fail alike.
		_, unknown, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "nobody@example.com", "password": "whatever it is"})
		if unknown["code"] != "invalid_credentials" {
			t.Errorf("unknown email = %v", unknown)
		}
		// An address without an account locks exactly like eve's, so
		// account_locked does not reveal which addresses have accounts.
		for i := 2; i <= 5; i++ {
			code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "nobody@example.com", "password": "whatever it is"})
			if code != 401 || body["code"] != "invalid_credentials" {
				t.Fatalf("unknown email, attempt %d = %d %v", i, code, body)
			}
		}
		code, ghost, gh := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "NoBody@Example.com", "password": "whatever it is"})
		if code != 429 || ghost["code"] != "account_locked" || gh.Get("Retry-After") != h.Get("Retry-After") {
			t.Errorf("sixth attempt on an unknown email = %d %v Retry-After=%q, want 429 account_locked like a real account (Retry-After %q)", code, ghost, gh.Get("Retry-After"), h.Get("Retry-After"))
		}
		delete(body, "request_id")
		delete(ghost, "request_id")
		if diff := cmp.Diff(body, ghost); diff != "" {
			t.Errorf("locked answers differ between a real and an unknown address (-real +unknown):\n%s", diff)
		}
	})

	t.Run("ParallelGuessesCount", func(t *testing.T) {
		e.signUp(t, "frank@example.com")
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for range 20 {
			wg.Go(func() {
				c, _, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "frank@example.com", "password": "parallel wrong guess"})
				mu.Lock()
				codes[c]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if codes[401] > 5 || codes[429] < 15 {
			t.Errorf("20 parallel wrong passwords: %v, want at most 5 checked and the rest locked", codes)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "frank@example.com", "password": strongPassword}); c != 429 {
			t.Errorf("right password after 20 parallel guesses = %d, want 429", c)
		}
	})

	// Attempts are counted before the password check (that is what stops
	// parallel guessing), but a burst of right passwords (a client
	// retrying, a script) is never locked out: with the default limits,
	// 20 parallel sign-ins from one client all succeed.
	t.Run("ParallelRightPasswordsAllSignIn", func(t *testing.T) {
		e.signUp(t, "gina@example.com")
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for range 20 {
			wg.Go(func() {
				c, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "gina@example.com", "password": strongPassword})
				mu.Lock()
				codes[c]++
				mu.Unlock()
				if c != 200 {
					t.Logf("refused: %d %v", c, body)
				}
			})
		}
		wg.Wait()
		if codes[200] != 20 {
			t.Errorf("20 parallel right passwords: %v, want all 20 signed in", codes)
		}
		e.login(t, "gina@example.com", strongPassword)
	})

	t.Run("AdminAndKillSwitch", func(t *testing.T) {
		if _, code := e.cli(t, "users", "create", "--email", "root@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
			t.Fatal("users create --admin failed")
		}
		adminAT := e.login(t, "root@example.com", strongPassword)
		userAT := e.signUp(t, "grace@example.com")
		if c, _, _ := call(t, "GET", e.url("/v1/admin/users"), nil, bearer(userAT)...); c != 403 {
			t.Errorf("non-admin on admin API = %d, want 403", c)
		}
		code, body, _ := call(t, "GET", e.url("/v1/admin/users?email=grace&limit=5"), nil, bearer(adminAT)...)
		if code != 200 || len(body["users"].([]any)) != 1 {
			t.Fatalf("admin list = %d %v", code, body)
		}
		// A filter no database could take is the caller's mistake, not a 500.
		if c, b, _ := call(t, "GET", e.url("/v1/admin/users?email=gr%00ace"), nil, bearer(adminAT)...); c != 422 {
			t.Errorf("admin list with a NUL in the filter = %d %v, want 422", c, b)
		}
		id := body["users"].([]any)[0].(map[string]any)["id"].(string)
		userRT := loginFull(t, e, "grace@example.com", strongPassword)["refresh_token"].(string)
		if c, _, _ := call(t, "POST", e.url("/v1/admin/users/"+id+"/disable"), nil, bearer(adminAT)...); c != 200 {
			t.Errorf("disable = %d", c)
		}
		if c, _ := refresh(t, e, userRT); c != 400 {
			t.Errorf("refresh of a disabled user = %d, want 400", c)
		}
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(userAT)...); c != 401 {
			t.Errorf("disabled user's token = %d, want 401", c)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "grace@example.com", "password": strongPassword}); c != 403 || b["code"] != "account_disabled" {
			t.Errorf("disabled login = %d %v", c, b)
		}
		call(t, "POST", e.url("/v1/admin/users/"+id+"/enable"), nil, bearer(adminAT)...)
		userAT = e.login(t, "grace@example.com", strongPassword)
		e.s.clock.Advance(1100 * time.Millisecond) // iat has second precision
		code, body, _ = call(t, "POST", e.url("/v1/admin/tokens/revoke-before"), map[string]string{"before": e.s.clock.Now().UTC().Format(time.RFC3339Nano)}, bearer(adminAT)...)
		if code != 200 {
			t.Fatalf("revoke-before = %d %v", code, body)
		}
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(userAT)...); c != 401 {
			t.Errorf("token issued before the kill switch = %d, want 401", c)
		}
		if c, _, _ := call(t, "GET", e.url("/v1/admin/users"), nil, bearer(adminAT)...); c != 401 {
			t.Errorf("admin token issued before the kill switch = %d, want 401", c)
		}
		// iat has whole seconds, so the cut-off is rounded up to the next
		// second: tokens of that same second are refused too.
		e.s.clock.Advance(1100 * time.Millisecond)
		fresh := e.login(t, "grace@example.com", strongPassword)
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(fresh)...); c != 200 {
			t.Errorf("token issued after the kill switch = %d, want 200", c)
		}
	})
}

var tokenSuiteEnv = map[string]string{
	"GATEHOUSE_REFRESH_REUSE_GRACE":  "1s",
	"GATEHOUSE_KEYS_RELOAD_INTERVAL": "1s",
}

func TestTokensEmbedded(t *testing.T) {
	runTokenSuite(t, newAccountEnv(t, tokenSuiteEnv))
}

func TestTokensPostgresRedis(t *testing.T) {
	env := postgresRedisEnv(t)
	for k, v := range tokenSuiteEnv {
		env[k] = v
	}
	runTokenSuite(t, newAccountEnv(t, env))
}

// TestLogoutAcrossNodes runs two servers on one PostgreSQL and Redis: a
// session ended on one node is refused by the other at once.
func TestLogoutAcrossNodes(t *testing.T) {
	env := postgresRedisEnv(t)
	a := newAccountEnv(t, env)
	b := startServerWithClock(t, testConfig(t, a.cfgEnv), a.s.clock)
	at := a.signUp(t, "henry@example.com")
	if c, _, _ := call(t, "GET", b.public+"/v1/me", nil, bearer(at)...); c != 200 {
		t.Fatalf("token from node A on node B = %d", c)
	}
	if c, _, _ := call(t, "POST", a.url("/v1/auth/logout"), nil, bearer(at)...); c != 204 {
		t.Fatalf("logout on A = %d", c)
	}
	if c, _, _ := call(t, "GET", b.public+"/v1/me", nil, bearer(at)...); c != 401 {
		t.Errorf("token on node B after logout on node A = %d, want 401", c)
	}
}
