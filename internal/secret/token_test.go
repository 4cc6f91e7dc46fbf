package secret

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	for _, n := range []int{16, 32, 33} {
		tok, err := NewToken(n)
		if err != nil {
			t.Fatalf("NewToken(%d): %v", n, err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != n {
			t.Errorf("NewToken(%d) = %q: decodes to %d bytes, err %v", n, tok, len(raw), err)
		}
		if strings.ContainsAny(tok, "=+/") {
			t.Errorf("NewToken(%d) = %q is not unpadded base64url", n, tok)
		}
	}
	seen := make(map[string]bool)
	for range 100 {
		tok, err := NewToken(16)
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok] {
			t.Fatalf("duplicate token %q", tok)
		}
		seen[tok] = true
	}
	for _, n := range []int{-1, 0, 8, 15} {
		if _, err := NewToken(n); err == nil {
			t.Errorf("NewToken(%d) succeeded, want error", n)
		}
	}
}

func TestRandomBytes(t *testing.T) {
	b, err := RandomBytes(0)
	if err != nil || len(b) != 0 {
		t.Errorf("RandomBytes(0) = %v, %v", b, err)
	}
	b, err = RandomBytes(64)
	if err != nil || len(b) != 64 {
		t.Fatalf("RandomBytes(64) = %d bytes, %v", len(b), err)
	}
	if _, err := RandomBytes(-1); err == nil {
		t.Error("RandomBytes(-1) succeeded")
	}
}

func TestHashToken(t *testing.T) {
	// SHA-256 test vectors.
	tests := map[string]string{
		"":    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	}
	for in, want := range tests {
		if got := HashToken(in); got != want {
			t.Errorf("HashToken(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"ab", "abc", false},
		{"", "a", false},
		{"abc", "ABC", false},
		{"a\x00", "a", false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := EqualBytes([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("EqualBytes(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if !EqualBytes(nil, []byte{}) {
		t.Error("EqualBytes(nil, empty) = false")
	}
}

func BenchmarkSeal(b *testing.B) {
	kr := mustParse(b, entry("k1", keyA))
	pt := []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	for b.Loop() {
		if _, err := kr.Seal(pt, []byte("totp:1")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	kr := mustParse(b, entry("k1", keyA))
	sealed, err := kr.Seal([]byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"), []byte("totp:1"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := kr.Open(sealed, []byte("totp:1")); err != nil {
			b.Fatal(err)
		}
	}
}
