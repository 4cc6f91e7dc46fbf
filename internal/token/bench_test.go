package token_test

import (
	"testing"

	"github.com/gatehouse/gatehouse/internal/token"
)

func benchManager(b *testing.B) *token.Manager {
	clk := newClock()
	cfg := baseConfig()
	cfg.Algorithm = "RS256"
	return startManager(b, sqliteStore(b), newKeyring(b), memoryKV(b, clk), clk, cfg)
}

// BenchmarkVerify measures the request path: RS256 signature, claims and
// the deny-list read on the in-process kv store.
func BenchmarkVerify(b *testing.B) {
	m := benchManager(b)
	raw := issue(b, m, defaultClaims("session-1"))
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssue measures signing a token with RS256.
func BenchmarkIssue(b *testing.B) {
	m := benchManager(b)
	ctx := b.Context()
	ac := defaultClaims("session-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.Issue(ctx, ac); err != nil {
			b.Fatal(err)
		}
	}
}
