package oauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/oauth"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// newSession starts a session of the env's user bound to client ("" for
// the first-party client) and returns its refresh token.
func (e *scopedEnv) newSession(t *testing.T, client string) string {
	t.Helper()
	raw, err := secret.NewToken(32)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	if _, err := e.store.CreateSession(t.Context(), store.Session{UserID: e.user.ID, ClientID: client, ExpiresAt: exp, AMR: []string{"pwd"}, AuthTime: time.Now()},
		store.RefreshToken{UserID: e.user.ID, ClientID: client, TokenHash: secret.HashToken(raw), ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	return raw
}

// post sends form to path with HTTP Basic user:pass when basic is set.
func (e *scopedEnv) post(t *testing.T, path string, form url.Values, basic []string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, out
}

// TestPublicClients: a public client (the first-party "gatehouse" or one
// registered as public) is identified by its client_id, in HTTP Basic with
// an empty secret or in the body without client_secret (RFC 6749 §2.3.1,
// §3.2.1); it refreshes the tokens of its own sessions only, never gets
// client_credentials (unauthorized_client), introspection or revocation
// (invalid_client). A confidential client without its secret is refused.
func TestPublicClients(t *testing.T) {
	for _, sb := range stores {
		t.Run(sb.name, func(t *testing.T) {
			e := newScopedEnv(t, sb.open(t))
			pub, err := e.clients.CreatePublic(t.Context(), "Mobile app", oauth.Actor{})
			if err != nil {
				t.Fatal(err)
			}
			if !pub.Public || pub.SecretHash != "" {
				t.Fatalf("CreatePublic = %+v, want a public client without a secret", pub)
			}
			if _, err := e.clients.CreatePublic(t.Context(), " ", oauth.Actor{}); err == nil {
				t.Error("CreatePublic without a name succeeded")
			}
			conf := e.client.Client.ID
			refresh := func(tok string) url.Values {
				return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}
			}
			withID := func(v url.Values, id string) url.Values { v.Set("client_id", id); return v }
			clientOf := func(at any) string {
				t.Helper()
				s, _ := at.(string)
				c, err := e.tokens.Verify(t.Context(), s)
				if err != nil {
					t.Fatalf("issued access token: %v", err)
				}
				return c.ClientID
			}

			ok := []struct {
				name       string
				client     string // the session's; "" first-party
				form       func(tok string) url.Values
				basic      []string
				wantClient string
			}{
				{"first party, Basic with empty secret", "", refresh, []string{"gatehouse", ""}, "gatehouse"},
				{"first party, client_id in the body", "", func(tok string) url.Values { return withID(refresh(tok), "gatehouse") }, nil, "gatehouse"},
				{"first party, Basic and the same body client_id", "", func(tok string) url.Values { return withID(refresh(tok), "gatehouse") }, []string{"gatehouse", ""}, "gatehouse"},
				{"first party, no client at all (as before)", "", refresh, nil, "gatehouse"},
				{"registered public, Basic with empty secret", pub.ID, refresh, []string{pub.ID, ""}, pub.ID},
				{"registered public, client_id in the body", pub.ID, func(tok string) url.Values { return withID(refresh(tok), pub.ID) }, nil, pub.ID},
			}
			for _, c := range ok {
				tok := e.newSession(t, c.client)
				code, body := e.post(t, "/oauth2/token", c.form(tok), c.basic)
				if code != 200 {
					t.Errorf("%s: %d %v, want 200", c.name, code, body)
					continue
				}
				if got := clientOf(body["access_token"]); got != c.wantClient {
					t.Errorf("%s: access token client_id %q, want %q", c.name, got, c.wantClient)
				}
				// The rotated token keeps working for the same client.
				if code, body := e.post(t, "/oauth2/token", c.form(body["refresh_token"].(string)), c.basic); code != 200 {
					t.Errorf("%s: second refresh %d %v, want 200", c.name, code, body)
				}
			}

			refused := []struct {
				name   string
				client string
				path   string
				form   func(tok string) url.Values
				basic  []string
				status int
				code   string
			}{
				{"public client presents a first-party token", "", "/oauth2/token", refresh, []string{pub.ID, ""}, 400, "invalid_grant"},
				{"first party presents a public client's token", pub.ID, "/oauth2/token", refresh, []string{"gatehouse", ""}, 400, "invalid_grant"},
				{"no client for a public client's token", pub.ID, "/oauth2/token", refresh, nil, 400, "invalid_grant"},
				{"confidential client with an empty secret", conf, "/oauth2/token", refresh, []string{conf, ""}, 401, "invalid_client"},
				{"confidential client_id in the body without a secret", conf, "/oauth2/token", func(tok string) url.Values { return withID(refresh(tok), conf) }, nil, 401, "invalid_client"},
				{"unknown client_id without a secret", "", "/oauth2/token", func(tok string) url.Values { return withID(refresh(tok), "gh_nobody") }, nil, 401, "invalid_client"},
				{"public client with a secret", pub.ID, "/oauth2/token", refresh, []string{pub.ID, "guess"}, 401, "invalid_client"},
				{"first party with a secret", "", "/oauth2/token", refresh, []string{"gatehouse", "guess"}, 401, "invalid_client"},
				{"public client, client_credentials", "", "/oauth2/token", func(string) url.Values { return url.Values{"grant_type": {"client_credentials"}} }, []string{pub.ID, ""}, 400, "unauthorized_client"},
				{"first party, client_credentials", "", "/oauth2/token", func(string) url.Values {
					return url.Values{"grant_type": {"client_credentials"}, "client_id": {"gatehouse"}}
				}, nil, 400, "unauthorized_client"},
				{"public client, introspection", pub.ID, "/oauth2/introspect", func(tok string) url.Values { return url.Values{"token": {tok}} }, []string{pub.ID, ""}, 401, "invalid_client"},
				{"first party, introspection", "", "/oauth2/introspect", func(tok string) url.Values { return url.Values{"token": {tok}} }, []string{"gatehouse", ""}, 401, "invalid_client"},
				{"public client, revocation of its own token", pub.ID, "/oauth2/revoke", func(tok string) url.Values { return url.Values{"token": {tok}} }, []string{pub.ID, ""}, 401, "invalid_client"},
				{"first party, revocation", "", "/oauth2/revoke", func(tok string) url.Values { return withID(url.Values{"token": {tok}}, "gatehouse") }, nil, 401, "invalid_client"},
			}
			for _, c := range refused {
				tok := e.newSession(t, c.client)
				if code, body := e.post(t, c.path, c.form(tok), c.basic); code != c.status || body["error"] != c.code {
					t.Errorf("%s: %d %v, want %d %s", c.name, code, body, c.status, c.code)
				}
			}

			// A disabled public client is no client.
			dis, err := e.store.CreateClient(t.Context(), store.Client{ID: "gh_disabled", Public: true, DisabledAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if code, body := e.post(t, "/oauth2/token", refresh(e.newSession(t, dis.ID)), []string{dis.ID, ""}); code != 401 || body["error"] != "invalid_client" {
				t.Errorf("disabled public client: %d %v, want 401 invalid_client", code, body)
			}
		})
	}
}

// TestMetadataPaths: RFC 8414 metadata at both well-known paths, the same
// document, which names the public clients' "none" and Gatehouse's scopes.
func TestMetadataPaths(t *testing.T) {
	e := newScopedEnv(t, stores[0].open(t))
	get := func(path string) map[string]any {
		t.Helper()
		res, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var m map[string]any
		if res.StatusCode != 200 || json.Unmarshal(raw, &m) != nil {
			t.Fatalf("GET %s = %d %s", path, res.StatusCode, raw)
		}
		return m
	}
	oidc, rfc := get("/.well-known/openid-configuration"), get("/.well-known/oauth-authorization-server")
	if diff := cmp.Diff(oidc, rfc); diff != "" {
		t.Errorf("the two documents differ (-openid-configuration +oauth-authorization-server):\n%s", diff)
	}
	if rfc["issuer"] != "https://auth.example.test" {
		t.Errorf("issuer = %v", rfc["issuer"])
	}
	auth := rfc["token_endpoint_auth_methods_supported"].([]any)
	if !slices.Contains(auth, any("none")) || !slices.Contains(auth, any("client_secret_basic")) {
		t.Errorf("token_endpoint_auth_methods_supported = %v, want none and client_secret_basic", auth)
	}
	if intro := rfc["introspection_endpoint_auth_methods_supported"].([]any); slices.Contains(intro, any("none")) {
		t.Errorf("introspection_endpoint_auth_methods_supported = %v, has none (public clients may not introspect)", intro)
	}
	// Gatehouse's own scopes, until an API defines more (see the
	// black-box TestAPIAudiences).
	if got := rfc["scopes_supported"].([]any); !slices.Equal(got, []any{"openid", "profile", "email", "offline_access", "introspect", "revoke", "authz:check"}) {
		t.Errorf("scopes_supported = %v, want Gatehouse's own", got)
	}
}
