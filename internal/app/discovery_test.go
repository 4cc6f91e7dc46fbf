package app

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// newIssuerEnv is newAccountEnv on a port chosen beforehand, with the
// issuer set to the server's own URL, as in a deployment: discovery
// clients require the issuer to be the URL they fetched the metadata from,
// and call the endpoints the metadata names.
func newIssuerEnv(t *testing.T, env map[string]string) *accountEnv {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	all := map[string]string{"GATEHOUSE_HTTP_ADDR": addr, "GATEHOUSE_ISSUER": "http://" + addr}
	for k, v := range env {
		all[k] = v
	}
	e := newAccountEnv(t, all)
	if e.url("") != "http://"+addr {
		t.Fatalf("server listens at %s, want %s", e.url(""), addr)
	}
	return e
}

func runDiscoverySuite(t *testing.T, e *accountEnv) {
	issuer := e.url("")
	doc := func(path string) map[string]any {
		t.Helper()
		res, raw := get(t, e.url(path))
		var m map[string]any
		if res.StatusCode != 200 || json.Unmarshal(raw, &m) != nil {
			t.Fatalf("GET %s = %d %s", path, res.StatusCode, raw)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		return m
	}

	t.Run("MetadataRFC8414", func(t *testing.T) {
		oidcDoc, md := doc("/.well-known/openid-configuration"), doc("/.well-known/oauth-authorization-server")
		if diff := cmp.Diff(oidcDoc, md); diff != "" {
			t.Errorf("the two documents differ (-openid-configuration +oauth-authorization-server):\n%s", diff)
		}
		// RFC 8414 §3.3: the issuer is identical to the one the metadata
		// was fetched for, and §2: an https (here: loopback http) URL
		// without query or fragment.
		if md["issuer"] != issuer {
			t.Fatalf("issuer = %v, want %s", md["issuer"], issuer)
		}
		u, err := url.Parse(issuer)
		if err != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Errorf("issuer %q has a query or fragment", issuer)
		}
		// §2: REQUIRED members, and the token endpoint, which every grant
		// offered uses. (No authorization_endpoint: no grant uses one.)
		for _, m := range []string{"issuer", "response_types_supported", "token_endpoint", "jwks_uri", "grant_types_supported"} {
			if _, ok := md[m]; !ok {
				t.Errorf("metadata lacks %s", m)
			}
		}
		if _, ok := md["authorization_endpoint"]; ok {
			t.Error("metadata names an authorization endpoint, which is not served")
		}
		for _, m := range []string{"response_types_supported", "grant_types_supported", "scopes_supported", "token_endpoint_auth_methods_supported",
			"introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported", "claims_supported"} {
			if _, ok := md[m].([]any); !ok {
				t.Errorf("%s = %v, want a JSON array", m, md[m])
			}
		}
		if got := toStrings(md["token_endpoint_auth_methods_supported"]); !slices.Equal(got, []string{"client_secret_basic", "client_secret_post", "none"}) {
			t.Errorf("token_endpoint_auth_methods_supported = %v", got)
		}
		if got := toStrings(md["scopes_supported"]); !slices.Contains(got, "introspect") || !slices.Contains(got, "revoke") {
			t.Errorf("scopes_supported = %v, want introspect and revoke", got)
		}

		// Every endpoint named answers, in its own terms.
		for _, m := range []string{"jwks_uri", "token_endpoint", "introspection_endpoint", "revocation_endpoint"} {
			ep, _ := md[m].(string)
			if !strings.HasPrefix(ep, issuer+"/") {
				t.Errorf("%s = %q, not under the issuer", m, ep)
				continue
			}
			if m == "jwks_uri" {
				res, raw := get(t, ep)
				var set struct{ Keys []map[string]any }
				if res.StatusCode != 200 || json.Unmarshal(raw, &set) != nil || len(set.Keys) == 0 {
					t.Errorf("GET %s = %d %s, want a JWK set", ep, res.StatusCode, raw)
				}
				continue
			}
			// Without any parameter: a token endpoint answers
			// invalid_request, the client-authenticated ones
			// invalid_client; both RFC 6749 §5.2 JSON.
			want := map[string]string{"token_endpoint": "invalid_request", "introspection_endpoint": "invalid_client", "revocation_endpoint": "invalid_client"}[m]
			code, body, _ := form(t, ep, url.Values{})
			if code < 400 || code > 401 || body["error"] != want {
				t.Errorf("POST %s = %d %v, want error %s", ep, code, body, want)
			}
		}
	})

	t.Run("GoOIDCDiscovery", func(t *testing.T) {
		ctx := context.Background()
		p, err := oidc.NewProvider(ctx, issuer) // checks the issuer too
		if err != nil {
			t.Fatalf("go-oidc discovery: %v", err)
		}
		if got := p.Endpoint().TokenURL; got != issuer+"/oauth2/token" {
			t.Errorf("go-oidc token URL = %q", got)
		}
		// An access token verifies with the keys at the discovered
		// jwks_uri (its audience is the issuer).
		e.signUp(t, "dora@example.com")
		at := e.login(t, "dora@example.com", strongPassword)
		tok, err := p.Verifier(&oidc.Config{ClientID: issuer}).Verify(ctx, at)
		if err != nil {
			t.Fatalf("go-oidc verification of an access token: %v", err)
		}
		var c struct {
			ClientID string `json:"client_id"`
		}
		if err := tok.Claims(&c); err != nil || c.ClientID != "gatehouse" {
			t.Errorf("client_id = %q (%v), want gatehouse", c.ClientID, err)
		}
	})

	// x/oauth2 refreshes as the first-party public client "gatehouse" in
	// each of its ways to send the client: Basic "gatehouse:" (an empty
	// secret), client_id in the body, and auto-detection.
	t.Run("XOAuth2FirstPartyRefresh", func(t *testing.T) {
		e.signUp(t, "xavier@example.com")
		for _, style := range []struct {
			name  string
			style oauth2.AuthStyle
		}{{"InHeader", oauth2.AuthStyleInHeader}, {"InParams", oauth2.AuthStyleInParams}, {"AutoDetect", oauth2.AuthStyleAutoDetect}} {
			login := loginFull(t, e, "xavier@example.com", strongPassword)
			cfg := oauth2.Config{ClientID: "gatehouse", Endpoint: oauth2.Endpoint{TokenURL: issuer + "/oauth2/token", AuthStyle: style.style}}
			rt := login["refresh_token"].(string)
			for i := range 2 { // twice: the rotated token works too
				tok, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
				if err != nil {
					t.Fatalf("%s: refresh %d: %v", style.name, i+1, err)
				}
				if tok.AccessToken == "" || tok.RefreshToken == "" || tok.RefreshToken == rt {
					t.Fatalf("%s: refresh %d gave %+v, want a new access and refresh token", style.name, i+1, tok)
				}
				if code, body, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(tok.AccessToken)...); code != 200 {
					t.Errorf("%s: /v1/me with the refreshed token = %d %v", style.name, code, body)
				}
				rt = tok.RefreshToken
			}
		}
	})

	t.Run("RegisteredPublicClient", func(t *testing.T) {
		out, code := e.cli(t, "clients", "create", "--name", "Mobile app", "--public")
		if code != 0 || !strings.Contains(out, "no secret") || strings.Contains(out, "client_secret") {
			t.Fatalf("clients create --public = %d %q, want a client_id and no secret", code, out)
		}
		if _, code := e.cli(t, "clients", "create", "--name", "x", "--public", "--scopes", "introspect"); code == 0 {
			t.Error("clients create --public --scopes succeeded; a public client has no scopes")
		}
		out, code = e.cli(t, "clients", "create", "--name", "Web app", "--public", "--output", "json")
		var pub struct {
			ClientID string  `json:"client_id"`
			Secret   *string `json:"client_secret"`
			Public   bool    `json:"public"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &pub) != nil || pub.ClientID == "" || pub.Secret != nil || !pub.Public {
			t.Fatalf("clients create --public --output json = %d %q", code, out)
		}
		conf := e.newClient(t, "Backend", "introspect")
		out, code = e.cli(t, "clients", "list")
		if code != 0 || !strings.Contains(out, "TYPE") {
			t.Fatalf("clients list = %d %q", code, out)
		}
		for _, line := range strings.Split(out, "\n") {
			switch {
			case strings.HasPrefix(line, pub.ClientID) && !strings.HasSuffix(strings.TrimSpace(line), "public"),
				strings.HasPrefix(line, conf.ID) && !strings.HasSuffix(strings.TrimSpace(line), "confidential"):
				t.Errorf("clients list line %q shows the wrong type", line)
			}
		}
		out, _ = e.cli(t, "clients", "list", "--output", "json")
		if !strings.Contains(out, `"public": true`) && !strings.Contains(out, `"public":true`) {
			t.Errorf("clients list --output json shows no public client: %s", out)
		}

		e.signUp(t, "pia@example.com")
		for _, bad := range []string{"gh_unknown", conf.ID} {
			code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "pia@example.com", "password": strongPassword, "client_id": bad})
			if code != 400 || body["code"] != "invalid_client" {
				t.Errorf("login with client_id %s = %d %v, want 400 invalid_client", bad, code, body)
			}
		}
		// client_id "gatehouse" is the first-party client, as without one.
		code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "pia@example.com", "password": strongPassword, "client_id": "gatehouse"})
		if code != 200 {
			t.Fatalf("login as gatehouse = %d %v", code, body)
		}
		if c, b := refresh(t, e, body["refresh_token"].(string)); c != 200 {
			t.Errorf("first-party refresh of a login with client_id gatehouse = %d %v", c, b)
		}

		code, body, _ = call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "pia@example.com", "password": strongPassword, "client_id": pub.ClientID})
		if code != 200 {
			t.Fatalf("login through the public client = %d %v", code, body)
		}
		verifier := func() *oidc.IDTokenVerifier {
			p, err := oidc.NewProvider(context.Background(), issuer)
			if err != nil {
				t.Fatal(err)
			}
			return p.Verifier(&oidc.Config{ClientID: issuer})
		}()
		clientOf := func(at string) string {
			t.Helper()
			tok, err := verifier.Verify(context.Background(), at)
			if err != nil {
				t.Fatalf("access token: %v", err)
			}
			var c struct {
				ClientID string `json:"client_id"`
			}
			_ = tok.Claims(&c)
			return c.ClientID
		}
		if got := clientOf(body["access_token"].(string)); got != pub.ClientID {
			t.Errorf("access token of a login through %s has client_id %q", pub.ClientID, got)
		}
		cfg := oauth2.Config{ClientID: pub.ClientID, Endpoint: oauth2.Endpoint{TokenURL: issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
		tok, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: body["refresh_token"].(string)}).Token()
		if err != nil {
			t.Fatalf("refresh as the public client: %v", err)
		}
		if got := clientOf(tok.AccessToken); got != pub.ClientID {
			t.Errorf("refreshed access token has client_id %q, want %s", got, pub.ClientID)
		}
		// Bound to its client: the first-party client may not refresh it
		// (and the attempt ends the session: the token has leaked).
		if c, b := refresh(t, e, tok.RefreshToken); c != 400 || b["error"] != "invalid_grant" {
			t.Errorf("first-party refresh of the public client's token = %d %v, want 400 invalid_grant", c, b)
		}
		// A public client gets no client_credentials.
		if c, b, _ := form(t, issuer+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {pub.ClientID}}); c != 400 || b["error"] != "unauthorized_client" {
			t.Errorf("client_credentials as a public client = %d %v, want 400 unauthorized_client", c, b)
		}

		// Through a second factor: the session is bound to the client the
		// password step named, whatever the verify request says.
		secret := enrolTOTP(t, e, e.signUp(t, "mia@example.com"))
		code, body, _ = call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "mia@example.com", "password": strongPassword, "client_id": pub.ClientID})
		if code != 200 || body["mfa_required"] != true {
			t.Fatalf("login through the public client with TOTP = %d %v", code, body)
		}
		now := totpAt(t, secret, time.Now())
		if now == totpAt(t, secret, time.Now().Add(-30*time.Second)) {
			t.Skip("codes of adjacent steps coincide; rerun")
		}
		code, body, _ = call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": body["mfa_token"].(string), "method": "totp", "code": now})
		if code != 200 {
			t.Fatalf("mfa verify = %d %v", code, body)
		}
		if got := clientOf(body["access_token"].(string)); got != pub.ClientID {
			t.Errorf("access token after the second factor has client_id %q, want %s", got, pub.ClientID)
		}
		if c, b, _ := form(t, issuer+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)}, "client_id": {pub.ClientID}}); c != 200 {
			t.Errorf("refresh of the MFA session as its public client = %d %v", c, b)
		}

		// The admin API registers and lists public clients too.
		if _, code := e.cli(t, "users", "create", "--email", "ada@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
			t.Fatal("users create --admin failed")
		}
		adminAT := e.login(t, "ada@example.com", strongPassword)
		code, body, _ = call(t, "POST", e.url("/v1/admin/clients"), map[string]any{"name": "SPA", "public": true}, bearer(adminAT)...)
		if _, hasSecret := body["client_secret"]; code != 201 || body["public"] != true || hasSecret {
			t.Fatalf("admin create public client = %d %v, want 201, public, no secret", code, body)
		}
		spa := body["client_id"].(string)
		if code, body, _ := call(t, "POST", e.url("/v1/admin/clients"), map[string]any{"name": "SPA", "public": true, "scopes": []string{"revoke"}}, bearer(adminAT)...); code != 422 {
			t.Errorf("admin create public client with scopes = %d %v, want 422", code, body)
		}
		code, body, _ = call(t, "POST", e.url("/v1/admin/clients"), map[string]any{"name": "Service"}, bearer(adminAT)...)
		if code != 201 || body["public"] != false || body["client_secret"] == nil {
			t.Errorf("admin create confidential client = %d %v", code, body)
		}
		code, body, _ = call(t, "GET", e.url("/v1/admin/clients"), nil, bearer(adminAT)...)
		if code != 200 {
			t.Fatalf("admin list clients = %d %v", code, body)
		}
		types := map[string]any{}
		for _, c := range body["clients"].([]any) {
			c := c.(map[string]any)
			types[c["client_id"].(string)] = c["public"]
		}
		if types[spa] != true || types[pub.ClientID] != true || types[conf.ID] != false {
			t.Errorf("admin list: public = %v", types)
		}
	})
}

func TestDiscoveryEmbedded(t *testing.T) {
	runDiscoverySuite(t, newIssuerEnv(t, tokenSuiteEnv))
}

func TestDiscoveryPostgresRedis(t *testing.T) {
	env := postgresRedisEnv(t)
	for k, v := range tokenSuiteEnv {
		env[k] = v
	}
	runDiscoverySuite(t, newIssuerEnv(t, env))
}
