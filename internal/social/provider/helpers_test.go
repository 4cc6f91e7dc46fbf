package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"
)

// idp is an in-process OpenID provider (mockoidc: real discovery, JWKS,
// RS256-signed ID tokens, PKCE) with fault injection in front of it.
type idp struct {
	*mockoidc.MockOIDC
	faults *faults
	// rewrite, when set, edits the token endpoint's JSON response.
	rewrite atomic.Pointer[func(map[string]any)]
}

func startIdP(t *testing.T) *idp {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{MockOIDC: m, faults: &faults{}}
	for _, mw := range []func(http.Handler) http.Handler{p.faults.middleware, p.rewriteToken, acceptScopes} {
		if err := m.AddMiddleware(mw); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

// settings is a generic OIDC block for this provider.
func (p *idp) settings(id string) Settings {
	return Settings{ID: id, Type: TypeOIDC, ClientID: p.ClientID, ClientSecret: p.ClientSecret, Issuer: p.Issuer()}
}

// acceptScopes drops scopes mockoidc does not know (Microsoft's
// User.Read) from authorisation requests, as Entra ID accepts them.
func acceptScopes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == mockoidc.AuthorizationEndpoint {
			q := r.URL.Query()
			var keep []string
			for _, s := range strings.Fields(q.Get("scope")) {
				if slices.Contains(mockoidc.ScopesSupported, s) {
					keep = append(keep, s)
				}
			}
			q.Set("scope", strings.Join(keep, " "))
			r.URL.RawQuery = q.Encode()
		}
		next.ServeHTTP(w, r)
	})
}

func (p *idp) rewriteToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		edit := p.rewrite.Load()
		if r.URL.Path != mockoidc.TokenEndpoint || edit == nil {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &body) == nil {
			(*edit)(body)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		if body != nil {
			_ = json.NewEncoder(w).Encode(body)
		} else {
			_, _ = w.Write(rec.Body.Bytes())
		}
	})
}

// faults makes chosen paths fail with a status, or hang until the client
// gives up (status -1), and counts requests per path.
type faults struct {
	mu     sync.Mutex
	status map[string]int
	hits   map[string]int
}

func (f *faults) set(path string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == nil {
		f.status = map[string]int{}
	}
	f.status[path] = status
}

func (f *faults) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *faults) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if f.hits == nil {
			f.hits = map[string]int{}
		}
		f.hits[r.URL.Path]++
		status := f.status[r.URL.Path]
		f.mu.Unlock()
		switch {
		case status == -1:
			// The server notices a client hanging up only once the body
			// is read.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case status != 0:
			http.Error(w, "injected failure", status)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// testUser is a mockoidc user whose ID token claims a test can shape.
type testUser struct {
	mockoidc.MockUser
	extra map[string]any                // added to the ID token
	drop  []string                      // removed from the ID token
	edit  func(*mockoidc.IDTokenClaims) // changes iss, aud, exp …
}

func newUser(edit func(u *testUser)) *testUser {
	u := &testUser{MockUser: *mockoidc.DefaultUser()}
	if edit != nil {
		edit(u)
	}
	return u
}

func (u *testUser) ID() string { return u.Subject }

func (u *testUser) Userinfo(scope []string) ([]byte, error) { return u.MockUser.Userinfo(scope) }

func (u *testUser) Claims(scope []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	if u.edit != nil {
		u.edit(base)
	}
	c, err := u.MockUser.Claims(scope, base)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	m := jwt.MapClaims{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for _, k := range u.drop {
		delete(m, k)
	}
	for k, v := range u.extra {
		m[k] = v
	}
	return m, nil
}

const callback = "https://gatehouse.test/v1/auth/oauth/x/callback"

// noRedirects is a browser that stops at the first redirect.
var noRedirects = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// authorize plays the browser: it opens the authorisation URL and returns
// the query of the redirect back to the callback.
func authorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	resp, err := noRedirects.Get(authURL)
	if err != nil {
		t.Fatalf("GET authorisation URL: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorisation endpoint: HTTP %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != callback {
		t.Fatalf("redirected to %s, want the callback", got)
	}
	return loc.Query()
}

// attempt is one sign-in attempt's secrets.
type attempt struct {
	state, verifier, nonce string
}

func newAttempt() attempt {
	return attempt{state: oauth2.GenerateVerifier(), verifier: oauth2.GenerateVerifier(), nonce: oauth2.GenerateVerifier()}
}

// signIn runs the browser part of the flow and returns the code.
func signIn(t *testing.T, p Provider, a attempt) string {
	t.Helper()
	q := authorize(t, p.AuthCodeURL(a.state, a.verifier, a.nonce, callback))
	if q.Get("state") != a.state {
		t.Fatalf("state %q came back as %q", a.state, q.Get("state"))
	}
	if q.Get("code") == "" {
		t.Fatalf("no code in the callback: %v", q)
	}
	return q.Get("code")
}

func mustNew(t *testing.T, s Settings) Provider {
	t.Helper()
	p, err := New(s, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// wantCode fails unless err is an *Error with code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want an *Error with code %s", err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("code %s (%v), want %s", pe.Code, err, code)
	}
	if pe.Description != descriptions[code] {
		t.Errorf("description %q is not the fixed one for %s", pe.Description, code)
	}
	if IsUnavailable(err) != (code == CodeProviderUnavailable) {
		t.Errorf("IsUnavailable = %v for %s", IsUnavailable(err), code)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
