package accesstoken_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/pkg/accesstoken"
)

type signingKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newKey(t *testing.T, kid string, alg jose.SignatureAlgorithm) signingKey {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, alg: alg, priv: priv}
}

func (k signingKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// sign issues a token with go-jose; opts changes the header.
func (k signingKey) sign(t *testing.T, c accesstoken.Claims, opts *jose.SignerOptions) string {
	t.Helper()
	if opts == nil {
		opts = (&jose.SignerOptions{}).WithType("at+jwt")
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// handMade builds a token with an arbitrary header, signed with HMAC key
// (or unsigned when key is nil).
func handMade(t *testing.T, header map[string]any, c accesstoken.Claims, key []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	if key == nil {
		return input + "."
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// keyServer plays Gatehouse's JWKS endpoint.
type keyServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	fetches atomic.Int64
}

func newKeyServer(t *testing.T, keys ...jose.JSONWebKey) *keyServer {
	t.Helper()
	ks := &keyServer{status: http.StatusOK}
	ks.setKeys(t, keys...)
	ks.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		ks.fetches.Add(1)
		ks.mu.Lock()
		defer ks.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(ks.status)
		_, _ = w.Write(ks.body)
	}))
	t.Cleanup(ks.srv.Close)
	return ks
}

func (ks *keyServer) setKeys(t *testing.T, keys ...jose.JSONWebKey) {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey{}, keys...)})
	if err != nil {
		t.Fatal(err)
	}
	ks.setBody(b)
}

func (ks *keyServer) setBody(b []byte) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.body = b
}

func claimsAt(issuer string, now time.Time) accesstoken.Claims {
	return accesstoken.Claims{
		Issuer:    issuer,
		Subject:   "user-1",
		Audience:  []string{issuer},
		ClientID:  "client-1",
		IssuedAt:  now,
		NotBefore: now,
		ExpiresAt: now.Add(15 * time.Minute),
		ID:        "jti-1",
		SessionID: "sid-1",
		AMR:       []string{"pwd"},
		Scope:     "openid",
	}
}

func newVerifier(t *testing.T, opts accesstoken.Options) *accesstoken.Verifier {
	t.Helper()
	v, err := accesstoken.NewVerifier(t.Context(), opts)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestVerify(t *testing.T) {
	clk := clocktest.New(time.Now().Truncate(time.Second))
	rs, es, ed := newKey(t, "rs", jose.RS256), newKey(t, "es", jose.ES256), newKey(t, "ed", jose.EdDSA)
	ks := newKeyServer(t, rs.jwk(), es.jwk(), ed.jwk())
	iss := ks.srv.URL // the JWKS URL defaults to issuer + /.well-known/jwks.json
	v := newVerifier(t, accesstoken.Options{Issuer: iss, Now: clk.Now})
	c := claimsAt(iss, clk.Now())

	for _, k := range []signingKey{rs, es, ed} {
		got, err := v.Verify(t.Context(), k.sign(t, c, nil))
		if err != nil {
			t.Errorf("%s: Verify: %v", k.alg, err)
			continue
		}
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("%s: claims (-want +got):\n%s", k.alg, diff)
		}
	}

	var publicJSON []byte
	for _, k := range []signingKey{rs, es} {
		b, _ := json.Marshal(k.jwk())
		publicJSON = append(publicJSON, b...)
	}
	expired := c
	expired.ExpiresAt = clk.Now().Add(-time.Minute)
	otherIss := c
	otherIss.Issuer = "https://evil.example"
	otherAud := c
	otherAud.Audience = []string{"https://other.example"}
	impostor := newKey(t, "es", jose.ES256)
	for name, raw := range map[string]string{
		"alg none":                handMade(t, map[string]any{"alg": "none", "kid": "es", "typ": "at+jwt"}, c, nil),
		"HS256 with public key":   handMade(t, map[string]any{"alg": "HS256", "kid": "rs", "typ": "at+jwt"}, c, publicJSON),
		"ES256 for the EdDSA key": signingKey{kid: "ed", alg: jose.ES256, priv: es.priv}.sign(t, c, nil),
		"typ JWT":                 es.sign(t, c, (&jose.SignerOptions{}).WithType("JWT")),
		"no typ":                  es.sign(t, c, &jose.SignerOptions{}),
		"no kid":                  signingKey{alg: jose.ES256, priv: es.priv}.sign(t, c, nil),
		"unknown kid":             signingKey{kid: "nope", alg: jose.ES256, priv: es.priv}.sign(t, c, nil),
		"impostor key":            impostor.sign(t, c, nil),
		"expired":                 es.sign(t, expired, nil),
		"wrong issuer":            es.sign(t, otherIss, nil),
		"wrong audience":          es.sign(t, otherAud, nil),
		"garbage":                 "abc",
		"too long":                es.sign(t, c, nil) + strings.Repeat("A", accesstoken.MaxTokenBytes),
	} {
		if _, err := v.Verify(t.Context(), raw); !errors.Is(err, accesstoken.ErrInvalid) {
			t.Errorf("%s: Verify = %v, want ErrInvalid", name, err)
		}
	}
}

