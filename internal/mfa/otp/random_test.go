package otp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

// randomString is unbiased by construction: it keeps a byte only below the
// largest multiple of the alphabet size that fits in a byte, so each symbol
// has the same number of byte values mapping to it. Check this exactly by
// feeding every byte value once: every symbol must come out equally often,
// and rejected bytes must produce nothing.
func TestRandomStringIsUnbiased(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, alphabet := range []string{"0123456789", BackupAlphabet, "ab", "abc", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"} {
		size := len(alphabet)
		accepted := 256 - 256%size
		// Ask for exactly as many symbols as there are accepted bytes; the
		// reader holds each byte value once, repeated so that the last
		// (partially used) buffer refill does not run dry.
		src := bytes.NewReader(bytes.Repeat(all, 4))
		got, err := randomString(src, alphabet, accepted)
		if err != nil {
			t.Fatalf("alphabet %q: %v", alphabet, err)
		}
		counts := map[byte]int{}
		for i := range len(got) {
			counts[got[i]]++
		}
		for i := range size {
			if n := counts[alphabet[i]]; n != accepted/size {
				t.Errorf("alphabet of %d: symbol %q drawn %d times from one pass over all bytes, want %d",
					size, alphabet[i], n, accepted/size)
			}
		}
	}
}

func TestRandomStringRejectsHighBytes(t *testing.T) {
	// 250..255 are rejected for digits; then 0 → '0', 9 → '9', 10 → '0'.
	src := bytes.NewReader(append([]byte{250, 251, 252, 253, 254, 255, 0, 9, 10, 249}, make([]byte, 64)...))
	got, err := randomString(src, "0123456789", 4)
	if err != nil {
		t.Fatal(err)
	}
	if got != "0909" {
		t.Errorf("got %q, want %q: bytes 250-255 skipped, 249 mapped to 9", got, "0909")
	}
}

func TestRandomStringReadError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := randomString(iotest.ErrReader(boom), "0123456789", 6); !errors.Is(err, boom) {
		t.Errorf("error = %v, want boom", err)
	}
	// A source that only yields rejected bytes ends in an error, not a hang.
	if _, err := randomString(bytes.NewReader(bytes.Repeat([]byte{255}, 100)), "0123456789", 6); err == nil {
		t.Error("no error from an exhausted source")
	}
	for _, a := range []string{"", "x", strings.Repeat("x", 257)} {
		if _, err := randomString(bytes.NewReader(make([]byte, 10)), a, 1); err == nil {
			t.Errorf("alphabet of %d symbols accepted", len(a))
		}
	}
}

func TestNumericCode(t *testing.T) {
	const n = 20000
	var counts [10]int
	seen := map[string]bool{}
	for range n {
		c, err := NumericCode(6)
		if err != nil {
			t.Fatal(err)
		}
		if !isDigits(c, 6) {
			t.Fatalf("NumericCode(6) = %q", c)
		}
		seen[c] = true
		for i := range len(c) {
			counts[c[i]-'0']++
		}
	}
	// 120,000 digits: about 12,000 of each (standard deviation ≈ 104), so
	// ±1,000 fails only if something is badly wrong.
	for d, got := range counts {
		if got < 11000 || got > 13000 {
			t.Errorf("digit %d drawn %d times of %d, want about %d", d, got, n*6, n*6/10)
		}
	}
	// 20,000 draws from 10^6 values: about 200 collisions expected.
	if len(seen) < n-1000 {
		t.Errorf("only %d distinct codes in %d", len(seen), n)
	}

	for _, d := range []int{MinNumericDigits, 8, MaxNumericDigits} {
		if c, err := NumericCode(d); err != nil || !isDigits(c, d) {
			t.Errorf("NumericCode(%d) = %q, %v", d, c, err)
		}
	}
	for _, d := range []int{-1, 0, 4, 5, MaxNumericDigits + 1} {
		if c, err := NumericCode(d); err == nil {
			t.Errorf("NumericCode(%d) = %q, want an error", d, c)
		}
	}
}
