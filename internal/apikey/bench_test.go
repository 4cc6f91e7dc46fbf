package apikey

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/token"
)

// BenchmarkAuthenticate compares a hot API key (cached on the node) with
// an ES256 access token verified by the JWT authenticator, the same
// request otherwise. Both sub-benchmarks go through the API key
// Authenticator, as every request does once it is wired.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "gatehouse.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrator().Up(ctx); err != nil {
		b.Fatal(err)
	}
	ks, _ := secret.GenerateKeyString("b1")
	kr, _ := secret.ParseKeys(ks)
	mem := memory.New(time.Now)
	defer mem.Close()
	tokens, err := token.NewManager(token.Config{Issuer: "https://auth.example.test", Algorithm: "ES256"}, st, kr, mem, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); <-tokens.Done() }()
	if err := tokens.Start(runCtx); err != nil {
		b.Fatal(err)
	}
	u, err := st.CreateUser(ctx, store.User{Email: "bench@example.com", EmailNormalized: "bench@example.com"})
	if err != nil {
		b.Fatal(err)
	}
	a, err := NewAuthenticator(AuthenticatorDeps{Inner: token.Authenticator{Tokens: tokens}, Store: st, Keys: kr.DerivedKeys(HashPurpose), KV: mem})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := Generate(KindPersonal)
	if _, err := st.CreateAPIKey(ctx, store.APIKey{OwnerID: u.ID, Kind: store.APIKeyPersonal, Name: "bench", Prefix: Prefix(key),
		Hash: Hashes(kr.DerivedKeys(HashPurpose), key)[0], Permissions: []string{"invoices:read"}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	jwt, _, err := tokens.Issue(ctx, token.AccessClaims{Subject: u.ID, ClientID: "bench", Scope: "openid"})
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, credential string) {
		r := httptest.NewRequest("GET", "/v1/me", nil)
		r.Header.Set("Authorization", "Bearer "+credential)
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := a.Authenticate(r); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("api-key-hot", func(b *testing.B) { run(b, key) })
	b.Run("jwt", func(b *testing.B) { run(b, jwt) })
}

var _ auth.Authenticator = (*Authenticator)(nil)