func TestAllowlistAndAudience(t *testing.T) {
	clk := clocktest.New(time.Now().Truncate(time.Second))
	es, ed := newKey(t, "es", jose.ES256), newKey(t, "ed", jose.EdDSA)
	ks := newKeyServer(t, es.jwk(), ed.jwk())
	v := newVerifier(t, accesstoken.Options{
		Issuer:     "https://auth.example.test",
		Audience:   []string{"https://api.example.test"},
		JWKSURL:    ks.srv.URL + "/.well-known/jwks.json",
		Algorithms: []string{"EdDSA"},
		Now:        clk.Now,
	})
	c := claimsAt("https://auth.example.test", clk.Now())
	c.Audience = []string{"https://api.example.test"}
	if _, err := v.Verify(t.Context(), ed.sign(t, c, nil)); err != nil {
		t.Errorf("EdDSA token: %v", err)
	}
	if _, err := v.Verify(t.Context(), es.sign(t, c, nil)); !errors.Is(err, accesstoken.ErrInvalid) {
		t.Errorf("ES256 token with only EdDSA allowed: %v", err)
	}
	c.Audience = []string{"https://auth.example.test"}
	if _, err := v.Verify(t.Context(), ed.sign(t, c, nil)); !errors.Is(err, accesstoken.ErrInvalid) {
		t.Errorf("token for the issuer's own audience: %v", err)
	}

	for _, algs := range [][]string{{"HS256"}, {"none"}, {"RS256", "PS256"}} {
		if _, err := accesstoken.NewVerifier(t.Context(), accesstoken.Options{Issuer: "x", JWKSURL: ks.srv.URL + "/.well-known/jwks.json", Algorithms: algs}); err == nil {
			t.Errorf("NewVerifier accepted algorithms %v", algs)
		}
	}
}

func TestRefetchOnUnknownKey(t *testing.T) {
	clk := clocktest.New(time.Now().Truncate(time.Second))
	old, next := newKey(t, "old", jose.ES256), newKey(t, "next", jose.ES256)
	ks := newKeyServer(t, old.jwk())
	iss := ks.srv.URL
	v := newVerifier(t, accesstoken.Options{Issuer: iss, Now: clk.Now, MinRefreshInterval: 10 * time.Second, RefreshInterval: time.Hour})
	c := claimsAt(iss, clk.Now())
	if n := ks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}
	if _, err := v.Verify(t.Context(), old.sign(t, c, nil)); err != nil {
		t.Fatal(err)
	}

	// Rotation on the server: within the rate limit the new kid is not
	// fetched, however many tokens carry it.
	ks.setKeys(t, next.jwk(), old.jwk())
	clk.Advance(5 * time.Second)
	for range 10 {
		if _, err := v.Verify(t.Context(), next.sign(t, c, nil)); !errors.Is(err, accesstoken.ErrInvalid) {
			t.Fatalf("new kid within the rate limit: %v, want ErrInvalid", err)
		}
	}
	clk.Advance(5 * time.Second)
	if _, err := v.Verify(t.Context(), next.sign(t, c, nil)); err != nil {
		t.Errorf("new kid after the rate limit: %v", err)
	}
	if n := ks.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (the start and one refetch)", n)
	}
	if _, err := v.Verify(t.Context(), old.sign(t, c, nil)); err != nil {
		t.Errorf("old kid after the refetch: %v", err)
	}
	for range 10 {
		_, _ = v.Verify(t.Context(), signingKey{kid: "bogus", alg: jose.ES256, priv: old.priv}.sign(t, c, nil))
	}
	if n := ks.fetches.Load(); n != 2 {
		t.Errorf("bogus kids right after a fetch caused %d fetches in all, want still 2", n)
	}
}

