package provider

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

const (
	tenantA = "11111111-2222-3333-4444-555555555555"
	tenantB = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	oidJane = "99999999-8888-7777-6666-555555555555"
)

func TestCheckTenant(t *testing.T) {
	const tmpl = "https://login.microsoftonline.com/{tenantid}/v2.0"
	iss := func(tid string) string { return "https://login.microsoftonline.com/" + tid + "/v2.0" }
	for _, tc := range []struct {
		tenant, issuer, iss, tid string
		ok                       bool
	}{
		{"common", tmpl, iss(tenantA), tenantA, true},
		{"common", tmpl, iss(msaTenantID), msaTenantID, true},
		{"common", tmpl, iss(tenantA), strings.ToUpper(tenantA), true},
		{"common", tmpl, iss(tenantA), tenantB, false}, // another tenant's issuer
		{"common", tmpl, iss(tenantA), "", false},      // no tid
		{"common", tmpl, iss("../x"), "../x", false},   // not a GUID
		{"common", tmpl, "https://evil.example/" + tenantA + "/v2.0", tenantA, false},
		{"common", tmpl, "https://login.microsoftonline.com/{tenantid}/v2.0", tenantA, false},
		{"organizations", tmpl, iss(tenantA), tenantA, true},
		{"organizations", tmpl, iss(msaTenantID), msaTenantID, false}, // personal account
		{"consumers", iss(msaTenantID), iss(msaTenantID), msaTenantID, true},
		{"consumers", iss(msaTenantID), iss(tenantA), tenantA, false}, // work account
		{tenantA, iss(tenantA), iss(tenantA), tenantA, true},
		{tenantA, iss(tenantA), iss(tenantB), tenantB, false},
		{tenantA, iss(tenantA), iss(tenantA), tenantB, false},
	} {
		err := checkTenant(tc.tenant, tc.issuer, tc.iss, tc.tid)
		if (err == nil) != tc.ok {
			t.Errorf("checkTenant(%s, %s, %s, %s) = %v, want ok %v", tc.tenant, tc.issuer, tc.iss, tc.tid, err, tc.ok)
		}
		if err != nil {
			wantCode(t, err, CodeIssuerMismatch)
		}
	}
}

func TestAcceptTenantIssuer(t *testing.T) {
	for _, tc := range []struct {
		discovered string
		ok         bool
	}{
		{"https://login.microsoftonline.com/{tenantid}/v2.0", true},
		{"https://login.microsoftonline.com/" + msaTenantID + "/v2.0", true},
		{"https://evil.example/{tenantid}/v2.0", false},
		{"http://login.microsoftonline.com/{tenantid}/v2.0", false},
		{"", false},
	} {
		if err := acceptTenantIssuer("https://login.microsoftonline.com/common/v2.0", tc.discovered); (err == nil) != tc.ok {
			t.Errorf("acceptTenantIssuer(%q) = %v", tc.discovered, err)
		}
	}
}

// graph emulates Microsoft Graph /me.
type graph struct {
	*httptest.Server
	status atomic.Int32
	me     atomic.Pointer[map[string]any]
}

func startGraph(t *testing.T) *graph {
	g := &graph{}
	g.me.Store(&map[string]any{
		"id": oidJane, "displayName": "Jane Doe (Contoso)", "givenName": "Jane", "surname": "Doe",
		"mail": "jane@contoso.example", "userPrincipalName": "jane@contoso.example",
	})
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodGet || r.URL.Path != "/v1.0/me":
			http.NotFound(w, r)
		case !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || len(r.Header.Get("Authorization")) < 20:
			w.WriteHeader(http.StatusUnauthorized)
		case !strings.Contains(r.URL.Query().Get("$select"), "givenName"):
			w.WriteHeader(http.StatusBadRequest)
		case g.status.Load() != 0:
			w.WriteHeader(int(g.status.Load()))
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(*g.me.Load())
		}
	}))
	t.Cleanup(g.Close)
	return g
}

