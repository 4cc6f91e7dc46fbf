package provider

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/gatehouse/gatehouse/internal/clocktest"
)

func TestOIDCSignIn(t *testing.T) {
	m := startIdP(t)
	p := mustNew(t, m.settings("okta"))
	if p.ID() != "okta" || p.Type() != TypeOIDC || p.AutoLink() {
		t.Fatalf("ID/Type/AutoLink = %s/%s/%v", p.ID(), p.Type(), p.AutoLink())
	}
	a := newAttempt()
	authURL := p.AuthCodeURL(a.state, a.verifier, a.nonce, callback)
	q := mustParse(authURL).Query()
	for k, want := range map[string]string{
		"client_id": m.ClientID, "redirect_uri": callback, "state": a.state, "nonce": a.nonce,
		"response_type": "code", "scope": "openid email profile", "code_challenge_method": "S256",
	} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	if q.Get("code_challenge") == "" || q.Get("code_challenge") == a.verifier {
		t.Errorf("code_challenge %q is not an S256 challenge", q.Get("code_challenge"))
	}

	code := signIn(t, p, a)
	prof, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{Provider: "okta", Subject: "1234567890", Email: "jane.doe@example.com", EmailVerified: true}
	if diff := cmp.Diff(want, prof, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Raw" }, cmp.Ignore())); diff != "" {
		t.Errorf("profile (-want +got):\n%s", diff)
	}
	if prof.Raw["preferred_username"] != "jane.doe" || prof.Raw["iss"] != m.Issuer() {
		t.Errorf("raw claims %v", prof.Raw)
	}

	// The code is single use.
	_, err = p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
	wantCode(t, err, CodeInvalidGrant)
}

func TestOIDCIDTokenChecks(t *testing.T) {
	m := startIdP(t)
	p := mustNew(t, m.settings("okta"))
	for _, tc := range []struct {
		name string
		user *testUser
		// exchangeNonce replaces the attempt's nonce at the exchange.
		exchangeNonce *string
		want          string
	}{
		{"wrong nonce", nil, ptr("another attempt's nonce"), CodeNonceMismatch},
		{"no expected nonce", nil, ptr(""), CodeNonceMismatch},
		{"wrong audience", newUser(func(u *testUser) {
			u.edit = func(c *mockoidc.IDTokenClaims) { c.Audience = jwt.ClaimStrings{"another-client"} }
		}), nil, CodeAudienceMismatch},
		{"several audiences without azp", newUser(func(u *testUser) {
			u.edit = func(c *mockoidc.IDTokenClaims) { c.Audience = append(c.Audience, "another-client") }
		}), nil, CodeAudienceMismatch},
		{"azp of another client", newUser(func(u *testUser) { u.extra = map[string]any{"azp": "another-client"} }), nil, CodeAudienceMismatch},
		{"wrong issuer", newUser(func(u *testUser) {
			u.edit = func(c *mockoidc.IDTokenClaims) { c.Issuer = "https://evil.example" }
		}), nil, CodeIssuerMismatch},
		{"expired", newUser(func(u *testUser) {
			u.edit = func(c *mockoidc.IDTokenClaims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) }
		}), nil, CodeTokenExpired},
		{"not yet valid", newUser(func(u *testUser) {
			u.edit = func(c *mockoidc.IDTokenClaims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }
		}), nil, CodeInvalidIDToken},
		{"no sub", newUser(func(u *testUser) { u.drop = []string{"sub"} }), nil, CodeInvalidIDToken},
		{"at_hash of another access token", newUser(func(u *testUser) {
			u.extra = map[string]any{"at_hash": "bm90IHRoaXMgdG9rZW4ncw"}
		}), nil, CodeInvalidIDToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.user != nil {
				m.QueueUser(tc.user)
			}
			a := newAttempt()
			code := signIn(t, p, a)
			nonce := a.nonce
			if tc.exchangeNonce != nil {
				nonce = *tc.exchangeNonce
			}
			_, err := p.Exchange(context.Background(), code, a.verifier, nonce, callback)
			wantCode(t, err, tc.want)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestOIDCExpiredByClock moves the provider's clock back so that it signs
// an ID token that expired long ago.
func TestOIDCExpiredByClock(t *testing.T) {
	m := startIdP(t)
	p := mustNew(t, m.settings("okta"))
	m.FastForward(-2 * time.Hour)
	a := newAttempt()
	code := signIn(t, p, a)
	_, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
	wantCode(t, err, CodeTokenExpired)
}

func TestOIDCTokenResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"forged ID token", func(body map[string]any) {
			parts := strings.Split(body["id_token"].(string), ".")
			// Another token's payload under this signature.
			parts[1] = strings.Split(forgedPayload(), ".")[1]
			body["id_token"] = strings.Join(parts, ".")
		}, CodeInvalidIDToken},
		{"garbage ID token", func(body map[string]any) { body["id_token"] = "not.a.jwt" }, CodeInvalidIDToken},
		{"no ID token", func(body map[string]any) { delete(body, "id_token") }, CodeInvalidIDToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := startIdP(t)
			p := mustNew(t, m.settings("okta"))
			m.rewrite.Store(&tc.edit)
			a := newAttempt()
			code := signIn(t, p, a)
			_, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
			wantCode(t, err, tc.want)
		})
	}
}

