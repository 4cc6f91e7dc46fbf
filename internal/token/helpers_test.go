package token_test

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
	"fmt"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/internal/token"
)

const issuer = "https://auth.example.test"

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newKeyring(t testing.TB) *secret.Keyring {
	t.Helper()
	s, err := secret.GenerateKeyString("test")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.ParseKeys(s)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func sqliteStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrator().Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func postgresStore(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrator().Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func memoryKV(t testing.TB, clk *clocktest.Clock) kv.Store {
	t.Helper()
	s := memory.New(clk.Now)
	t.Cleanup(func() { s.Close() })
	return s
}

// redisKVs returns n kv stores on the test Redis sharing one prefix, each
// with its own client: n nodes.
func redisKVs(t testing.TB, n int) []kv.Store {
	t.Helper()
	url, prefix := testenv.Redis(t)
	out := make([]kv.Store, n)
	for i := range out {
		out[i] = redisKVAt(t, url, prefix)
	}
	return out
}

// redisKVAt returns a kv store on the Redis at url under prefix, with a
// client of its own.
func redisKVAt(t testing.TB, url, prefix string) kv.Store {
	t.Helper()
	client, err := rediskv.NewClient(rediskv.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	s := rediskv.New(client, prefix)
	t.Cleanup(func() {
		_ = s.Close()
		_ = client.Close()
	})
	return s
}

func baseConfig() token.Config {
	return token.Config{Issuer: issuer, Algorithm: "ES256"}
}

// startManager starts a Manager and stops it (waiting for its background
// work) when the test ends.
func startManager(t testing.TB, st token.Store, keyring *secret.Keyring, state kv.Store, clk *clocktest.Clock, cfg token.Config, tune ...func(*token.Manager)) *token.Manager {
	t.Helper()
	m, err := token.NewManager(cfg, st, keyring, state, discardLogger(), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tune {
		f(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-m.Done()
	})
	return m
}

func issue(t testing.TB, m *token.Manager, ac token.AccessClaims) string {
	t.Helper()
	raw, _, err := m.Issue(context.Background(), ac)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return raw
}

func defaultClaims(sid string) token.AccessClaims {
	return token.AccessClaims{
		Subject:   "user-1",
		ClientID:  "client-1",
		SessionID: sid,
		AMR:       []string{"pwd"},
		Scope:     "openid profile",
	}
}

func mustVerify(t testing.TB, m *token.Manager, raw string) token.Claims {
	t.Helper()
	c, err := m.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return c
}

func wantInvalid(t testing.TB, m *token.Manager, raw string) {
	t.Helper()
	_, err := m.Verify(context.Background(), raw)
	if !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("Verify = %v, want ErrInvalid", err)
	}
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jwksHasKey reports whether m publishes kid.
func jwksHasKey(m *token.Manager, kid string) bool {
	for _, k := range m.JWKS().Keys {
		if k.KeyID == kid {
			return true
		}
	}
	return false
}

// headerOf decodes a token's header without checking anything.
func headerOf(t testing.TB, raw string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// ---- A minimal JWS implementation on the standard library only, used to
// forge tokens and to verify Gatehouse's tokens independently of go-jose.

var b64 = base64.RawURLEncoding

func encodeJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// signJWS signs header.payload with key according to header["alg"]
// (RS256, ES256, EdDSA, or HS256 with key a []byte secret, or none).
func signJWS(t testing.TB, key any, header map[string]any, claims any) string {
	t.Helper()
	input := encodeJSON(t, header) + "." + encodeJSON(t, claims)
	alg, _ := header["alg"].(string)
	if strings.EqualFold(alg, "none") {
		alg = "none"
	}
	var sig []byte
	digest := sha256.Sum256([]byte(input))
	var err error
	switch alg {
	case "none":
	case "HS256":
		mac := hmac.New(sha256.New, key.([]byte))
		mac.Write([]byte(input))
		sig = mac.Sum(nil)
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	case "ES256":
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, key.(*ecdsa.PrivateKey), digest[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case "EdDSA":
		sig = ed25519.Sign(key.(ed25519.PrivateKey), []byte(input))
	default:
		t.Fatalf("signJWS: alg %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// stdJWK is the subset of a JWK the independent verifier reads.
type stdJWK struct {
	Kty, Kid, Alg, Use, Crv string
	N, E, X, Y              string
	D                       string `json:"d"`
}

// verifyIndependently verifies raw against a JWKS document the way any
// other JWT implementation would, with the standard library only, and
// returns the payload's members.
func verifyIndependently(jwks []byte, raw string) (map[string]any, error) {
	var set struct{ Keys []stdJWK }
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, err
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("not three parts")
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, err
	}
	var h struct{ Alg, Kid, Typ string }
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, err
	}
	if h.Typ != "at+jwt" {
		return nil, fmt.Errorf("typ %q", h.Typ)
	}
	var k *stdJWK
	for i := range set.Keys {
		if set.Keys[i].Kid == h.Kid {
			k = &set.Keys[i]
		}
	}
	if k == nil {
		return nil, fmt.Errorf("kid %q not in JWKS", h.Kid)
	}
	if k.Alg != h.Alg || k.Use != "sig" || k.D != "" {
		return nil, fmt.Errorf("key %+v does not fit alg %s", k, h.Alg)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, err
	}
	input := []byte(parts[0] + "." + parts[1])
	digest := sha256.Sum256(input)
	num := func(s string) (*big.Int, error) {
		b, err := b64.DecodeString(s)
		return new(big.Int).SetBytes(b), err
	}
	switch h.Alg {
	case "RS256":
		n, err1 := num(k.N)
		e, err2 := num(k.E)
		if err := errors.Join(err1, err2); err != nil || k.Kty != "RSA" {
			return nil, fmt.Errorf("bad RSA key: %v", err)
		}
		pub := &rsa.PublicKey{N: n, E: int(e.Int64())}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			return nil, err
		}
	case "ES256":
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		if err := errors.Join(err1, err2); err != nil || k.Kty != "EC" || k.Crv != "P-256" || len(x) != 32 || len(y) != 32 || len(sig) != 64 {
			return nil, errors.New("bad EC key or signature")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, err
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(pub, digest[:], r, s) {
			return nil, errors.New("ES256 signature does not verify")
		}
	case "EdDSA":
		x, err := b64.DecodeString(k.X)
		if err != nil || k.Kty != "OKP" || k.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		if !ed25519.Verify(ed25519.PublicKey(x), input, sig) {
			return nil, errors.New("EdDSA signature does not verify")
		}
	default:
		return nil, fmt.Errorf("alg %q", h.Alg)
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(pb, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}

// newClock is the tests' clock: a fixed time with a fraction of a second,
// so that second-rounding (iat, the kill switch) is exercised.
func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.UTC))
}
