package apikey

import (
	"math/big"
	"regexp"
	"strings"
	"testing"
)

func TestGenerateParse(t *testing.T) {
	re := regexp.MustCompile(TokenPattern)
	for _, kind := range []string{KindPersonal, KindService} {
		for range 200 {
			tok, err := Generate(kind)
			if err != nil {
				t.Fatal(err)
			}
			if len(tok) != TokenLen || !strings.HasPrefix(tok, "gh_"+kind+"_") {
				t.Fatalf("token %q: wrong shape", tok)
			}
			got, err := Parse(tok)
			if err != nil || got != kind {
				t.Fatalf("Parse(%q) = %q, %v", tok, got, err)
			}
			if !re.MatchString("secret=" + tok + ";") {
				t.Fatalf("TokenPattern misses %q", tok)
			}
			if Prefix(tok) != tok[:12] {
				t.Fatal("Prefix")
			}
		}
	}
	if _, err := Generate("xx"); err == nil {
		t.Fatal("Generate accepted an unknown kind")
	}
}

// TestChecksumKnownValue pins the encoding against values worked out by
// hand: CRC32-IEEE("123456789") is 0xCBF43926, 0xFFFFFFFF is the largest.
func TestChecksumKnownValue(t *testing.T) {
	if got := checksum("123456789"); got != "3jZRME" {
		t.Fatalf("checksum(123456789) = %q, want 3jZRME", got)
	}
	if got := checksum(""); got != "000000" {
		t.Fatalf("checksum of empty = %q", got)
	}
	if got := base62(new(big.Int).SetUint64(0xFFFFFFFF), ChecksumLen); got != "4gfFC3" {
		t.Fatalf("base62(2^32-1) = %q, want 4gfFC3", got)
	}
	// Computed independently (Python's zlib.crc32), so a mistake shared by
	// Generate and Parse cannot hide.
	for _, k := range []string{"gh_pk_8THahWPfQZDtC0v1QOoClr4XpDVBLmuBH799l3iMLgO4IccO3", "gh_sk_LXTxCB3f6EQWiXHCi2w425t4iy0yfe9wymJjZCPu4qZ1pJ4p6"} {
		if _, err := Parse(k); err != nil {
			t.Errorf("Parse(%q): %v", k, err)
		}
	}
	tok := build(KindPersonal, [32]byte{})
	body := "gh_pk_" + strings.Repeat("0", SecretLen)
	if tok != body+checksum(body) {
		t.Fatalf("zero secret gives %q", tok)
	}
	var ones [32]byte
	for i := range ones {
		ones[i] = 0xff
	}
	if tok := build(KindService, ones); len(tok) != TokenLen {
		t.Fatalf("2^256-1 does not fit: %q", tok)
	}
}

func TestParseRefuses(t *testing.T) {
	tok, _ := Generate(KindPersonal)
	for _, bad := range []string{
		"", "gh_", tok[:len(tok)-1], tok + "0", "gh_xk_" + tok[6:], "GH_pk_" + tok[6:],
		strings.Replace(tok, "gh_pk_", "gh_sk_", 1), // kind is covered by the checksum
		tok[:10] + "-" + tok[11:],
	} {
		if _, err := Parse(bad); err != ErrMalformed {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

// TestEverySingleCharacterChangeRefused changes each position of a token
// to every other character of the alphabet: CRC32 detects every error
// confined to 32 bits, so none may pass.
func TestEverySingleCharacterChangeRefused(t *testing.T) {
	for range 5 {
		tok, _ := Generate(KindService)
		for i := 0; i < len(tok); i++ {
			for _, c := range []byte(alphabet + "_") {
				if c == tok[i] {
					continue
				}
				b := []byte(tok)
				b[i] = c
				if _, err := Parse(string(b)); err == nil {
					t.Fatalf("change at %d to %q accepted: %s", i, c, b)
				}
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	tok, _ := Generate(KindPersonal)
	f.Add(tok, 7, byte('x'))
	f.Add("gh_sk_", 0, byte('0'))
	f.Fuzz(func(t *testing.T, s string, pos int, c byte) {
		kind, err := Parse(s)
		if err == nil {
			if kind != KindPersonal && kind != KindService {
				t.Fatalf("Parse(%q) kind %q", s, kind)
			}
			if checksum(s[:len(s)-ChecksumLen]) != s[len(s)-ChecksumLen:] {
				t.Fatalf("Parse accepted a wrong checksum: %q", s)
			}
			if pos < 0 {
				pos = -pos
			}
			pos %= len(s)
			if s[pos] != c {
				b := []byte(s)
				b[pos] = c
				if _, err := Parse(string(b)); err == nil {
					t.Fatalf("single change at %d accepted: %q → %q", pos, s, b)
				}
			}
		}
	})
}

func TestHashes(t *testing.T) {
	keys := [][]byte{[]byte("k1"), []byte("k2")}
	h := Hashes(keys, "gh_pk_x")
	if len(h) != 2 || len(h[0]) != 32 || string(h[0]) == string(h[1]) {
		t.Fatalf("Hashes = %x", h)
	}
	if string(Hashes(keys, "gh_pk_y")[0]) == string(h[0]) {
		t.Fatal("different tokens, same hash")
	}
}