// forgedPayload is a JWT whose payload claims another subject.
func forgedPayload() string {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "attacker", "iss": "x", "aud": "y", "exp": time.Now().Add(time.Hour).Unix()})
	s, _ := tok.SignedString([]byte("k"))
	return s
}

func TestOIDCCodeExchangeFailures(t *testing.T) {
	m := startIdP(t)
	p := mustNew(t, m.settings("okta"))

	t.Run("PKCE verifier of another attempt", func(t *testing.T) {
		a := newAttempt()
		code := signIn(t, p, a)
		_, err := p.Exchange(context.Background(), code, newAttempt().verifier, a.nonce, callback)
		wantCode(t, err, CodeInvalidGrant)
	})
	t.Run("unknown code", func(t *testing.T) {
		a := newAttempt()
		_, err := p.Exchange(context.Background(), "made-up", a.verifier, a.nonce, callback)
		wantCode(t, err, CodeInvalidGrant)
	})
	t.Run("token endpoint 503", func(t *testing.T) {
		a := newAttempt()
		code := signIn(t, p, a)
		m.faults.set(mockoidc.TokenEndpoint, http.StatusServiceUnavailable)
		defer m.faults.set(mockoidc.TokenEndpoint, 0)
		_, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
		wantCode(t, err, CodeProviderUnavailable)
	})
	t.Run("token endpoint timeout", func(t *testing.T) {
		a := newAttempt()
		code := signIn(t, p, a)
		m.faults.set(mockoidc.TokenEndpoint, -1)
		defer m.faults.set(mockoidc.TokenEndpoint, 0)
		_, err := p.Exchange(ctxTimeout(t, 100*time.Millisecond), code, a.verifier, a.nonce, callback)
		wantCode(t, err, CodeProviderUnavailable)
	})
	t.Run("caller gives up", func(t *testing.T) {
		a := newAttempt()
		code := signIn(t, p, a)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := p.Exchange(ctx, code, a.verifier, a.nonce, callback)
		wantCode(t, err, CodeProviderError) // not the provider's fault
	})
	t.Run("invalid client secret", func(t *testing.T) {
		s := m.settings("okta")
		s.ClientSecret = "wrong"
		p := mustNew(t, s)
		a := newAttempt()
		code := signIn(t, p, a)
		_, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
		wantCode(t, err, CodeProviderError)
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("error %q shows the secret", err)
		}
	})
}

func TestJWKSUnavailable(t *testing.T) {
	m := startIdP(t)
	p := mustNew(t, m.settings("okta"))
	m.faults.set(mockoidc.JWKSEndpoint, http.StatusServiceUnavailable)
	a := newAttempt()
	code := signIn(t, p, a)
	_, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
	wantCode(t, err, CodeProviderUnavailable)
}

func TestUserInfoFallback(t *testing.T) {
	m := startIdP(t)
	p := mustNew(t, m.settings("keycloak"))
	// The ID token carries only sub; user info has the email but does not
	// say it is verified.
	m.QueueUser(newUser(func(u *testUser) { u.drop = []string{"email", "email_verified"} }))
	a := newAttempt()
	code := signIn(t, p, a)
	prof, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
	if err != nil {
		t.Fatal(err)
	}
	if prof.Email != "jane.doe@example.com" || prof.EmailVerified {
		t.Errorf("email %q verified %v, want it from user info, unverified", prof.Email, prof.EmailVerified)
	}
	if _, ok := prof.Raw["userinfo"].(map[string]any); !ok {
		t.Errorf("raw %v has no userinfo", prof.Raw)
	}
	if m.faults.count(mockoidc.UserinfoEndpoint) != 1 {
		t.Errorf("user info called %d times", m.faults.count(mockoidc.UserinfoEndpoint))
	}

	t.Run("down", func(t *testing.T) {
		m.QueueUser(newUser(func(u *testUser) { u.drop = []string{"email"} }))
		m.faults.set(mockoidc.UserinfoEndpoint, http.StatusBadGateway)
		a := newAttempt()
		code := signIn(t, p, a)
		_, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
		wantCode(t, err, CodeProviderUnavailable)
	})
}

