package token_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/token"
)

// FuzzVerify feeds Verify arbitrary input: it must never panic, and never
// accept anything but the one valid token among the seeds.
func FuzzVerify(f *testing.F) {
	clk := newClock()
	m := startManager(f, sqliteStore(f), newKeyring(f), memoryKV(f, clk), clk, baseConfig())
	valid := issue(f, m, defaultClaims("s"))
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid,
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		"eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJFUzI1NiIsImtpZCI6IngiLCJ0eXAiOiJhdCtqd3QifQ.e30.AAAA",
		"", ".", "..", "a.b.c", "{}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := m.Verify(t.Context(), raw)
		switch {
		case err == nil && raw != valid:
			t.Fatalf("accepted %q as %+v", raw, c)
		case err != nil && !errors.Is(err, token.ErrInvalid):
			t.Fatalf("Verify(%q) = %v, want ErrInvalid", raw, err)
		}
	})
}
