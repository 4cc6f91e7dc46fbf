package token_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/token"
	"github.com/gatehouse/gatehouse/pkg/accesstoken"
)

// fetchJWKS serves m's JWKS over HTTP and returns the body after checking
// the response headers.
func fetchJWKS(t *testing.T, srv *httptest.Server) []byte {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + token.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", token.JWKSPath, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=60" {
		t.Errorf("Cache-Control = %q", cc)
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
		if strings.Contains(string(body), private) {
			t.Errorf("JWKS contains the private member %s: %s", private, body)
		}
	}
	return body
}

// jwksServer serves m's routes the way the app mounts them.
func jwksServer(t *testing.T, m *token.Manager) *httptest.Server {
	t.Helper()
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: discardLogger()})
	m.Routes(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return srv
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			cfg := baseConfig()
			cfg.Algorithm = alg
			m := startManager(t, sqliteStore(t), newKeyring(t), memoryKV(t, clk), clk, cfg)

			authTime := clk.Now().Add(-time.Minute)
			raw, exp, err := m.Issue(ctx, token.AccessClaims{
				Subject:   "user-1",
				ClientID:  "client-1",
				SessionID: "session-1",
				AuthTime:  authTime,
				AMR:       []string{"pwd", "otp"},
				Scope:     "openid profile",
				Extra:     map[string]any{"tenant": "acme"},
			})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			iat := clk.Now().Truncate(time.Second)
			if !exp.Equal(iat.Add(token.DefaultAccessTTL)) {
				t.Errorf("expiry %v, want iat + 15m = %v", exp, iat.Add(token.DefaultAccessTTL))
			}
			h := headerOf(t, raw)
			if h["typ"] != "at+jwt" || h["alg"] != alg || h["kid"] != m.SigningKeyID() || m.SigningKeyID() == "" {
				t.Errorf("header = %v, want typ at+jwt, alg %s, kid %q", h, alg, m.SigningKeyID())
			}

			c := mustVerify(t, m, raw)
			want := token.Claims{
				Issuer:    issuer,
				Subject:   "user-1",
				Audience:  []string{issuer},
				ClientID:  "client-1",
				ExpiresAt: exp,
				IssuedAt:  iat,
				NotBefore: iat,
				ID:        c.ID,
				SessionID: "session-1",
				AuthTime:  authTime.Truncate(time.Second),
				AMR:       []string{"pwd", "otp"},
				Scope:     "openid profile",
				Extra:     map[string]any{"tenant": "acme"},
			}
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			if len(c.ID) < 22 {
				t.Errorf("jti %q is too short to be random", c.ID)
			}
			if other := mustVerify(t, m, issue(t, m, defaultClaims("s"))); other.ID == c.ID {
				t.Error("two tokens share a jti")
			}

			// An independent JWT implementation accepts the token against the
			// served JWKS.
			srv := jwksServer(t, m)
			got, err := verifyIndependently(fetchJWKS(t, srv), raw)
			if err != nil {
				t.Fatalf("independent verification: %v", err)
			}
			if got["sub"] != "user-1" || got["iss"] != issuer || got["aud"] != issuer || got["client_id"] != "client-1" ||
				got["exp"] != float64(exp.Unix()) || got["scope"] != "openid profile" || got["sid"] != "session-1" {
				t.Errorf("independently decoded claims = %v", got)
			}

			// So does the exported verifier for Go services.
			v, err := accesstoken.NewVerifier(ctx, accesstoken.Options{Issuer: issuer, JWKSURL: srv.URL + token.JWKSPath, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			pc, err := v.Verify(ctx, raw)
			if err != nil {
				t.Fatalf("accesstoken.Verify: %v", err)
			}
			if diff := cmp.Diff(c, pc); diff != "" {
				t.Errorf("pkg/accesstoken claims differ (-token +accesstoken):\n%s", diff)
			}
		})
	}
}

func TestIssueInvalid(t *testing.T) {
	clk := newClock()
	m := startManager(t, sqliteStore(t), newKeyring(t), memoryKV(t, clk), clk, baseConfig())
	for name, ac := range map[string]token.AccessClaims{
		"no subject":          {ClientID: "c"},
		"no client":           {Subject: "u"},
		"registered as extra": {Subject: "u", ClientID: "c", Extra: map[string]any{"sub": "admin"}},
	} {
		if _, _, err := m.Issue(t.Context(), ac); err == nil {
			t.Errorf("%s: Issue succeeded", name)
		}
	}
}

