package app

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Black-box tests of the /oauth2 and /.well-known endpoints against the
// RFCs they implement: 6749 (token endpoint), 7009 (revocation), 7662
// (introspection), 6750 (bearer challenges) and 8414 (discovery).

// post sends a raw body with the given content type and headers and
// decodes the JSON answer.
func post(t *testing.T, target, contentType, body string, header ...string) (int, map[string]any, http.Header) {
	t.Helper()
	res, raw := request(t, "POST", target, contentType, []byte(body), header...)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return res.StatusCode, out, res.Header
}

// oauthClient is a registered client and its secret.
type oauthClient struct{ ID, Secret string }

// basic is the client's HTTP Basic Authorization header (RFC 6749 §2.3.1).
func (c oauthClient) basic() []string {
	creds := url.QueryEscape(c.ID) + ":" + url.QueryEscape(c.Secret)
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(creds))}
}

func (e *accountEnv) newClient(t testing.TB, name, scopes string) oauthClient {
	t.Helper()
	out, code := e.cli(t, "clients", "create", "--name", name, "--scopes", scopes, "--output", "json")
	if code != 0 {
		t.Fatalf("clients create %s failed", name)
	}
	var cl struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &cl); err != nil || cl.ClientID == "" {
		t.Fatalf("clients create output %q: %v", out, err)
	}
	return oauthClient{cl.ClientID, cl.ClientSecret}
}

// clientToken gets an access token by the client_credentials grant.
func (e *accountEnv) clientToken(t *testing.T, c oauthClient, scope string) string {
	t.Helper()
	v := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		v.Set("scope", scope)
	}
	code, body, _ := form(t, e.url("/oauth2/token"), v, c.ID, c.Secret)
	if code != 200 {
		t.Fatalf("client_credentials for %s = %d %v", c.ID, code, body)
	}
	return body["access_token"].(string)
}

func (e *accountEnv) introspect(t *testing.T, by oauthClient, tok string) map[string]any {
	t.Helper()
	code, body, _ := form(t, e.url("/oauth2/introspect"), url.Values{"token": {tok}}, by.ID, by.Secret)
	if code != 200 {
		t.Fatalf("introspect = %d %v", code, body)
	}
	return body
}