// TestUnknownKidFetchOutlivesTheRequest: a client that sends a token with
// an unknown kid and hangs up while the JWKS is being fetched must not
// cancel the fetch, nor make the Verifier believe it fetched: the rotated
// key is there for the next request at once.
func TestUnknownKidFetchOutlivesTheRequest(t *testing.T) {
	clk := clocktest.New(time.Now().Truncate(time.Second))
	old, next := newKey(t, "old", jose.ES256), newKey(t, "next", jose.ES256)
	ks := newKeyServer(t, old.jwk())
	arrived, release := make(chan struct{}), make(chan struct{})
	var gated atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gated.Load() {
			arrived <- struct{}{}
			<-release
		}
		ks.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	iss := "https://auth.example.test"
	v := newVerifier(t, accesstoken.Options{Issuer: iss, JWKSURL: srv.URL + "/.well-known/jwks.json", Now: clk.Now, MinRefreshInterval: 10 * time.Second, RefreshInterval: time.Hour})
	c := claimsAt(iss, clk.Now())

	ks.setKeys(t, next.jwk(), old.jwk()) // rotation
	clk.Advance(time.Minute)
	gated.Store(true)
	ctx, hangUp := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = v.Verify(ctx, next.sign(t, c, nil))
	}()
	<-arrived // the fetch is under way
	hangUp()
	gated.Store(false)
	close(release)
	<-done

	// The clock has not moved: within MinRefreshInterval no other fetch may
	// happen, so the key must have come with the first one.
	if _, err := v.Verify(t.Context(), next.sign(t, c, nil)); err != nil {
		t.Errorf("the rotated key after a caller hung up during its fetch: %v", err)
	}
}

func TestPeriodicRefresh(t *testing.T) {
	clk := clocktest.New(time.Now().Truncate(time.Second))
	gone := newKey(t, "gone", jose.ES256)
	ks := newKeyServer(t, gone.jwk())
	iss := ks.srv.URL
	v := newVerifier(t, accesstoken.Options{Issuer: iss, Now: clk.Now, RefreshInterval: 10 * time.Millisecond, MinRefreshInterval: time.Hour})
	raw := gone.sign(t, claimsAt(iss, clk.Now()), nil)
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatal(err)
	}
	ks.setKeys(t) // the key expired on the server
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := v.Verify(t.Context(), raw); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the key removed from the JWKS is still trusted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A failed refresh keeps the keys fetched before.
	back := newKey(t, "back", jose.ES256)
	ks.setKeys(t, back.jwk())
	n := ks.fetches.Load()
	for ks.fetches.Load() < n+2 {
		time.Sleep(5 * time.Millisecond)
	}
	ks.mu.Lock()
	ks.status = http.StatusInternalServerError
	ks.mu.Unlock()
	n = ks.fetches.Load()
	for ks.fetches.Load() < n+3 {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := v.Verify(t.Context(), back.sign(t, claimsAt(iss, clk.Now()), nil)); err != nil {
		t.Errorf("after failed refreshes: %v", err)
	}
}