func TestNewManagerConfig(t *testing.T) {
	clk := newClock()
	st, kr, state := sqliteStore(t), newKeyring(t), memoryKV(t, clk)
	for name, cfg := range map[string]token.Config{
		"no issuer":      {},
		"HS256":          {Issuer: issuer, Algorithm: "HS256"},
		"none":           {Issuer: issuer, Algorithm: "none"},
		"short ttl":      {Issuer: issuer, AccessTTL: time.Millisecond},
		"negative":       {Issuer: issuer, Leeway: -time.Second},
		"empty audience": {Issuer: issuer, Audience: []string{""}},
	} {
		if _, err := token.NewManager(cfg, st, kr, state, discardLogger(), clk.Now); err == nil {
			t.Errorf("%s: NewManager accepted %+v", name, cfg)
		}
	}
	if _, err := token.NewManager(baseConfig(), nil, kr, state, discardLogger(), clk.Now); err == nil {
		t.Error("NewManager accepted a nil store")
	}
	m, err := token.NewManager(token.Config{Issuer: issuer}, st, kr, state, discardLogger(), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(t.Context(), "x"); err == nil {
		t.Error("Verify before Start succeeded")
	}
	if _, _, err := m.Issue(t.Context(), defaultClaims("")); !errors.Is(err, token.ErrNoSigningKey) {
		t.Errorf("Issue before Start: %v, want ErrNoSigningKey", err)
	}
}

func TestAudience(t *testing.T) {
	clk := newClock()
	cfg := baseConfig()
	cfg.DefaultAudience = "https://api.example.test"
	m := startManager(t, sqliteStore(t), newKeyring(t), memoryKV(t, clk), clk, cfg)
	c := mustVerify(t, m, issue(t, m, defaultClaims("")))
	if diff := cmp.Diff([]string{"https://api.example.test"}, c.Audience); diff != "" {
		t.Errorf("default audience (-want +got):\n%s", diff)
	}
	// Gatehouse's own API accepts the issuer too.
	ac0 := defaultClaims("")
	ac0.Audience = []string{issuer}
	mustVerify(t, m, issue(t, m, ac0))
	// Introspection's VerifyIssued accepts a token for any API; Verify
	// only those for Gatehouse's own.
	other := defaultClaims("")
	other.Audience = []string{"https://billing.example.test"}
	raw := issue(t, m, other)
	wantInvalid(t, m, raw)
	if c, err := m.VerifyIssued(t.Context(), raw); err != nil || !cmp.Equal(c.Audience, other.Audience) {
		t.Errorf("VerifyIssued(another API's token) = %v, %v; want it accepted", c.Audience, err)
	}
	if _, err := m.VerifyIssued(t.Context(), raw+"x"); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("VerifyIssued(bad signature): err = %v, want ErrInvalid", err)
	}
	ac := defaultClaims("")
	ac.Audience = []string{"https://api.example.test"}
	if c := mustVerify(t, m, issue(t, m, ac)); !cmp.Equal(c.Audience, ac.Audience) {
		t.Errorf("audience %v, want %v", c.Audience, ac.Audience)
	}
	ac.Audience = []string{"https://elsewhere.example.test"}
	wantInvalid(t, m, issue(t, m, ac))
}

