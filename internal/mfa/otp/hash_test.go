package otp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func testHasher(t testing.TB, fill byte) *Hasher {
	t.Helper()
	h, err := NewHasher(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHasherHash(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	h, err := NewHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("email\x00123456"))
	want := hex.EncodeToString(mac.Sum(nil))
	if got := h.Hash("email", "123456"); got != want {
		t.Errorf("Hash = %s, want %s", got, want)
	}
	if got := h.Hash("email", "123456"); got != want {
		t.Error("Hash is not deterministic")
	}
	if len(want) != 64 || strings.ToLower(want) != want {
		t.Errorf("hash %q is not 64 lower-case hex digits", want)
	}

	// The Hasher keeps its own copy of the key.
	key[0] ^= 1
	if got := h.Hash("email", "123456"); got != want {
		t.Error("Hash changed when the caller's key slice was modified")
	}
}

func TestHasherSeparation(t *testing.T) {
	h1, h2 := testHasher(t, 1), testHasher(t, 2)
	base := h1.Hash("email", "123456")
	differ := map[string]string{
		"other purpose":          h1.Hash("sms", "123456"),
		"other code":             h1.Hash("email", "123457"),
		"other key":              h2.Hash("email", "123456"),
		"purpose/code boundary":  h1.Hash("email1", "23456"),
		"purpose/code boundary2": h1.Hash("emai", "l123456"),
		"empty purpose":          h1.Hash("", "email\x00123456"),
		"user-bound purpose":     h1.Hash("email:user-1", "123456"),
	}
	seen := map[string]string{base: "base"}
	for name, got := range differ {
		if prev, ok := seen[got]; ok {
			t.Errorf("%s hashes the same as %s", name, prev)
		}
		seen[got] = name
	}
	if h1.Hash("backup:u1", "ABCDEFGHJKM") == h1.Hash("backup:u2", "ABCDEFGHJKM") {
		t.Error("the same backup code of two users hashes the same under user-bound purposes")
	}
}

func TestHasherVerify(t *testing.T) {
	h := testHasher(t, 7)
	stored := h.Hash("sms", "000123")
	if !h.Verify("sms", "000123", stored) {
		t.Error("Verify refused the right code")
	}
	for _, tc := range []struct{ purpose, code, hash string }{
		{"sms", "000124", stored},
		{"email", "000123", stored},
		{"sms", "000123", strings.ToUpper(stored)},
		{"sms", "000123", stored[:63]},
		{"sms", "000123", ""},
	} {
		if h.Verify(tc.purpose, tc.code, tc.hash) {
			t.Errorf("Verify(%q, %q, %q) = true", tc.purpose, tc.code, tc.hash)
		}
	}
	if testHasher(t, 8).Verify("sms", "000123", stored) {
		t.Error("a Hasher with another key verified the hash")
	}
}

func TestNewHasherKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31} {
		if _, err := NewHasher(make([]byte, n)); err == nil {
			t.Errorf("NewHasher accepted a %d-byte key", n)
		}
	}
	if _, err := NewHasher(make([]byte, 64)); err != nil {
		t.Errorf("NewHasher(64 bytes): %v", err)
	}
}

func TestHasherMisuse(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("zero Hasher", func() { new(Hasher).Hash("email", "1") })
	mustPanic("nil Hasher", func() { (*Hasher)(nil).Hash("email", "1") })
	mustPanic("NUL in purpose", func() { testHasher(t, 1).Hash("a\x00b", "1") })
}

func TestHasherRedacted(t *testing.T) {
	h := testHasher(t, 'K') // key bytes print as "KKKK…" or 75 75 …
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "hasher", h, "value", *h)
	for _, out := range []string{
		fmt.Sprint(h), fmt.Sprint(*h), fmt.Sprintf("%v %+v %#v %s", *h, *h, *h, h),
		fmt.Sprintf("%#v", h), logged.String(),
	} {
		if strings.Contains(out, "KKKK") || strings.Contains(out, "75 75") || strings.Contains(out, "4b4b") {
			t.Errorf("key material in %q", out)
		}
	}
}

// Equal is secret.Equal: it compares SHA-256 digests of both inputs with
// subtle.ConstantTimeCompare, so it neither stops at the first differing
// byte nor returns early on a length mismatch. Timing cannot be asserted
// reliably in a unit test; BenchmarkEqual shows it.
func TestEqual(t *testing.T) {
	h := testHasher(t, 3)
	a := h.Hash("email", "123456")
	tests := []struct {
		a, b string
		want bool
	}{
		{a, a, true},
		{a, strings.Clone(a), true},
		{a, h.Hash("email", "123455"), false},
		{a, a[:63] + "x", false},
		{a, "x" + a[1:], false},
		{a, a[:63], false},
		{a, a + "0", false},
		{a, "", false},
		{"", "", true},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// Compare the cases: the times should not differ beyond noise.
func BenchmarkEqual(b *testing.B) {
	h := testHasher(b, 3)
	a := h.Hash("email", "123456")
	for _, bc := range []struct{ name, other string }{
		{"equal", strings.Clone(a)},
		{"first byte differs", "x" + a[1:]},
		{"last byte differs", a[:63] + "x"},
		{"shorter", a[:10]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				Equal(a, bc.other)
			}
		})
	}
}

func BenchmarkHash(b *testing.B) {
	h := testHasher(b, 3)
	for b.Loop() {
		h.Hash("email", "123456")
	}
}
