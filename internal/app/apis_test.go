package app

import (
	"encoding/json"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/pkg/accesstoken"
)

// Black-box tests of audiences per API (RFC 8707 resource indicators):
// APIs registered with the CLI and the admin API, the resource parameter
// of sign-in and of the token endpoint, the scope a token carries, and
// pkg/accesstoken refusing a token meant for another API.

const (
	invoicesAPI = "https://api.example.com"
	billingAPI  = "https://billing.example.com/v1"
)

func TestAPIAudiencesEmbedded(t *testing.T) {
	runAPIAudiences(t, newAccountEnv(t, nil))
}

func TestAPIAudiencesPostgresRedis(t *testing.T) {
	runAPIAudiences(t, newAccountEnv(t, postgresRedisEnv(t)))
}

// audOf is a token's aud as a list (a single audience is a string).
func audOf(t *testing.T, tok string) []string {
	t.Helper()
	switch a := claimsOf(t, tok)["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			out = append(out, x.(string))
		}
		return out
	}
	t.Fatalf("token has no aud: %v", claimsOf(t, tok))
	return nil
}

// verifierFor is what an API's own server runs: pkg/accesstoken with its
// identifier as the audience.
func verifierFor(t *testing.T, e *accountEnv, issuer, audience string) *accesstoken.Verifier {
	t.Helper()
	v, err := accesstoken.NewVerifier(t.Context(), accesstoken.Options{
		Issuer: issuer, Audience: []string{audience}, JWKSURL: e.url("/.well-known/jwks.json"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func loginWith(t *testing.T, e *accountEnv, email string, extra map[string]any) (int, map[string]any) {
	t.Helper()
	body := map[string]any{"email": email, "password": strongPassword}
	for k, v := range extra {
		body[k] = v
	}
	code, out, _ := call(t, "POST", e.url("/v1/auth/login"), body)
	return code, out
}

func runAPIAudiences(t *testing.T, e *accountEnv) {
	const email = "aud@example.com"
	e.signUp(t, email)
	ops := e.newClient(t, "ops", "introspect,revoke")
	if _, code := e.cli(t, "users", "create", "--email", "apiadmin@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
		t.Fatal("users create --admin failed")
	}
	adminAT := e.login(t, "apiadmin@example.com", strongPassword)
	_, meta, _ := call(t, "GET", e.url("/.well-known/openid-configuration"), nil)
	issuer, _ := meta["issuer"].(string)
	if issuer == "" {
		t.Fatalf("discovery has no issuer: %v", meta)
	}

	// Registered with the CLI, as the README says.
	out, code := e.cli(t, "apis", "create", "--identifier", invoicesAPI, "--name", "Invoices", "--scopes", "read:invoices,write:invoices", "--output", "json")
	if code != 0 {
		t.Fatalf("apis create failed: %s", out)
	}
	var invoices struct {
		ID         string   `json:"id"`
		Identifier string   `json:"identifier"`
		Scopes     []string `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(out), &invoices); err != nil || invoices.ID == "" || invoices.Identifier != invoicesAPI || !slices.Equal(invoices.Scopes, []string{"read:invoices", "write:invoices"}) {
		t.Fatalf("apis create output %q: %v", out, err)
	}

	t.Run("CLIRefusesBadInput", func(t *testing.T) {
		for _, args := range [][]string{
			{"--identifier", invoicesAPI, "--name", "Again"},                           // taken
			{"--identifier", "https://x.example/#frag", "--name", "Fragment"},          // RFC 8707: no fragment
			{"--identifier", "not a uri", "--name", "Relative"},                        // not absolute
			{"--identifier", issuer, "--name", "Issuer"},                               // Gatehouse's own
			{"--identifier", "https://y.example", "--name", "S", "--scopes", "openid"}, // reserved scope
		} {
			if _, code := e.cli(t, append([]string{"apis", "create"}, args...)...); code == 0 {
				t.Errorf("apis create %v succeeded", args)
			}
		}
		out, _ := e.cli(t, "apis", "list", "--output", "json")
		var l struct {
			APIs []struct{ Identifier string } `json:"apis"`
		}
		if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.APIs) != 1 {
			t.Errorf("apis list after refused creates = %s (%v), want the one API", out, err)
		}
		// update changes what it is given and keeps the rest.
		out, code := e.cli(t, "apis", "update", invoices.ID, "--scopes", "read:invoices,write:invoices,export:invoices", "--output", "json")
		var up struct {
			Name   string   `json:"name"`
			Scopes []string `json:"scopes"`
		}
		if err := json.Unmarshal([]byte(out), &up); code != 0 || err != nil || up.Name != "Invoices" || len(up.Scopes) != 3 {
			t.Errorf("apis update --scopes = %d %s, want the name kept and three scopes", code, out)
		}
	})

	var billingID string
	t.Run("AdminAPI", func(t *testing.T) {
		code, body, h := call(t, "POST", e.url("/v1/admin/apis"), map[string]any{"identifier": billingAPI, "name": "Billing", "scopes": []string{"read:billing"}}, bearer(adminAT)...)
		if code != 201 || body["identifier"] != billingAPI || h.Get("Location") != "/v1/admin/apis/"+body["id"].(string) {
			t.Fatalf("create = %d %v %v", code, body, h)
		}
		billingID = body["id"].(string)
		if code, body, _ := call(t, "POST", e.url("/v1/admin/apis"), map[string]any{"identifier": billingAPI, "name": "Dup"}, bearer(adminAT)...); code != 409 || body["code"] != "api_exists" {
			t.Errorf("duplicate = %d %v, want 409 api_exists", code, body)
		}
		if code, body, _ := call(t, "POST", e.url("/v1/admin/apis"), map[string]any{"identifier": "relative/path", "name": ""}, bearer(adminAT)...); code != 422 || !slices.Contains(rules(body, "identifier"), "uri") || !slices.Contains(rules(body, "name"), "required") {
			t.Errorf("invalid = %d %v, want 422 naming identifier and name", code, body)
		}
		userAT := e.login(t, email, strongPassword)
		if code, _, _ := call(t, "GET", e.url("/v1/admin/apis"), nil, bearer(userAT)...); code != 403 {
			t.Errorf("list as a user = %d, want 403", code)
		}
		code, body, _ = call(t, "PATCH", e.url("/v1/admin/apis/"+billingID), map[string]any{"scopes": []string{"read:billing", "write:billing"}}, bearer(adminAT)...)
		if code != 200 || body["name"] != "Billing" || len(body["scopes"].([]any)) != 2 {
			t.Errorf("patch = %d %v", code, body)
		}
		if code, _, _ := call(t, "GET", e.url("/v1/admin/apis/api_unknown"), nil, bearer(adminAT)...); code != 404 {
			t.Errorf("get unknown = %d, want 404", code)
		}
		code, body, _ = call(t, "GET", e.url("/v1/admin/apis"), nil, bearer(adminAT)...)
		if list, _ := body["apis"].([]any); code != 200 || len(list) != 2 {
			t.Errorf("list = %d %v, want both APIs", code, body)
		}
		// Discovery lists the scopes the APIs define.
		_, meta, _ := call(t, "GET", e.url("/.well-known/oauth-authorization-server"), nil)
		for _, sc := range []string{"openid", "offline_access", "introspect", "read:invoices", "write:billing"} {
			if !slices.Contains(meta["scopes_supported"].([]any), any(sc)) {
				t.Errorf("scopes_supported = %v, lacks %s", meta["scopes_supported"], sc)
			}
		}
	})

	invoicesV := verifierFor(t, e, issuer, invoicesAPI)
	billingV := verifierFor(t, e, issuer, billingAPI)

	t.Run("UserTokens", func(t *testing.T) {
		// Without a resource: Gatehouse's own API, every user scope.
		code, body := loginWith(t, e, email, nil)
		if code != 200 {
			t.Fatalf("login = %d %v", code, body)
		}
		def := body["access_token"].(string)
		if aud := audOf(t, def); !slices.Equal(aud, []string{issuer}) || claimsOf(t, def)["scope"] != "openid profile email offline_access" {
			t.Errorf("default token: aud %v scope %v", aud, claimsOf(t, def)["scope"])
		}
		if _, err := invoicesV.Verify(t.Context(), def); err == nil {
			t.Error("the invoices API accepted a token for Gatehouse's own API")
		}

		// For the invoices API: its aud and the scope asked for.
		code, body = loginWith(t, e, email, map[string]any{"resource": invoicesAPI, "scope": "openid read:invoices"})
		if code != 200 {
			t.Fatalf("login for the API = %d %v", code, body)
		}
		at := body["access_token"].(string)
		verifyIndependently(t, e.url("/.well-known/jwks.json"), at)
		if aud := audOf(t, at); !slices.Equal(aud, []string{invoicesAPI}) {
			t.Errorf("aud = %v, want [%s]", aud, invoicesAPI)
		}
		c, err := invoicesV.Verify(t.Context(), at)
		if err != nil || c.Scope != "openid read:invoices" {
			t.Errorf("invoices API: %+v, %v; want accepted with scope openid read:invoices", c, err)
		}
		if _, err := billingV.Verify(t.Context(), at); err == nil {
			t.Error("the billing API accepted a token for the invoices API")
		}
		// Gatehouse's own API refuses it: it is not for Gatehouse.
		if code, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); code != 401 {
			t.Errorf("/v1/me with the invoices API's token = %d, want 401", code)
		}
		// Introspection answers for every API's token.
		if in := e.introspect(t, ops, at); in["active"] != true || !slices.Contains(in["aud"].([]any), any(invoicesAPI)) || in["scope"] != "openid read:invoices" {
			t.Errorf("introspection = %v", in)
		}

		// Unknown resources and scopes: refused before the password.
		for _, extra := range []map[string]any{
			{"resource": "https://unknown.example.com"},
			{"resource": []string{invoicesAPI, "https://unknown.example.com"}},
			{"resource": "https://api.example.com#frag"},
			{"resource": "relative"},
		} {
			if code, body := loginWith(t, e, email, extra); code != 400 || body["code"] != "invalid_target" {
				t.Errorf("login %v = %d %v, want 400 invalid_target", extra, code, body)
			}
		}
		if code, body := loginWith(t, e, email, map[string]any{"resource": invoicesAPI, "scope": "read:billing"}); code != 400 || body["code"] != "invalid_scope" {
			t.Errorf("a scope of another API = %d %v, want 400 invalid_scope", code, body)
		}
		if code, body := loginWith(t, e, email, map[string]any{"resource": 42}); code != 400 || body["code"] != "invalid_json" {
			t.Errorf("resource 42 = %d %v, want 400 invalid_json", code, body)
		}
	})

	// The audience and scope asked for at the password step are the
	// session's after the second factor, whatever the verify request says.
	t.Run("SecondFactorKeepsTheGrant", func(t *testing.T) {
		const mfaEmail = "aud-mfa@example.com"
		secret := enrolTOTP(t, e, e.signUp(t, mfaEmail))
		code, body := loginWith(t, e, mfaEmail, map[string]any{"resource": invoicesAPI, "scope": "read:invoices"})
		if code != 200 || body["mfa_required"] != true {
			t.Fatalf("login = %d %v, want mfa_required", code, body)
		}
		code, tok, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": body["mfa_token"].(string), "method": "totp", "code": totpAt(t, secret, time.Now())})
		if code != 200 {
			t.Fatalf("verify = %d %v", code, tok)
		}
		at := tok["access_token"].(string)
		if aud, sc := audOf(t, at), claimsOf(t, at)["scope"]; !slices.Equal(aud, []string{invoicesAPI}) || sc != "read:invoices" {
			t.Errorf("after the second factor: aud %v scope %v", aud, sc)
		}
		if _, err := invoicesV.Verify(t.Context(), at); err != nil {
			t.Errorf("invoices API refused the token: %v", err)
		}
	})

	t.Run("Refresh", func(t *testing.T) {
		code, body := loginWith(t, e, email, map[string]any{"resource": []string{invoicesAPI, issuer, billingAPI}, "scope": "openid read:invoices read:billing"})
		if code != 200 {
			t.Fatalf("login = %d %v", code, body)
		}
		at, rt := body["access_token"].(string), body["refresh_token"].(string)
		if aud := audOf(t, at); !slices.Equal(aud, []string{invoicesAPI, issuer, billingAPI}) {
			t.Fatalf("aud = %v", aud)
		}
		// Both Gatehouse and the APIs accept a token for all of them.
		if code, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); code != 200 {
			t.Errorf("/v1/me = %d", code)
		}
		ref := func(resources ...string) (int, map[string]any) {
			t.Helper()
			code, body, _ := form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "resource": resources})
			if code == 200 {
				rt = body["refresh_token"].(string)
			}
			return code, body
		}
		// Narrowed to one API.
		code, body = ref(invoicesAPI)
		if code != 200 || !slices.Equal(audOf(t, body["access_token"].(string)), []string{invoicesAPI}) {
			t.Fatalf("narrowed refresh = %d %v", code, body)
		}
		if sc := claimsOf(t, body["access_token"].(string))["scope"]; sc != "openid read:invoices read:billing" {
			t.Errorf("refreshed scope = %v, want the grant", sc)
		}
		// Two of the three: the parameter repeated (RFC 8707 §2).
		code, body = ref(invoicesAPI, issuer)
		if code != 200 || !slices.Equal(audOf(t, body["access_token"].(string)), []string{invoicesAPI, issuer}) {
			t.Fatalf("refresh for two = %d %v", code, body)
		}
		// Beyond the grant, or unknown: invalid_target, the token unused.
		for _, res := range []string{"https://unknown.example.com", "not a uri"} {
			if code, body := ref(res); code != 400 || body["error"] != "invalid_target" {
				t.Errorf("refresh for %q = %d %v, want 400 invalid_target", res, code, body)
			}
		}
		// Without resource: everything the sign-in was granted.
		code, body = ref()
		if code != 200 || !slices.Equal(audOf(t, body["access_token"].(string)), []string{invoicesAPI, issuer, billingAPI}) {
			t.Fatalf("refresh = %d %v", code, body)
		}

		// A session granted only the invoices API cannot widen to billing.
		code, body = loginWith(t, e, email, map[string]any{"resource": invoicesAPI})
		if code != 200 {
			t.Fatal(code, body)
		}
		rt = body["refresh_token"].(string)
		if code, body := ref(billingAPI); code != 400 || body["error"] != "invalid_target" {
			t.Errorf("widening refresh = %d %v, want 400 invalid_target", code, body)
		}
		if code, body := ref(); code != 200 || !slices.Equal(audOf(t, body["access_token"].(string)), []string{invoicesAPI}) {
			t.Errorf("refresh after a refused widening = %d %v", code, body)
		}
	})

	t.Run("ClientCredentials", func(t *testing.T) {
		m2m := e.newClient(t, "worker", "read:invoices,introspect")
		cc := func(v url.Values) (int, map[string]any) {
			t.Helper()
			v.Set("grant_type", "client_credentials")
			code, body, _ := form(t, e.url("/oauth2/token"), v, m2m.ID, m2m.Secret)
			return code, body
		}
		code, body := cc(url.Values{"resource": {invoicesAPI}})
		if code != 200 || body["scope"] != "read:invoices" {
			t.Fatalf("for the API = %d %v, want scope read:invoices only", code, body)
		}
		at := body["access_token"].(string)
		if c, err := invoicesV.Verify(t.Context(), at); err != nil || c.Scope != "read:invoices" || c.Subject != m2m.ID {
			t.Errorf("invoices API: %+v, %v", c, err)
		}
		if _, err := billingV.Verify(t.Context(), at); err == nil {
			t.Error("the billing API accepted the invoices API's client token")
		}
		// Without a resource: as before, the issuer and every scope.
		code, body = cc(url.Values{})
		if code != 200 || !slices.Equal(audOf(t, body["access_token"].(string)), []string{issuer}) || body["scope"] != "read:invoices introspect" {
			t.Errorf("no resource = %d %v", code, body)
		}
		for _, tc := range []struct {
			v    url.Values
			want string
		}{
			{url.Values{"resource": {"https://unknown.example.com"}}, "invalid_target"},
			{url.Values{"resource": {invoicesAPI, "https://unknown.example.com"}}, "invalid_target"},
			{url.Values{"resource": {invoicesAPI}, "scope": {"introspect"}}, "invalid_scope"},
			{url.Values{"resource": {billingAPI}, "scope": {"read:billing"}}, "invalid_scope"}, // not the client's
		} {
			if code, body := cc(tc.v); code != 400 || body["error"] != tc.want {
				t.Errorf("%v = %d %v, want 400 %s", tc.v, code, body, tc.want)
			}
		}
		// Revocation works on every API's tokens.
		if code, _, _ := form(t, e.url("/oauth2/revoke"), url.Values{"token": {at}}, m2m.ID, m2m.Secret); code != 200 {
			t.Errorf("revoke = %d", code)
		}
		if in := e.introspect(t, ops, at); in["active"] != false {
			t.Errorf("introspection after revoke = %v", in)
		}
	})

	t.Run("DeletedAPI", func(t *testing.T) {
		code, body := loginWith(t, e, email, map[string]any{"resource": billingAPI})
		if code != 200 {
			t.Fatal(code, body)
		}
		rt := body["refresh_token"].(string)
		if code, _, _ := call(t, "DELETE", e.url("/v1/admin/apis/"+billingID), nil, bearer(adminAT)...); code != 204 {
			t.Fatalf("delete = %d", code)
		}
		if code, body := loginWith(t, e, email, map[string]any{"resource": billingAPI}); code != 400 || body["code"] != "invalid_target" {
			t.Errorf("login for a deleted API = %d %v", code, body)
		}
		// The node that deleted it forgot it at once; others within the
		// cache's lifetime.
		if code, body, _ := form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); code != 400 || body["error"] != "invalid_target" {
			t.Errorf("refresh of a session for a deleted API = %d %v, want invalid_target", code, body)
		}
	})
}

// TestDefaultAudience: GATEHOUSE_DEFAULT_AUDIENCE is the aud of tokens
// asked for without a resource, and Gatehouse's own API accepts it.
func TestDefaultAudience(t *testing.T) {
	e := newAccountEnv(t, map[string]string{"GATEHOUSE_DEFAULT_AUDIENCE": invoicesAPI})
	at := e.signUp(t, "default-aud@example.com")
	if aud := audOf(t, at); !slices.Equal(aud, []string{invoicesAPI}) {
		t.Errorf("aud = %v, want [%s]", aud, invoicesAPI)
	}
	if code, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); code != 200 {
		t.Errorf("/v1/me with a default-audience token = %d, want 200", code)
	}
	// The default audience is a valid resource without registration.
	if code, body := loginWith(t, e, "default-aud@example.com", map[string]any{"resource": invoicesAPI}); code != 200 {
		t.Errorf("login for the default audience = %d %v", code, body)
	}
}