func TestRotation(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	st := sqliteStore(t)
	m := startManager(t, st, newKeyring(t), memoryKV(t, clk), clk, baseConfig())
	srv := jwksServer(t, m)
	ext, err := accesstoken.NewVerifier(ctx, accesstoken.Options{Issuer: issuer, JWKSURL: srv.URL + token.JWKSPath, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}

	oldKID := m.SigningKeyID()
	oldTok := issue(t, m, defaultClaims("s1"))
	oldExp := mustVerify(t, m, oldTok).ExpiresAt
	oldPriv, err := m.PrivateKey(ctx, oldKID)
	if err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute)
	rotatedAt := clk.Now()
	newKID, err := m.Rotate(ctx)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if newKID == oldKID || m.SigningKeyID() != newKID {
		t.Fatalf("after Rotate: returned kid %q, signing with %q, old %q", newKID, m.SigningKeyID(), oldKID)
	}
	newTok := issue(t, m, defaultClaims("s1"))
	if kid := headerOf(t, newTok)["kid"]; kid != newKID {
		t.Errorf("new token's kid = %v, want %s", kid, newKID)
	}
	jwks := fetchJWKS(t, srv)
	for _, raw := range []string{oldTok, newTok} {
		mustVerify(t, m, raw)
		if _, err := verifyIndependently(jwks, raw); err != nil {
			t.Errorf("independent verification after rotation: %v", err)
		}
		// The exported verifier has only the old key cached and fetches
		// the JWKS again for the new kid.
		if _, err := ext.Verify(ctx, raw); err != nil {
			t.Errorf("accesstoken.Verify after rotation: %v", err)
		}
	}
	if !jwksHasKey(m, oldKID) || !jwksHasKey(m, newKID) || len(m.JWKS().Keys) != 2 {
		t.Errorf("JWKS after rotation = %+v, want the old and the new key", m.JWKS().Keys)
	}

	// The old token lives until its exp on the issuer (no leeway there)…
	clk.Advance(oldExp.Sub(clk.Now()) - time.Second)
	mustVerify(t, m, oldTok)
	clk.Advance(time.Second)
	wantInvalid(t, m, oldTok)
	// …and until exp + leeway on another server.
	clk.Advance(token.DefaultLeeway - time.Second)
	if _, err := ext.Verify(ctx, oldTok); err != nil {
		t.Errorf("accesstoken.Verify within its leeway: %v", err)
	}
	clk.Advance(2 * time.Second)
	if _, err := ext.Verify(ctx, oldTok); !errors.Is(err, accesstoken.ErrInvalid) {
		t.Errorf("accesstoken.Verify of an expired token: %v", err)
	}
	// …and its key a little longer (a lagging node may have signed with
	// it until its next reload).
	oldKeyExpiry := rotatedAt.Add(token.DefaultAccessTTL + token.DefaultReloadInterval + token.DefaultLeeway)
	if !jwksHasKey(m, oldKID) {
		t.Error("the old key left the JWKS before its expiry")
	}
	clk.Advance(oldKeyExpiry.Sub(clk.Now()))
	if jwksHasKey(m, oldKID) || !jwksHasKey(m, newKID) {
		t.Errorf("JWKS at the old key's expiry = %+v, want only the new key", m.JWKS().Keys)
	}
	// A token the old key signs now, even one claiming a long life, is
	// refused: the key itself has expired.
	forged := signJWS(t, oldPriv, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": oldKID}, validClaims(clk))
	wantInvalid(t, m, forged)

	clk.Advance(time.Second)
	if n, err := m.PurgeExpiredKeys(ctx); err != nil || n != 1 {
		t.Errorf("PurgeExpiredKeys = %d, %v; want 1", n, err)
	}
	mustVerify(t, m, issue(t, m, defaultClaims("s1")))
}

// TestSigningAlgorithms: the algorithms discovery advertises are those of
// the keys published, not the configured one.
func TestSigningAlgorithms(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	st, kr, state := sqliteStore(t), newKeyring(t), memoryKV(t, clk)
	m := startManager(t, st, kr, state, clk, baseConfig()) // ES256
	if got := m.SigningAlgorithms(); !slices.Equal(got, []string{"ES256"}) {
		t.Errorf("SigningAlgorithms = %v, want [ES256]", got)
	}
	// Another node, configured for EdDSA, rotates: both keys are published
	// while ES256 tokens may be alive, whatever this node's configuration.
	ed := baseConfig()
	ed.Algorithm = "EdDSA"
	other, err := token.NewManager(ed, st, kr, state, discardLogger(), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if _, err := other.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rotation reached the node", func() bool { return len(m.SigningAlgorithms()) == 2 })
	if got := m.SigningAlgorithms(); !slices.Equal(got, []string{"EdDSA", "ES256"}) {
		t.Errorf("SigningAlgorithms after the rotation = %v, want [EdDSA ES256] (newest first)", got)
	}
	clk.Advance(token.DefaultAccessTTL + token.DefaultReloadInterval + token.DefaultLeeway + time.Second)
	if got := m.SigningAlgorithms(); !slices.Equal(got, []string{"EdDSA"}) {
		t.Errorf("SigningAlgorithms after the ES256 key expired = %v, want [EdDSA]", got)
	}
}

func TestRotateIfOlder(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m := startManager(t, sqliteStore(t), newKeyring(t), memoryKV(t, clk), clk, baseConfig())
	first := m.SigningKeyID()
	kid, rotated, err := m.RotateIfOlder(ctx, time.Hour)
	if err != nil || rotated || kid != first {
		t.Fatalf("RotateIfOlder on a fresh key = %q, %v, %v; want %q, not rotated", kid, rotated, err, first)
	}
	clk.Advance(time.Hour)
	kid, rotated, err = m.RotateIfOlder(ctx, time.Hour)
	if err != nil || !rotated || kid == first || m.SigningKeyID() != kid {
		t.Fatalf("RotateIfOlder on an hour-old key = %q, %v, %v; want a new key", kid, rotated, err)
	}
}

// backend is a database and a kv store shared by several nodes.
type backend struct {
	name  string
	store func(t *testing.T) token.Store
	kvs   func(t *testing.T, clk *clocktest.Clock, n int) []kv.Store
}

var backends = []backend{
	{
		name:  "sqlite+memory",
		store: func(t *testing.T) token.Store { return sqliteStore(t) },
		kvs: func(t *testing.T, clk *clocktest.Clock, n int) []kv.Store {
			s := memoryKV(t, clk)
			out := make([]kv.Store, n)
			for i := range out {
				out[i] = s
			}
			return out
		},
	},
	{
		name:  "postgres+redis",
		store: func(t *testing.T) token.Store { return postgresStore(t) },
		kvs:   func(t *testing.T, _ *clocktest.Clock, n int) []kv.Store { return redisKVs(t, n) },
	},
}

func TestRotationReachesOtherNodes(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name+"/pubsub", func(t *testing.T) {
			clk := newClock()
			st, kr, kvs := be.store(t), newKeyring(t), be.kvs(t, clk, 2)
			a := startManager(t, st, kr, kvs[0], clk, baseConfig())
			slow := baseConfig()
			slow.ReloadInterval = time.Hour // only the announcement can tell b
			b := startManager(t, st, kr, kvs[1], clk, slow)
			if a.SigningKeyID() != b.SigningKeyID() {
				t.Fatalf("nodes sign with %s and %s", a.SigningKeyID(), b.SigningKeyID())
			}
			kid, err := a.Rotate(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "the other node signs with the new key", func() bool {
				return b.SigningKeyID() == kid && jwksHasKey(b, kid)
			})
			if h := headerOf(t, issue(t, b, defaultClaims(""))); h["kid"] != kid {
				t.Errorf("other node's token has kid %v, want %s", h["kid"], kid)
			}
		})
	}
	t.Run("reload interval", func(t *testing.T) {
		clk := newClock()
		st, kr := sqliteStore(t), newKeyring(t)
		// Separate kv stores: no announcement reaches b.
		a := startManager(t, st, kr, memoryKV(t, clk), clk, baseConfig())
		fast := baseConfig()
		fast.ReloadInterval = 20 * time.Millisecond
		b := startManager(t, st, kr, memoryKV(t, clk), clk, fast)
		kid, err := a.Rotate(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the other node reloads the new key", func() bool { return b.SigningKeyID() == kid })
	})
}

func TestStartTogether(t *testing.T) {
	clk := newClock()
	st, kr, state := sqliteStore(t), newKeyring(t), memoryKV(t, clk)
	nodes := make([]*token.Manager, 4)
	errs := make([]error, len(nodes))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		for _, m := range nodes {
			if m != nil {
				<-m.Done()
			}
		}
	})
	start := make(chan struct{})
	done := make(chan int)
	for i := range nodes {
		m, err := token.NewManager(baseConfig(), st, kr, state, discardLogger(), clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = m
		go func() {
			<-start
			errs[i] = m.Start(ctx)
			done <- i
		}()
	}
	close(start)
	for range nodes {
		<-done
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: Start: %v", i, err)
		}
	}
	keys, err := st.ListSigningKeys(ctx, clk.Now())
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys after starting together: %d, %v", len(keys), err)
	}
	newest := keys[0].ID
	eventually(t, "every node signs with the newest key and publishes all", func() bool {
		for _, m := range nodes {
			if m.SigningKeyID() != newest || len(m.JWKS().Keys) != len(keys) {
				return false
			}
		}
		return true
	})
	for _, m := range nodes {
		raw := issue(t, m, defaultClaims(""))
		for _, other := range nodes {
			mustVerify(t, other, raw)
		}
	}
}