// TestLazyDiscovery: a provider that is down at start-up is built anyway;
// sign-in attempts fail as provider_unavailable without waiting, and work
// once the provider is back.
func TestLazyDiscovery(t *testing.T) {
	m := startIdP(t)
	m.faults.set(mockoidc.DiscoveryEndpoint, http.StatusServiceUnavailable)
	p := mustNew(t, m.settings("okta"))
	clock := clocktest.New(time.Now())
	p.(*oidcProvider).now = clock.Now
	reg, err := NewRegistry(p)
	if err != nil {
		t.Fatal(err)
	}
	if errs := reg.Probe(context.Background()); !IsUnavailable(errs["okta"]) {
		t.Fatalf("Probe = %v, want okta unavailable", errs)
	}

	a := newAttempt()
	u := mustParse(p.AuthCodeURL(a.state, a.verifier, a.nonce, callback))
	q := u.Query()
	if u.Host != "gatehouse.test" || q.Get("state") != a.state || q.Get("error") != "temporarily_unavailable" {
		t.Fatalf("AuthCodeURL while down = %s, want the callback with an error and the state", u)
	}
	wantCode(t, FromCallbackError(q.Get("error"), q.Get("error_description")), CodeProviderUnavailable)
	_, err = p.Exchange(context.Background(), "code", a.verifier, a.nonce, callback)
	wantCode(t, err, CodeProviderUnavailable)
	if n := m.faults.count(mockoidc.DiscoveryEndpoint); n != 1 {
		t.Errorf("%d discovery requests within the retry delay, want 1", n)
	}

	m.faults.set(mockoidc.DiscoveryEndpoint, 0)
	clock.Advance(DiscoveryRetry)
	a = newAttempt()
	code := signIn(t, p, a)
	if _, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback); err != nil {
		t.Fatal(err)
	}
	// Cached for good now.
	m.faults.set(mockoidc.DiscoveryEndpoint, http.StatusServiceUnavailable)
	clock.Advance(time.Hour)
	signIn(t, p, newAttempt())
	if errs := reg.Probe(context.Background()); len(errs) != 0 {
		t.Errorf("Probe = %v", errs)
	}
}

func TestDiscoveryConcurrentCallersShareOneRequest(t *testing.T) {
	m := startIdP(t)
	p := mustNew(t, m.settings("okta"))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			a := newAttempt()
			if u := p.AuthCodeURL(a.state, a.verifier, a.nonce, callback); !strings.HasPrefix(u, m.AuthorizationEndpoint()) {
				t.Errorf("AuthCodeURL = %s", u)
			}
		})
	}
	wg.Wait()
	if n := m.faults.count(mockoidc.DiscoveryEndpoint); n != 1 {
		t.Errorf("%d discovery requests, want 1", n)
	}
}

func TestDiscoveryDocumentProblems(t *testing.T) {
	t.Run("issuer differs", func(t *testing.T) {
		m := startIdP(t)
		s := m.settings("okta")
		s.Issuer += "/" // issuers must match exactly
		p := mustNew(t, s)
		a := newAttempt()
		q := mustParse(p.AuthCodeURL(a.state, a.verifier, a.nonce, callback)).Query()
		if q.Get("error") != CodeProviderError {
			t.Fatalf("error = %q", q.Get("error"))
		}
		wantCode(t, FromCallbackError(q.Get("error"), ""), CodeProviderError)
		_, err := p.Exchange(context.Background(), "code", a.verifier, a.nonce, callback)
		wantCode(t, err, CodeProviderError)
	})
	t.Run("not found", func(t *testing.T) {
		m := startIdP(t)
		s := m.settings("okta")
		s.Issuer += "/typo"
		_, err := mustNew(t, s).Exchange(context.Background(), "code", "v", "n", callback)
		wantCode(t, err, CodeProviderError)
	})
	t.Run("connection refused", func(t *testing.T) {
		s := Settings{ID: "okta", Type: TypeOIDC, ClientID: "c", ClientSecret: "s", Issuer: "http://127.0.0.1:1/oidc"}
		_, err := mustNew(t, s).Exchange(context.Background(), "code", "v", "n", callback)
		wantCode(t, err, CodeProviderUnavailable)
	})
}

func TestCallbackErrorKeepsRedirectQuery(t *testing.T) {
	got := mustParse(callbackError("https://gh.test/cb?x=1", "st", errorf(CodeProviderUnavailable, "down")))
	want := url.Values{"x": {"1"}, "state": {"st"}, "error": {"temporarily_unavailable"},
		"error_description": {"The provider's OpenID Connect discovery document could not be loaded."}}
	if diff := cmp.Diff(want, got.Query()); diff != "" {
		t.Error(diff)
	}
}