func runOAuthSuite(t *testing.T, e *accountEnv) {
	e.signUp(t, "olive@example.com")
	ops := e.newClient(t, "incident tooling", "introspect,revoke")

	t.Run("RepeatedParametersAreRefused", func(t *testing.T) {
		svc := e.newClient(t, "svc", "introspect")
		const formType, jsonType = "application/x-www-form-urlencoded", "application/json"
		for _, c := range []struct{ name, path, contentType, body string }{
			{"form grant_type twice", "/oauth2/token", formType, "grant_type=client_credentials&grant_type=refresh_token"},
			{"form scope twice", "/oauth2/token", formType, "grant_type=client_credentials&scope=introspect&scope=introspect"},
			{"form empty duplicate", "/oauth2/token", formType, "grant_type=client_credentials&scope=&scope=introspect"},
			{"form token twice", "/oauth2/introspect", formType, "token=a.b.c&token=d.e.f"},
			{"form token twice on revoke", "/oauth2/revoke", formType, "token=a&token=b"},
			{"JSON key twice", "/oauth2/token", jsonType, `{"grant_type":"client_credentials","grant_type":"client_credentials"}`},
			{"JSON key twice, escaped", "/oauth2/token", jsonType, `{"grant_type":"client_credentials","grant_\u0074ype":"client_credentials"}`},
			{"JSON second object", "/oauth2/token", jsonType, `{"grant_type":"client_credentials"} {"scope":"revoke"}`},
			{"JSON trailing garbage", "/oauth2/token", jsonType, `{"grant_type":"client_credentials"}x`},
			{"JSON non-string value", "/oauth2/token", jsonType, `{"grant_type":"client_credentials","scope":["introspect"]}`},
			{"body client_id differs from Basic", "/oauth2/token", formType, "grant_type=client_credentials&client_id=" + url.QueryEscape(ops.ID)},
		} {
			code, body, _ := post(t, e.url(c.path), c.contentType, c.body, svc.basic()...)
			if code != 400 || body["error"] != "invalid_request" {
				t.Errorf("%s: %d %v, want 400 invalid_request", c.name, code, body)
			}
		}
		// The same requests without the repetition are fine.
		for _, c := range []struct{ name, contentType, body string }{
			{"form", formType, "grant_type=client_credentials&scope=introspect"},
			{"JSON", jsonType, ` {"grant_type":"client_credentials","scope":"introspect"}` + "\n"},
			{"body client_id equal to Basic", formType, "grant_type=client_credentials&client_id=" + url.QueryEscape(svc.ID)},
		} {
			if code, body, _ := post(t, e.url("/oauth2/token"), c.contentType, c.body, svc.basic()...); code != 200 {
				t.Errorf("%s: %d %v, want 200", c.name, code, body)
			}
		}
	})

	t.Run("RevokingAnotherClientsTokenRevealsNothing", func(t *testing.T) {
		a := e.newClient(t, "client a", "introspect")
		b := e.newClient(t, "client b", "introspect")
		bToken := e.clientToken(t, b, "")
		userRT := loginFull(t, e, "olive@example.com", strongPassword)["refresh_token"].(string)
		revoke := func(tok string) (int, map[string]any) {
			code, body, _ := form(t, e.url("/oauth2/revoke"), url.Values{"token": {tok}}, a.ID, a.Secret)
			return code, body
		}
		unknownCode, unknownBody := revoke("unknown-token")
		if unknownCode != 200 || len(unknownBody) != 0 {
			t.Fatalf("revoking an unknown token = %d %v, want 200 {}", unknownCode, unknownBody)
		}
		for name, tok := range map[string]string{"another client's access token": bToken, "a first-party refresh token": userRT} {
			if code, body := revoke(tok); code != unknownCode || len(body) != 0 {
				t.Errorf("revoking %s without the revoke scope = %d %v, want the answer to an unknown token (%d %v)", name, code, body, unknownCode, unknownBody)
			}
		}
		if got := e.introspect(t, ops, bToken); got["active"] != true {
			t.Errorf("another client's token after a refused revocation: %v, want still active", got)
		}
		if got := e.introspect(t, ops, userRT); got["active"] != true {
			t.Errorf("first-party refresh token after a refused revocation: %v, want still active", got)
		}
	})

	t.Run("ClientRevokesItsOwnClientCredentialsToken", func(t *testing.T) {
		c := e.newClient(t, "batch job", "introspect")
		tok, other := e.clientToken(t, c, ""), e.clientToken(t, c, "")
		if code, _, _ := call(t, "GET", e.url("/v1/me/sessions"), nil, bearer(tok)...); code != 200 {
			t.Fatalf("client_credentials token on the API = %d before revocation", code)
		}
		if code, body, _ := form(t, e.url("/oauth2/revoke"), url.Values{"token": {tok}, "token_type_hint": {"access_token"}}, c.ID, c.Secret); code != 200 || len(body) != 0 {
			t.Fatalf("revoking its own client_credentials token = %d %v, want 200 {}", code, body)
		}
		code, _, h := call(t, "GET", e.url("/v1/me/sessions"), nil, bearer(tok)...)
		if code != 401 || h.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
			t.Errorf("revoked client_credentials token on the API = %d %q, want 401 invalid_token", code, h.Get("WWW-Authenticate"))
		}
		if got := e.introspect(t, c, tok); got["active"] != false || len(got) != 1 {
			t.Errorf("introspection of the revoked token = %v, want {active: false}", got)
		}
		if code, _, _ := call(t, "GET", e.url("/v1/me/sessions"), nil, bearer(other)...); code != 200 {
			t.Errorf("another token of the same client = %d after the revocation, want 200 (revocation is per token)", code)
		}
	})

	t.Run("RefreshCannotWidenScope", func(t *testing.T) {
		rt := loginFull(t, e, "olive@example.com", strongPassword)["refresh_token"].(string)
		// A first-party refresh token was granted no scope: any requested
		// scope exceeds the grant (RFC 6749 §6).
		code, body, _ := form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"revoke"}})
		if code != 400 || body["error"] != "invalid_scope" {
			t.Errorf("refresh asking for a scope never granted = %d %v, want 400 invalid_scope", code, body)
		}
		// The refused request did not rotate (or burn) the token.
		if code, body := refresh(t, e, rt); code != 200 || body["refresh_token"] == rt {
			t.Errorf("refresh after the refused one = %d %v, want a rotation", code, body)
		}
	})

	t.Run("ScopesAreSpaceDelimited", func(t *testing.T) {
		c := e.newClient(t, "two scopes", "introspect,revoke")
		scope := func(s string) (int, map[string]any) {
			code, body, _ := form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"client_credentials"}, "scope": {s}}, c.ID, c.Secret)
			return code, body
		}
		if code, body := scope("introspect revoke"); code != 200 || body["scope"] != "introspect revoke" {
			t.Errorf("space-delimited scopes = %d %v", code, body)
		}
		for _, s := range []string{"introspect,revoke", "introspect\trevoke", "introspect\"", "intro\\spect"} {
			if code, body := scope(s); code != 400 || body["error"] != "invalid_scope" {
				t.Errorf("scope %q = %d %v, want 400 invalid_scope", s, code, body)
			}
		}
	})

	t.Run("BearerChallenges", func(t *testing.T) {
		for _, c := range []struct{ name, authz, want string }{
			{"no credentials", "", `Bearer`},
			{"another scheme", "Basic dXNlcjpwYXNz", `Bearer`},
			{"a bad token", "Bearer not.a.token", `Bearer error="invalid_token"`},
		} {
			var h []string
			if c.authz != "" {
				h = []string{"Authorization", c.authz}
			}
			code, _, hdr := call(t, "GET", e.url("/v1/me"), nil, h...)
			if code != 401 || hdr.Get("WWW-Authenticate") != c.want {
				t.Errorf("%s: %d WWW-Authenticate %q, want 401 %q", c.name, code, hdr.Get("WWW-Authenticate"), c.want)
			}
		}
	})

	t.Run("IntrospectionTokenTypes", func(t *testing.T) {
		login := loginFull(t, e, "olive@example.com", strongPassword)
		if got := e.introspect(t, ops, login["access_token"].(string)); got["active"] != true || got["token_type"] != "Bearer" {
			t.Errorf("access token: %v, want token_type Bearer", got)
		}
		if got := e.introspect(t, ops, e.clientToken(t, ops, "")); got["active"] != true || got["token_type"] != "Bearer" {
			t.Errorf("client_credentials token: %v, want token_type Bearer", got)
		}
		if got := e.introspect(t, ops, login["refresh_token"].(string)); got["active"] != true || got["token_type"] != "refresh_token" {
			t.Errorf("refresh token: %v, want token_type refresh_token", got)
		}
	})

	t.Run("ClientCreatedThroughAdminAPIIsAudited", func(t *testing.T) {
		if _, code := e.cli(t, "users", "create", "--email", "oscar@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
			t.Fatal("users create --admin failed")
		}
		adminAT := e.login(t, "oscar@example.com", strongPassword)
		code, body, _ := call(t, "POST", e.url("/v1/admin/clients"), map[string]any{"name": "via admin", "scopes": []string{"introspect"}},
			append(bearer(adminAT), "User-Agent", "gatehouse-audit-test/1.0", "X-Request-ID", "req-client-created-1")...)
		if code != 201 {
			t.Fatalf("admin create client = %d %v", code, body)
		}
		q := "SELECT COALESCE(ip, ''), COALESCE(user_agent, ''), COALESCE(request_id, '') FROM audit_events WHERE action = 'client.created' AND subject_id = ?"
		if e.dialect == "postgres" {
			q = strings.Replace(q, "?", "$1", 1)
		}
		var ip, ua, rid string
		if err := e.db.QueryRow(q, body["client_id"]).Scan(&ip, &ua, &rid); err != nil {
			t.Fatalf("client.created event: %v", err)
		}
		if ip != "127.0.0.1" || ua != "gatehouse-audit-test/1.0" || rid != "req-client-created-1" {
			t.Errorf("client.created event has ip %q, user agent %q, request id %q", ip, ua, rid)
		}
	})

	// Last: it rotates the signing key to another algorithm.
	t.Run("Discovery", func(t *testing.T) {
		doc := func() map[string]any {
			t.Helper()
			res, raw := get(t, e.url("/.well-known/openid-configuration"))
			var m map[string]any
			if res.StatusCode != 200 || json.Unmarshal(raw, &m) != nil {
				t.Fatalf("discovery = %d %s", res.StatusCode, raw)
			}
			return m
		}
		d := doc()
		if _, ok := d["id_token_signing_alg_values_supported"]; ok {
			t.Errorf("discovery advertises ID token algorithms, but no ID tokens are issued: %v", d)
		}
		types, ok := d["response_types_supported"].([]any)
		if !ok || slices.Contains(types, any("token")) {
			t.Errorf("response_types_supported = %v, want present (RFC 8414) without the implicit flow's \"token\"", d["response_types_supported"])
		}
		if got := toStrings(d["access_token_signing_alg_values_supported"]); !slices.Equal(got, []string{"RS256"}) {
			t.Errorf("access_token_signing_alg_values_supported = %v, want [RS256]", got)
		}
		// Rotate to ES256: the RS256 key stays published (its tokens are
		// alive), so both algorithms are in use.
		if _, code := e.cliEnv(t, map[string]string{"GATEHOUSE_SIGNING_ALG": "ES256"}, "keys", "rotate"); code != 0 {
			t.Fatal("keys rotate failed")
		}
		deadline := time.Now().Add(10 * time.Second)
		var got []string
		for {
			if got = toStrings(doc()["access_token_signing_alg_values_supported"]); len(got) == 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"ES256", "RS256"}) {
			t.Errorf("after rotating to ES256, access_token_signing_alg_values_supported = %v, want ES256 and RS256 (the keys published)", got)
		}
	})
}