func TestDenySession(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			st, kr, kvs := be.store(t), newKeyring(t), be.kvs(t, clk, 2)
			a := startManager(t, st, kr, kvs[0], clk, baseConfig())
			b := startManager(t, st, kr, kvs[1], clk, baseConfig())
			ended, other := issue(t, a, defaultClaims("ended")), issue(t, a, defaultClaims("other"))
			noSession := issue(t, a, defaultClaims(""))
			mustVerify(t, b, ended)

			if err := a.DenySession(ctx, "ended", time.Time{}); err != nil {
				t.Fatalf("DenySession: %v", err)
			}
			// No waiting: the next request on any node sees it.
			wantInvalid(t, b, ended)
			wantInvalid(t, a, ended)
			mustVerify(t, b, other)
			mustVerify(t, b, noSession)
			if revoked, err := b.IsRevoked(ctx, token.Claims{SessionID: "ended", IssuedAt: clk.Now()}); err != nil || !revoked {
				t.Errorf("IsRevoked = %v, %v; want true", revoked, err)
			}
			if err := a.DenySession(ctx, "", time.Time{}); err == nil {
				t.Error("DenySession without a session ID succeeded")
			}
		})
	}
}

func TestDenySessionLifetime(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m := startManager(t, sqliteStore(t), newKeyring(t), memoryKV(t, clk), clk, baseConfig())
	if err := m.DenySession(ctx, "short", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := m.DenySession(ctx, "long", clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Until every token of the session has expired, the entry stays.
	clk.Advance(token.DefaultAccessTTL + token.DefaultLeeway - time.Second)
	wantInvalid(t, m, issue(t, m, defaultClaims("short")))
	// After that it may go; an explicit later end keeps it.
	clk.Advance(2 * time.Second)
	mustVerify(t, m, issue(t, m, defaultClaims("short")))
	wantInvalid(t, m, issue(t, m, defaultClaims("long")))
}

// TestDenyToken: a token without a session (client_credentials) is revoked
// by its jti, on every node at once, and only that token.
func TestDenyToken(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			st, kr, kvs := be.store(t), newKeyring(t), be.kvs(t, clk, 2)
			a := startManager(t, st, kr, kvs[0], clk, baseConfig())
			b := startManager(t, st, kr, kvs[1], clk, baseConfig())
			revoked, sibling := issue(t, a, defaultClaims("")), issue(t, a, defaultClaims(""))
			withSession := issue(t, a, defaultClaims("s1"))
			c := mustVerify(t, b, revoked)

			if err := a.DenyToken(ctx, c.ID, c.ExpiresAt); err != nil {
				t.Fatalf("DenyToken: %v", err)
			}
			wantInvalid(t, b, revoked)
			wantInvalid(t, a, revoked)
			mustVerify(t, b, sibling)
			// Tokens of a session are revoked with their session: a jti entry
			// is not looked up for them (one kv read per token, not two).
			sc := mustVerify(t, b, withSession)
			if err := a.DenyToken(ctx, sc.ID, sc.ExpiresAt); err != nil {
				t.Fatal(err)
			}
			mustVerify(t, b, withSession)

			if err := a.DenyToken(ctx, "", c.ExpiresAt); err == nil {
				t.Error("DenyToken without a token ID succeeded")
			}
			if err := a.DenyToken(ctx, "long-gone", clk.Now().Add(-time.Hour)); err != nil {
				t.Errorf("DenyToken of a token expired long ago: %v, want nothing to do", err)
			}
		})
	}
}