func TestJWKSFiltering(t *testing.T) {
	clk := clocktest.New(time.Now().Truncate(time.Second))
	good := newKey(t, "good", jose.ES256)
	ed := newKey(t, "ed", jose.EdDSA)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	withPrivate, _ := json.Marshal(jose.JSONWebKey{Key: good.priv, KeyID: "private", Algorithm: "ES256"})
	entry := func(k jose.JSONWebKey) string {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	body := `{"keys":[` + strings.Join([]string{
		entry(good.jwk()),
		`{"kty":"oct","kid":"oct","alg":"HS256","k":"c2VjcmV0"}`,
		`{"kty":"oct","kid":"oct-rs","alg":"RS256","k":"c2VjcmV0"}`,
		`{"kty":"XYZ","kid":"odd"}`,
		entry(jose.JSONWebKey{Key: ed.priv.Public(), KeyID: "enc", Algorithm: "EdDSA", Use: "enc"}),
		entry(jose.JSONWebKey{Key: ed.priv.Public(), KeyID: "noalg"}),
		entry(jose.JSONWebKey{Key: ed.priv.Public(), Algorithm: "EdDSA"}),
		entry(jose.JSONWebKey{Key: ed.priv.Public(), KeyID: "mismatch", Algorithm: "ES256"}),
		entry(jose.JSONWebKey{Key: &small.PublicKey, KeyID: "small", Algorithm: "RS256"}),
		string(withPrivate),
		entry(jose.JSONWebKey{Key: ed.priv.Public(), KeyID: "good", Algorithm: "EdDSA"}), // duplicate kid
	}, ",") + `]}`
	ks := newKeyServer(t)
	ks.setBody([]byte(body))
	iss := ks.srv.URL
	v := newVerifier(t, accesstoken.Options{Issuer: iss, Now: clk.Now, MinRefreshInterval: time.Hour})
	c := claimsAt(iss, clk.Now())

	if _, err := v.Verify(t.Context(), good.sign(t, c, nil)); err != nil {
		t.Errorf("the good key next to odd ones: %v", err)
	}
	// A private key in a JWKS is a server mistake; its public half still verifies.
	if _, err := v.Verify(t.Context(), signingKey{kid: "private", alg: jose.ES256, priv: good.priv}.sign(t, c, nil)); err != nil {
		t.Errorf("key published with its private half: %v", err)
	}
	for name, raw := range map[string]string{
		"oct key, HS256":     handMade(t, map[string]any{"alg": "HS256", "kid": "oct", "typ": "at+jwt"}, c, []byte("secret")),
		"oct key, RS256":     handMade(t, map[string]any{"alg": "HS256", "kid": "oct-rs", "typ": "at+jwt"}, c, []byte("secret")),
		"encryption key":     signingKey{kid: "enc", alg: jose.EdDSA, priv: ed.priv}.sign(t, c, nil),
		"key without alg":    signingKey{kid: "noalg", alg: jose.EdDSA, priv: ed.priv}.sign(t, c, nil),
		"alg of other type":  signingKey{kid: "mismatch", alg: jose.EdDSA, priv: ed.priv}.sign(t, c, nil),
		"RSA under 2048":     signingKey{kid: "small", alg: jose.RS256, priv: small}.sign(t, c, nil),
		"duplicate kid":      signingKey{kid: "good", alg: jose.EdDSA, priv: ed.priv}.sign(t, c, nil),
		"no such kid at all": signingKey{kid: "odd", alg: jose.EdDSA, priv: ed.priv}.sign(t, c, nil),
	} {
		if _, err := v.Verify(t.Context(), raw); !errors.Is(err, accesstoken.ErrInvalid) {
			t.Errorf("%s: Verify = %v, want ErrInvalid", name, err)
		}
	}
}

func TestNewVerifierErrors(t *testing.T) {
	ks := newKeyServer(t)
	ks.setBody([]byte(`{"keys":`))
	empty := newKeyServer(t)
	empty.setBody([]byte(`{}`))
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	for name, opts := range map[string]accesstoken.Options{
		"no issuer":         {JWKSURL: ks.srv.URL + "/.well-known/jwks.json"},
		"bad JWKS":          {Issuer: ks.srv.URL},
		"not found":         {Issuer: ks.srv.URL, JWKSURL: ks.srv.URL + "/elsewhere"},
		"unreachable":       {Issuer: downURL},
		"negative leeway":   {Issuer: ks.srv.URL, Leeway: -time.Second},
		"no keys member":    {Issuer: empty.srv.URL},
		"malformed JWKSURL": {Issuer: ks.srv.URL, JWKSURL: "://"},
	} {
		if _, err := accesstoken.NewVerifier(context.Background(), opts); err == nil {
			t.Errorf("%s: NewVerifier succeeded", name)
		}
	}
}

func TestMiddleware(t *testing.T) {
	clk := clocktest.New(time.Now().Truncate(time.Second))
	k := newKey(t, "k", jose.ES256)
	ks := newKeyServer(t, k.jwk())
	iss := ks.srv.URL
	v := newVerifier(t, accesstoken.Options{Issuer: iss, Now: clk.Now})
	api := httptest.NewServer(accesstoken.Middleware(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := accesstoken.ClaimsFrom(r.Context())
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, c.Subject+" "+c.Scope)
	})))
	defer api.Close()
	get := func(authz string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := api.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	raw := k.sign(t, claimsAt(iss, clk.Now()), nil)
	if resp, body := get("Bearer " + raw); resp.StatusCode != http.StatusOK || body != "user-1 openid" {
		t.Errorf("valid token: %s %q", resp.Status, body)
	}
	if resp, body := get("bearer " + raw); resp.StatusCode != http.StatusOK || body != "user-1 openid" {
		t.Errorf("lower-case scheme: %s %q", resp.Status, body)
	}
	for authz, challenge := range map[string]string{
		"":                    `Bearer`,
		"Basic dXNlcjpwYXNz":  `Bearer`,
		"Bearer ":             `Bearer`,
		"Bearer " + raw + "x": `Bearer error="invalid_token"`,
		"Bearer not-a-token":  `Bearer error="invalid_token"`,
	} {
		resp, _ := get(authz)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != challenge {
			t.Errorf("Authorization %q: %s, WWW-Authenticate %q; want 401, %q", authz, resp.Status, resp.Header.Get("WWW-Authenticate"), challenge)
		}
	}
	if _, ok := accesstoken.ClaimsFrom(context.Background()); ok {
		t.Error("ClaimsFrom found claims in an empty context")
	}
}