func TestOAuthEmbedded(t *testing.T) {
	runOAuthSuite(t, newAccountEnv(t, tokenSuiteEnv))
}

func TestOAuthPostgresRedis(t *testing.T) {
	env := postgresRedisEnv(t)
	for k, v := range tokenSuiteEnv {
		env[k] = v
	}
	runOAuthSuite(t, newAccountEnv(t, env))
}

// runRefreshCookieCSRF: a refresh token taken from the cookie is used only
// by a request a cross-site form cannot forge: a JSON body (which needs a
// CORS preflight) or an Origin from the CORS allowlist.
func runRefreshCookieCSRF(t *testing.T, env map[string]string) {
	all := map[string]string{
		"GATEHOUSE_REFRESH_TOKEN_COOKIE": "true",
		"GATEHOUSE_CORS_ALLOWED_ORIGINS": "https://app.example.test",
		"GATEHOUSE_REFRESH_REUSE_GRACE":  "0s",
	}
	for k, v := range env {
		all[k] = v
	}
	e := newAccountEnv(t, all)
	e.signUp(t, "paula@example.com")
	req, _ := http.NewRequest("POST", e.url("/v1/auth/login"), strings.NewReader(`{"email":"paula@example.com","password":"`+strongPassword+`"}`))
	req.Header.Set("Content-Type", "application/json")
	res, _ := do(t, req)
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "__Host-gatehouse_refresh" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no refresh cookie after login")
	}
	refreshWith := func(contentType, body string, header ...string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.url("/oauth2/token"), strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		req.AddCookie(cookie)
		res, raw := do(t, req)
		var out map[string]any
		json.Unmarshal(raw, &out)
		for _, c := range res.Cookies() {
			if c.Name == cookie.Name && c.Value != "" {
				cookie = c
			}
		}
		return res.StatusCode, out
	}
	const formBody = "grant_type=refresh_token"
	for _, c := range []struct {
		name   string
		header []string
	}{
		{"no Origin", nil},
		{"an Origin not allowed", []string{"Origin", "https://evil.example"}},
		{"Origin null", []string{"Origin", "null"}},
	} {
		code, body := refreshWith("application/x-www-form-urlencoded", formBody, c.header...)
		if (code != 400 && code != 403) || body["error"] != "invalid_request" {
			t.Errorf("cookie refresh by a form post with %s = %d %v, want refused with invalid_request", c.name, code, body)
		}
	}
	// Those refusals neither rotated nor cleared the cookie (with no grace
	// window a rotated token would now be refused as reuse).
	if code, body := refreshWith("application/x-www-form-urlencoded", formBody, "Origin", "https://app.example.test"); code != 200 || body["access_token"] == nil {
		t.Errorf("cookie refresh by a form post from an allowed Origin = %d %v, want 200", code, body)
	}
	if code, body := refreshWith("application/json", `{"grant_type":"refresh_token"}`); code != 200 || body["access_token"] == nil {
		t.Errorf("cookie refresh with a JSON body = %d %v, want 200", code, body)
	}
	// A refresh token in the body is not ambient: no Origin needed.
	body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cookie.Value}}.Encode()
	req, _ = http.NewRequest("POST", e.url("/oauth2/token"), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res, raw := do(t, req); res.StatusCode != 200 {
		t.Errorf("refresh with the token in a form body = %d %s, want 200", res.StatusCode, raw)
	}
}

func TestRefreshCookieCSRFEmbedded(t *testing.T) { runRefreshCookieCSRF(t, nil) }

func TestRefreshCookieCSRFPostgresRedis(t *testing.T) {
	runRefreshCookieCSRF(t, postgresRedisEnv(t))
}