func TestDenyTokenLifetime(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m := startManager(t, sqliteStore(t), newKeyring(t), memoryKV(t, clk), clk, baseConfig())
	revoked, control := issue(t, m, defaultClaims("")), issue(t, m, defaultClaims(""))
	c := mustVerify(t, m, revoked)
	if err := m.DenyToken(ctx, c.ID, c.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	// Verify accepts a token until its exp; the entry lasts Leeway longer.
	clk.Advance(c.ExpiresAt.Add(-time.Second).Sub(clk.Now()))
	mustVerify(t, m, control)
	wantInvalid(t, m, revoked)
	clk.Advance(c.ExpiresAt.Add(token.DefaultLeeway - time.Second).Sub(clk.Now()))
	ok, err := m.IsRevoked(ctx, c)
	if err != nil || !ok {
		t.Errorf("IsRevoked a second before the token's end = %v, %v; want true", ok, err)
	}
	clk.Advance(2 * time.Second)
	if ok, err := m.IsRevoked(ctx, c); err != nil || ok {
		t.Errorf("IsRevoked after the token's end = %v, %v; want the entry gone", ok, err)
	}
}

// noPubSub is a kv store whose subscriptions never deliver: a node that
// misses every announcement.
type noPubSub struct{ kv.Store }

type deafSubscription struct{ c chan kv.Message }

func (s deafSubscription) C() <-chan kv.Message { return s.c }
func (s deafSubscription) Close() error         { return nil }

func (noPubSub) Subscribe(context.Context, string) (kv.Subscription, error) {
	return deafSubscription{c: make(chan kv.Message)}, nil
}

func TestKillSwitch(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			st, kr, kvs := be.store(t), newKeyring(t), be.kvs(t, clk, 3)
			slowRefresh := func(m *token.Manager) { m.SetIntervals(5*time.Second, time.Hour, time.Hour) }
			fastRefresh := func(m *token.Manager) { m.SetIntervals(5*time.Second, 20*time.Millisecond, time.Hour) }
			a := startManager(t, st, kr, kvs[0], clk, baseConfig(), slowRefresh)
			// b hears the announcement; c never does and relies on re-reading.
			b := startManager(t, st, kr, kvs[1], clk, baseConfig(), slowRefresh)
			c := startManager(t, st, kr, noPubSub{kvs[2]}, clk, baseConfig(), fastRefresh)

			old := issue(t, a, defaultClaims("s"))
			clk.Advance(2 * time.Second)
			sameSecond := issue(t, a, defaultClaims("s"))
			cutoff := clk.Now()
			if err := a.RevokeIssuedBefore(ctx, cutoff); err != nil {
				t.Fatalf("RevokeIssuedBefore: %v", err)
			}
			wantInvalid(t, a, old)
			for name, m := range map[string]*token.Manager{"b (announcement)": b, "c (re-read)": c} {
				eventually(t, name+" rejects tokens issued before the cut-off", func() bool {
					_, err := m.Verify(ctx, old)
					return errors.Is(err, token.ErrInvalid)
				})
				if !m.RevokedBefore().Equal(cutoff.Truncate(time.Microsecond)) {
					t.Errorf("%s holds cut-off %v, want %v", name, m.RevokedBefore(), cutoff)
				}
				// iat has whole seconds: a token of the cut-off's second may
				// predate it, so it goes too.
				wantInvalid(t, m, sameSecond)
			}
			clk.Advance(time.Second)
			fresh := issue(t, b, defaultClaims("s"))
			for _, m := range []*token.Manager{a, b, c} {
				mustVerify(t, m, fresh)
			}
		})
	}
}