func TestMicrosoftSingleTenant(t *testing.T) {
	m := startIdP(t)
	g := startGraph(t)
	p := mustNew(t, Settings{ID: "microsoft", ClientID: m.ClientID, ClientSecret: m.ClientSecret, Tenant: tenantA, Issuer: m.Issuer(), APIURL: g.URL + "/v1.0"})
	if scope := mustParse(p.AuthCodeURL("s", "v", "n", callback)).Query().Get("scope"); scope != "openid email profile User.Read" {
		t.Errorf("scope %q", scope)
	}
	work := func(edit func(u *testUser)) *testUser {
		return newUser(func(u *testUser) {
			u.EmailVerified = false
			u.extra = map[string]any{"tid": tenantA, "oid": oidJane, "name": "Jane"}
			if edit != nil {
				edit(u)
			}
		})
	}
	for _, tc := range []struct {
		name         string
		user         *testUser
		graphStatus  int
		graphID      string
		want         string
		email        string
		emailVerfied bool
	}{
		{name: "email not vouched for", user: work(nil), email: "jane.doe@example.com"},
		{name: "xms_edov", user: work(func(u *testUser) { u.extra["xms_edov"] = true }), email: "jane.doe@example.com", emailVerfied: true},
		{name: "xms_edov as a string", user: work(func(u *testUser) { u.extra["xms_edov"] = "1" }), email: "jane.doe@example.com", emailVerfied: true},
		{name: "email_verified", user: work(func(u *testUser) { u.EmailVerified = true }), email: "jane.doe@example.com", emailVerfied: true},
		{name: "no email claim: Graph mail, unverified", user: work(func(u *testUser) { u.drop = []string{"email"}; u.extra["xms_edov"] = true }), email: "jane@contoso.example"},
		{name: "another tenant", user: work(func(u *testUser) { u.extra["tid"] = tenantB }), want: CodeIssuerMismatch},
		{name: "no tid", user: work(func(u *testUser) { delete(u.extra, "tid") }), want: CodeIssuerMismatch},
		{name: "Graph down", user: work(nil), graphStatus: http.StatusServiceUnavailable, want: CodeProviderUnavailable},
		{name: "Graph refuses the token", user: work(nil), graphStatus: http.StatusForbidden, want: CodeProviderError},
		{name: "Graph about someone else", user: work(nil), graphID: tenantB, want: CodeProviderError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.status.Store(int32(tc.graphStatus))
			if tc.graphID != "" {
				me := *g.me.Load()
				other := map[string]any{}
				for k, v := range me {
					other[k] = v
				}
				other["id"] = tc.graphID
				g.me.Store(&other)
				defer g.me.Store(&me)
			}
			m.QueueUser(tc.user)
			a := newAttempt()
			code := signIn(t, p, a)
			prof, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
			if tc.want != "" {
				wantCode(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if prof.Email != tc.email || prof.EmailVerified != tc.emailVerfied {
				t.Errorf("email %q verified %v, want %q %v", prof.Email, prof.EmailVerified, tc.email, tc.emailVerfied)
			}
			if prof.Subject != "1234567890" || prof.Name != "Jane Doe (Contoso)" || prof.GivenName != "Jane" || prof.FamilyName != "Doe" {
				t.Errorf("profile %+v", prof)
			}
			if _, ok := prof.Raw["graph"].(map[string]any); !ok || prof.Raw["tid"] != tenantA {
				t.Errorf("raw %v", prof.Raw)
			}
		})
	}
}

// TestMicrosoftMultiTenant runs the flow against a login host whose
// common, organizations and consumers discovery documents look like
// Entra ID's (an issuer template with {tenantid}; consumers' concrete
// issuer), with tokens signed by the in-process provider.
func TestMicrosoftMultiTenant(t *testing.T) {
	m := startIdP(t)
	g := startGraph(t)
	var login *httptest.Server
	login = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if rest != "v2.0/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		iss := login.URL + "/{tenantid}/v2.0"
		if tenant == "consumers" {
			iss = login.URL + "/" + msaTenantID + "/v2.0"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss, "authorization_endpoint": m.AuthorizationEndpoint(), "token_endpoint": m.TokenEndpoint(),
			"jwks_uri": m.JWKSEndpoint(), "id_token_signing_alg_values_supported": []string{"RS256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		})
	}))
	t.Cleanup(login.Close)

	issuedBy := func(issTenant, tid string) *testUser {
		return newUser(func(u *testUser) {
			u.extra = map[string]any{"tid": tid, "oid": oidJane}
			u.edit = func(c *mockoidc.IDTokenClaims) { c.Issuer = login.URL + "/" + issTenant + "/v2.0" }
		})
	}
	for _, tc := range []struct {
		name     string
		tenant   string
		user     *testUser
		clientID string
		want     string
	}{
		{"common, work account", "common", issuedBy(tenantA, tenantA), "", ""},
		{"common, personal account", "common", issuedBy(msaTenantID, msaTenantID), "", ""},
		{"common, issuer of another tenant", "common", issuedBy(tenantA, tenantB), "", CodeIssuerMismatch},
		{"common, foreign issuer", "common", newUser(func(u *testUser) {
			u.extra = map[string]any{"tid": tenantA}
			u.edit = func(c *mockoidc.IDTokenClaims) { c.Issuer = "https://evil.example/" + tenantA + "/v2.0" }
		}), "", CodeIssuerMismatch},
		{"common, wrong audience", "common", newUser(func(u *testUser) {
			u.extra = map[string]any{"tid": tenantA}
			u.edit = func(c *mockoidc.IDTokenClaims) {
				c.Issuer = login.URL + "/" + tenantA + "/v2.0"
				c.Audience = jwt.ClaimStrings{"another-app"}
			}
		}), "", CodeAudienceMismatch},
		{"organizations, work account", "organizations", issuedBy(tenantA, tenantA), "", ""},
		{"organizations, personal account", "organizations", issuedBy(msaTenantID, msaTenantID), "", CodeIssuerMismatch},
		{"consumers, personal account", "consumers", issuedBy(msaTenantID, msaTenantID), "", ""},
		{"consumers, work account", "consumers", issuedBy(tenantA, tenantA), "", CodeIssuerMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustNew(t, Settings{
				ID: "microsoft", ClientID: m.ClientID, ClientSecret: m.ClientSecret, Tenant: tc.tenant,
				Issuer: login.URL + "/" + tc.tenant + "/v2.0", APIURL: g.URL + "/v1.0",
			})
			m.QueueUser(tc.user)
			a := newAttempt()
			code := signIn(t, p, a)
			prof, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
			if tc.want != "" {
				wantCode(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if prof.Subject != "1234567890" || prof.GivenName != "Jane" {
				t.Errorf("profile %+v", prof)
			}
		})
	}
}

func TestMicrosoftDefaults(t *testing.T) {
	s := Settings{ID: "microsoft", ClientID: "c", ClientSecret: "s"}.withDefaults()
	if s.Tenant != "common" || s.Issuer != "https://login.microsoftonline.com/common/v2.0" || s.APIURL != "https://graph.microsoft.com/v1.0" {
		t.Errorf("defaults %+v", s)
	}
	s = Settings{ID: "entra", Type: TypeMicrosoft, Tenant: strings.ToUpper(tenantA), ClientID: "c", ClientSecret: "s"}.withDefaults()
	if s.Issuer != "https://login.microsoftonline.com/"+tenantA+"/v2.0" {
		t.Errorf("issuer %s", s.Issuer)
	}
	if p := mustNew(t, s).(*oidcProvider); p.multiIssuer {
		t.Error("a tenant ID is not multi-tenant")
	}
}