// TestKillSwitchOnlyMovesForward sets cut-offs from two nodes in
// parallel, the earlier last: every node ends up holding the latest, and
// so does a node started afterwards.
func TestKillSwitchOnlyMovesForward(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			st, kr, kvs := be.store(t), newKeyring(t), be.kvs(t, clk, 3)
			a := startManager(t, st, kr, kvs[0], clk, baseConfig())
			b := startManager(t, st, kr, kvs[1], clk, baseConfig())
			later := clk.Now()
			earlier := later.Add(-time.Hour)
			var wg sync.WaitGroup
			for i := range 20 {
				m, at := a, later.Add(-time.Duration(i)*time.Second)
				if i%2 == 1 {
					m, at = b, earlier.Add(time.Duration(i)*time.Second)
				}
				wg.Go(func() {
					if err := m.RevokeIssuedBefore(ctx, at); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if err := b.RevokeIssuedBefore(ctx, earlier); err != nil {
				t.Fatal(err)
			}
			want := later.Truncate(time.Microsecond)
			c := startManager(t, st, kr, kvs[2], clk, baseConfig())
			for name, m := range map[string]*token.Manager{"a": a, "b": b, "c (started after)": c} {
				eventually(t, name+" holds the latest cut-off", func() bool { return m.RevokedBefore().Equal(want) })
			}
		})
	}
}

// failingKV fails every Get once broken.
type failingKV struct {
	kv.Store
	broken atomic.Bool
}

func (f *failingKV) Get(ctx context.Context, key string) ([]byte, error) {
	if f.broken.Load() {
		return nil, errors.New("connection refused")
	}
	return f.Store.Get(ctx, key)
}

func (f *failingKV) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	if f.broken.Load() {
		return nil, errors.New("connection refused")
	}
	return f.Store.GetMany(ctx, keys...)
}

func TestRevocationFailsClosed(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	state := &failingKV{Store: memoryKV(t, clk)}
	m := startManager(t, sqliteStore(t), newKeyring(t), state, clk, baseConfig())
	withSession, withoutSession := issue(t, m, defaultClaims("s")), issue(t, m, defaultClaims(""))
	state.broken.Store(true)

	// A token without a session is looked up by its jti (DenyToken): it
	// fails closed too.
	for _, raw := range []string{withSession, withoutSession} {
		_, err := m.Verify(ctx, raw)
		if !errors.Is(err, token.ErrUnavailable) || errors.Is(err, token.ErrInvalid) {
			t.Errorf("Verify with the deny list unreachable: %v, want ErrUnavailable", err)
		}
	}

	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+withSession)
	_, err := token.Authenticator{Tokens: m}.Authenticate(req)
	if err == nil || errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("Authenticate with the deny list unreachable: %v, want a server error", err)
	}
}

func TestAuthenticator(t *testing.T) {
	clk := newClock()
	m := startManager(t, sqliteStore(t), newKeyring(t), memoryKV(t, clk), clk, baseConfig())
	authn := token.Authenticator{Tokens: m}
	ac := defaultClaims("session-9")
	ac.AuthTime = clk.Now().Add(-time.Hour)
	raw, exp, err := m.Issue(t.Context(), ac)
	if err != nil {
		t.Fatal(err)
	}
	c := mustVerify(t, m, raw)

	request := func(authz string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		return r
	}
	p, err := authn.Authenticate(request("Bearer " + raw))
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	want := auth.Principal{
		UserID:    "user-1",
		SessionID: "session-9",
		ClientID:  "client-1",
		TokenID:   c.ID,
		Scopes:    []string{"openid", "profile"},
		AMR:       []string{"pwd"},
		AuthTime:  ac.AuthTime.Truncate(time.Second),
		ExpiresAt: exp,
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("principal (-want +got):\n%s", diff)
	}
	for _, authz := range []string{"", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer " + raw + "x", "Bearer garbage"} {
		if _, err := authn.Authenticate(request(authz)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("Authenticate(%q) = %v, want ErrInvalidToken", authz, err)
		}
	}

	// Through auth.Require on the router: 401 with the RFC 6750 challenge,
	// and the handler sees the principal.
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: discardLogger()})
	rt.Handle("GET /v1/me", auth.Require(authn, func(w http.ResponseWriter, r *http.Request) error {
		p, _ := auth.FromContext(r.Context())
		_, err := io.WriteString(w, p.UserID)
		return err
	}))
	srv := httptest.NewServer(rt)
	defer srv.Close()
	get := func(authz string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/me", nil)
		req.Header.Set("Authorization", authz)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	if resp, body := get("Bearer " + raw); resp.StatusCode != http.StatusOK || body != "user-1" {
		t.Errorf("Require with a valid token: %s, body %q", resp.Status, body)
	}
	resp, body := get("Bearer nope")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` || strings.Contains(body, "malformed") {
		t.Errorf("Require with an invalid token: %s, WWW-Authenticate %q, body %s", resp.Status, resp.Header.Get("WWW-Authenticate"), body)
	}
	// No credentials: a challenge without an error code (RFC 6750 §3.1),
	// as pkg/accesstoken's Middleware answers.
	for _, authz := range []string{"", "Basic dXNlcjpwYXNz"} {
		if resp, _ := get(authz); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("Require with Authorization %q: %s, WWW-Authenticate %q, want 401 Bearer", authz, resp.Status, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

// countingStore counts calls to the key store.
type countingStore struct {
	token.Store
	calls atomic.Int64
}

func (s *countingStore) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	s.calls.Add(1)
	return s.Store.CreateSigningKey(ctx, k)
}

func (s *countingStore) ListSigningKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error) {
	s.calls.Add(1)
	return s.Store.ListSigningKeys(ctx, now)
}

func (s *countingStore) RotateSigningKeys(ctx context.Context, k store.SigningKey, retireAt, expireAt time.Time) error {
	s.calls.Add(1)
	return s.Store.RotateSigningKeys(ctx, k, retireAt, expireAt)
}

func (s *countingStore) PurgeSigningKeys(ctx context.Context, before time.Time) (int64, error) {
	s.calls.Add(1)
	return s.Store.PurgeSigningKeys(ctx, before)
}

func TestVerifyWithoutDatabase(t *testing.T) {
	clk := newClock()
	st := &countingStore{Store: sqliteStore(t)}
	cfg := baseConfig()
	cfg.ReloadInterval = time.Hour
	m := startManager(t, st, newKeyring(t), memoryKV(t, clk), clk, cfg)
	tokens := []string{issue(t, m, defaultClaims("s1")), issue(t, m, defaultClaims(""))}
	st.calls.Store(0)

	for range 50 {
		for _, raw := range tokens {
			mustVerify(t, m, raw)
		}
		issue(t, m, defaultClaims("s2"))
		_ = m.JWKS()
	}
	wantInvalid(t, m, tokens[0]+"x") // a bad signature needs no database either
	if n := st.calls.Load(); n != 0 {
		t.Fatalf("Issue, Verify and JWKS made %d database calls, want none", n)
	}

	// Unknown kids make the Manager look for new keys, at most once per
	// few seconds however many arrive.
	forger := attackerKey(t)
	for range 20 {
		wantInvalid(t, m, signJWS(t, forger, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "unknown-kid"}, validClaims(clk)))
	}
	if n := st.calls.Load(); n != 1 {
		t.Errorf("20 tokens with an unknown kid caused %d database calls, want 1", n)
	}
	clk.Advance(6 * time.Second)
	wantInvalid(t, m, signJWS(t, forger, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "another"}, validClaims(clk)))
	if n := st.calls.Load(); n != 2 {
		t.Errorf("after the rate limit passed: %d database calls, want 2", n)
	}
}

// gatedStore holds ListSigningKeys, while gated, until released: a slow
// database query.
type gatedStore struct {
	token.Store
	gated            atomic.Bool
	arrived, release chan struct{}
}

func (s *gatedStore) ListSigningKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error) {
	if s.gated.Load() {
		s.arrived <- struct{}{}
		<-s.release
	}
	return s.Store.ListSigningKeys(ctx, now)
}

// TestUnknownKidReloadOutlivesTheRequest: a client that sends a token with
// an unknown kid and hangs up while the keys are being reloaded must not
// cancel the reload, nor make the Manager believe it reloaded: the rotated
// key is there for the next request at once.
func TestUnknownKidReloadOutlivesTheRequest(t *testing.T) {
	clk := newClock()
	inner, kr, state := sqliteStore(t), newKeyring(t), memoryKV(t, clk)
	st := &gatedStore{Store: inner, arrived: make(chan struct{}), release: make(chan struct{})}
	cfg := baseConfig()
	cfg.ReloadInterval = time.Hour
	a := startManager(t, st, kr, noPubSub{state}, clk, cfg) // misses the rotation message
	b := startManager(t, inner, kr, state, clk, cfg)
	if _, err := b.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	tok := issue(t, b, defaultClaims("s1"))

	st.gated.Store(true)
	ctx, hangUp := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = a.Verify(ctx, tok)
	}()
	<-st.arrived // the reload is under way
	hangUp()
	st.gated.Store(false)
	close(st.release)
	<-done

	// The clock has not moved, so no other reload for an unknown kid may
	// happen: the key must have come with the first.
	mustVerify(t, a, tok)
}

func TestPrivateKeysSealedAtRest(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	st, kr := sqliteStore(t), newKeyring(t)
	m := startManager(t, st, kr, memoryKV(t, clk), clk, baseConfig())
	oldKID := m.SigningKeyID()
	newKID, err := m.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}

	rows, err := st.Writer().QueryContext(ctx, "SELECT id, private_key, public_key FROM signing_keys")
	if err != nil {
		t.Fatal(err)
	}
	sealed := map[string]string{}
	for rows.Next() {
		var id, priv, pub string
		if err := rows.Scan(&id, &priv, &pub); err != nil {
			t.Fatal(err)
		}
		sealed[id] = priv
		if !strings.HasPrefix(priv, "v1.") || strings.Contains(priv, `"d"`) || strings.Contains(priv, "{") {
			t.Errorf("private key of %s is stored readable: %.40s…", id, priv)
		}
		if strings.Contains(pub, `"d"`) || !strings.Contains(pub, `"kid":"`+id+`"`) {
			t.Errorf("public key of %s = %s", id, pub)
		}
	}
	if err := rows.Err(); err != nil || len(sealed) != 2 {
		t.Fatalf("%d rows, %v", len(sealed), err)
	}

	// The sealed key is bound to its kid: moved to another row, it does
	// not open, and the node refuses to sign rather than use it.
	if _, err := st.Writer().ExecContext(ctx, "UPDATE signing_keys SET private_key = ? WHERE id = ?", sealed[oldKID], newKID); err != nil {
		t.Fatal(err)
	}
	other, err := token.NewManager(baseConfig(), st, kr, memoryKV(t, clk), discardLogger(), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	defer func() { cancel(); <-other.Done() }()
	if err := other.Start(ctx2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Issue(ctx, defaultClaims("")); !errors.Is(err, token.ErrNoSigningKey) {
		t.Errorf("Issue with a swapped private key: %v, want ErrNoSigningKey", err)
	}
	// Verification needs only public keys and goes on working.
	mustVerify(t, other, issue(t, m, defaultClaims("")))
}

func TestJWKSBeforeStart(t *testing.T) {
	clk := newClock()
	m, err := token.NewManager(baseConfig(), sqliteStore(t), newKeyring(t), memoryKV(t, clk), discardLogger(), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.JWKSHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, token.JWKSPath, nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("JWKS before Start: %d, want 503", rec.Code)
	}
	if keys := m.JWKS().Keys; keys == nil || len(keys) != 0 {
		t.Errorf("JWKS() before Start = %v, want an empty set", keys)
	}
}

// TestRSASigningKeyIsPrecomputed guards the signing cost: a key opened
// from storage must sign as cheaply as one fresh from rsa.GenerateKey
// (whose precomputation the standard library would otherwise redo, and
// re-validate, on every signature).
func TestRSASigningKeyIsPrecomputed(t *testing.T) {
	clk := newClock()
	cfg := baseConfig()
	cfg.Algorithm = "RS256"
	m := startManager(t, sqliteStore(t), newKeyring(t), memoryKV(t, clk), clk, cfg)
	opened, ok := m.CurrentSigningKey().(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("signing key is %T, want *rsa.PrivateKey", m.CurrentSigningKey())
	}
	fresh, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("gatehouse"))
	allocs := func(k *rsa.PrivateKey) float64 {
		return testing.AllocsPerRun(20, func() {
			if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got, want := allocs(opened), allocs(fresh); got > want {
		t.Errorf("signing with the stored key allocates %.0f times, a precomputed key %.0f: the key was not precomputed", got, want)
	}
}

// TestVerifiedCache: a token verified once is answered from the cache of
// verified signatures, which skips nothing else: a revocation, another
// audience and expiry are checked at every use.
func TestVerifiedCache(t *testing.T) {
	clk := newClock()
	m := startManager(t, sqliteStore(t), newKeyring(t), memoryKV(t, clk), clk, baseConfig())
	raw := issue(t, m, defaultClaims("")) // no session: revoked by its jti
	c := mustVerify(t, m, raw)
	mustVerify(t, m, raw) // from the cache
	if err := m.DenyToken(t.Context(), c.ID, c.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, m, raw)

	other := defaultClaims("s2")
	other.Audience = []string{"https://billing.example.test"}
	billing := issue(t, m, other)
	if _, err := m.VerifyIssued(t.Context(), billing); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, m, billing) // cached for VerifyIssued, still not Gatehouse's audience

	live := issue(t, m, defaultClaims("s3"))
	exp := mustVerify(t, m, live).ExpiresAt
	clk.Advance(exp.Sub(clk.Now()))
	wantInvalid(t, m, live)
}
