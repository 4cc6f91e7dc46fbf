package secret

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Fixed test keys. They are distinctive so a leak into an error is easy to
// spot.
var (
	keyA = bytes.Repeat([]byte{0xA1, 0x5E, 0xC2, 0x7F}, 8)
	keyB = bytes.Repeat([]byte{0xB2, 0x6D, 0x13, 0xE0}, 8)
)

func mustParse(t testing.TB, s string) *Keyring {
	t.Helper()
	kr, err := ParseKeys(s)
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	return kr
}

func entry(id string, key []byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(key)
}

func TestParseKeysValid(t *testing.T) {
	std := base64.StdEncoding.EncodeToString(keyA)
	url := base64.URLEncoding.EncodeToString(keyA)
	rawStd := base64.RawStdEncoding.EncodeToString(keyA)
	rawURL := base64.RawURLEncoding.EncodeToString(keyA)
	if std == url {
		t.Fatal("test key should differ between std and URL alphabets")
	}
	tests := []struct {
		name    string
		in      string
		wantIDs []string
	}{
		{"single std", "k1:" + std, []string{"k1"}},
		{"single url", "k1:" + url, []string{"k1"}},
		{"raw std", "k1:" + rawStd, []string{"k1"}},
		{"raw url", "k1:" + rawURL, []string{"k1"}},
		{"surrounding whitespace", " \n\tk1:" + std + " \n", []string{"k1"}},
		{"whitespace around parts", " k-2 : " + std + " ,\n k_1 :" + url + "\n", []string{"k-2", "k_1"}},
		{"two keys current first", entry("new", keyB) + "," + entry("old", keyA), []string{"new", "old"}},
		{"max id length", strings.Repeat("x", 32) + ":" + std, []string{strings.Repeat("x", 32)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := ParseKeys(tt.in)
			if err != nil {
				t.Fatalf("ParseKeys: %v", err)
			}
			if diff := cmp.Diff(tt.wantIDs, kr.KeyIDs()); diff != "" {
				t.Errorf("KeyIDs mismatch (-want +got):\n%s", diff)
			}
			if got := kr.CurrentKeyID(); got != tt.wantIDs[0] {
				t.Errorf("CurrentKeyID = %q, want %q", got, tt.wantIDs[0])
			}
		})
	}
}

func TestParseKeysErrors(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(keyA)
	goodB := base64.StdEncoding.EncodeToString(keyB)
	short := base64.StdEncoding.EncodeToString(keyA[:16])
	long := base64.StdEncoding.EncodeToString(append(append([]byte{}, keyA...), 0x01))
	mixed := strings.Replace(base64.URLEncoding.EncodeToString(keyA), "-", "+", 1)
	if !strings.ContainsAny(mixed, "-_") || !strings.ContainsAny(mixed, "+/") {
		t.Fatal("mixed-alphabet test key should contain both alphabets")
	}
	zero := base64.StdEncoding.EncodeToString(make([]byte, 32))

	tests := []struct {
		name string
		in   string
		want []string // substrings the error must contain
	}{
		{"empty", "", []string{"no encryption keys"}},
		{"blank", "  \n ", []string{"no encryption keys"}},
		{"empty entry", "k1:" + good + ",,k2:" + goodB, []string{"entry 2 is empty"}},
		{"trailing comma", "k1:" + good + ",", []string{"entry 2 is empty"}},
		{"no colon", good, []string{"entry 1 has no ':'"}},
		{"empty id", ":" + good, []string{"entry 1", "key id is empty"}},
		{"blank id", "  :" + good, []string{"entry 1", "key id is empty"}},
		{"id too long", strings.Repeat("a", 33) + ":" + good, []string{"entry 1", "33 bytes long, at most 32"}},
		{"id with dot", "k.1:" + good, []string{"entry 1", "not in [A-Za-z0-9_-] at byte 2"}},
		{"id with space", "k 1:" + good, []string{"at byte 2"}},
		{"id with slash", "a/b:" + good, []string{"at byte 2"}},
		{"id non-ascii", "kü:" + good, []string{"at byte 2"}},
		{"duplicate id", "k1:" + good + ",k1:" + goodB, []string{"entry 2", `key id "k1" already used by entry 1`}},
		{"duplicate id after bad key", "k1:AAAA,k1:" + goodB, []string{"entry 1", "entry 2", "already used by entry 1"}},
		{"empty key", "k1:", []string{`entry 1 (id "k1")`, "key is empty"}},
		{"bad base64 char", "k1:" + good[:10] + "!" + good[11:], []string{`(id "k1")`, "not valid standard or URL-safe base64", "byte 11"}},
		{"mixed alphabets", "k1:" + mixed, []string{"mixes standard"}},
		{"non-canonical padding", "k1:" + good[:len(good)-1] + "==", []string{"not valid"}},
		{"key too short", "k1:" + short, []string{`(id "k1")`, "16 bytes, want 32"}},
		{"key too long", "k1:" + long, []string{"33 bytes, want 32"}},
		{"all zero key", "k1:" + zero, []string{"all zero"}},
		{"second entry bad", "k1:" + good + ",k2:" + short, []string{"entry 2", `(id "k2")`}},
		{"several problems reported together", ":" + good + ",k2:" + short + ",k3", []string{"entry 1", "entry 2", "entry 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := ParseKeys(tt.in)
			if err == nil {
				t.Fatalf("ParseKeys succeeded with %v, want error", kr)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			assertNoKeyMaterial(t, msg, tt.in)
		})
	}
}

// assertNoKeyMaterial fails if msg contains the key part of any entry of in,
// any base64 form of the test keys, or an id that ParseKeys rejected.
func assertNoKeyMaterial(t *testing.T, msg, in string) {
	t.Helper()
	var forbidden []string
	for _, k := range [][]byte{keyA, keyB} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			s := enc.EncodeToString(k)
			forbidden = append(forbidden, s, s[:12], s[len(s)-12:])
		}
	}
	for _, e := range strings.Split(in, ",") {
		id, key, ok := strings.Cut(strings.TrimSpace(e), ":")
		if !ok {
			key = id // a lone key with no id must not be echoed either
		}
		if k := strings.TrimSpace(key); len(k) >= 4 {
			forbidden = append(forbidden, k)
		}
		if id := strings.TrimSpace(id); ok && checkKeyID(id) != nil && len(id) > 1 {
			forbidden = append(forbidden, id)
		}
	}
	for _, f := range forbidden {
		if strings.Contains(msg, f) {
			t.Errorf("error %q contains key material or a rejected id %q", msg, f)
		}
	}
}

func TestKeyringFormattingIsRedacted(t *testing.T) {
	kr := mustParse(t, entry("k2", keyB)+","+entry("k1", keyA))
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("keys", "keyring", kr)
	outputs := []string{
		fmt.Sprint(kr), fmt.Sprintf("%v", kr), fmt.Sprintf("%+v", kr), fmt.Sprintf("%#v", kr),
		fmt.Sprintf("%s", kr), fmt.Sprintf("%x", kr), fmt.Sprintf("%v", *kr), fmt.Sprintf("%+v", []*Keyring{kr}), logBuf.String(),
	}
	for _, out := range outputs {
		for _, leak := range []string{"a15ec27f", "A15EC27F", "161 94 194 127", "0xa1, 0x5e", base64.StdEncoding.EncodeToString(keyA)[:8], "aead", "gcm"} {
			if strings.Contains(out, leak) {
				t.Errorf("formatted keyring %q contains %q", out, leak)
			}
		}
	}
	if got, want := kr.String(), "secret.Keyring[current=k2 k1]"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if !strings.Contains(logBuf.String(), "keyring.current=k2") {
		t.Errorf("slog output %q lacks current key id", logBuf.String())
	}
}

func TestGenerateKeyString(t *testing.T) {
	s, err := GenerateKeyString("gen-1")
	if err != nil {
		t.Fatal(err)
	}
	id, key, ok := strings.Cut(s, ":")
	if !ok || id != "gen-1" {
		t.Fatalf("GenerateKeyString = %q, want gen-1:<key>", s)
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != KeySize {
		t.Fatalf("key part decodes to %d bytes, err %v", len(raw), err)
	}
	kr := mustParse(t, s)
	if kr.CurrentKeyID() != "gen-1" {
		t.Errorf("CurrentKeyID = %q", kr.CurrentKeyID())
	}
	s2, err := GenerateKeyString("gen-1")
	if err != nil {
		t.Fatal(err)
	}
	if s2 == s {
		t.Error("two generated keys are equal")
	}
	for _, bad := range []string{"", "a b", strings.Repeat("x", 33), "k:1"} {
		if _, err := GenerateKeyString(bad); err == nil {
			t.Errorf("GenerateKeyString(%q) succeeded, want error", bad)
		}
	}
}

func FuzzParseKeys(f *testing.F) {
	good := entry("k1", keyA)
	for _, s := range []string{
		"", ",", ":", "k1:", good, good + "," + entry("k2", keyB), " " + good + " ,\n" + entry("k2", keyB),
		"k1:" + base64.RawURLEncoding.EncodeToString(keyA), good + "," + good, "a.b:" + good, "k1:AAAA",
		"k1:" + base64.StdEncoding.EncodeToString(keyA[:31]),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kr, err := ParseKeys(s)
		if err != nil {
			if kr != nil {
				t.Fatal("ParseKeys returned a keyring and an error")
			}
			// Any entry whose key part decodes to a real 32-byte key is key
			// material and must not appear in the message.
			msg := err.Error()
			for _, e := range strings.Split(s, ",") {
				_, key, _ := strings.Cut(e, ":")
				key = strings.TrimSpace(key)
				if _, derr := decodeKey(key); derr == nil && strings.Contains(msg, key) {
					t.Fatalf("error %q contains key material", msg)
				}
			}
			return
		}
		ids := kr.KeyIDs()
		if len(ids) == 0 || kr.CurrentKeyID() != ids[0] {
			t.Fatalf("parsed keyring has ids %q, current %q", ids, kr.CurrentKeyID())
		}
		for _, id := range ids {
			if checkKeyID(id) != nil {
				t.Fatalf("accepted invalid key id %q", id)
			}
		}
		sealed, err := kr.Seal([]byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := kr.Open(sealed, nil); err != nil || string(pt) != "x" {
			t.Fatalf("round trip with parsed keyring: %q, %v", pt, err)
		}
	})
}

func TestDerivedKeys(t *testing.T) {
	k1, _ := GenerateKeyString("k1")
	k2, _ := GenerateKeyString("k2")
	old, err := ParseKeys(k1)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := ParseKeys(k2 + "," + k1)
	if err != nil {
		t.Fatal(err)
	}
	a := old.DerivedKeys("purpose-a")
	b := rotated.DerivedKeys("purpose-a")
	if len(a) != 1 || len(b) != 2 || len(a[0]) != 32 {
		t.Fatalf("derived key counts %d, %d", len(a), len(b))
	}
	if string(b[1]) != string(a[0]) {
		t.Error("the old key's derived key changed after a rotation")
	}
	if string(b[0]) == string(a[0]) {
		t.Error("the new current key derives the same key as the old one")
	}
	if string(old.DerivedKeys("purpose-b")[0]) == string(a[0]) {
		t.Error("different purposes derive the same key")
	}
	again, _ := ParseKeys(k1)
	if string(again.DerivedKeys("purpose-a")[0]) != string(a[0]) {
		t.Error("derivation is not deterministic")
	}
}

func TestPseudonym(t *testing.T) {
	k1, _ := GenerateKeyString("k1")
	k2, _ := GenerateKeyString("k2")
	a, _ := ParseKeys(k1)
	again, _ := ParseKeys(k1)
	b, _ := ParseKeys(k2)
	const addr = "someone.private@example.org"
	p := a.Pseudonym("rate-limit", addr)
	if len(p) != 22 || strings.ContainsAny(p, "{}:@.") {
		t.Errorf("pseudonym %q: want 22 base64url characters", p)
	}
	if again.Pseudonym("rate-limit", addr) != p {
		t.Error("the pseudonym is not deterministic")
	}
	for name, other := range map[string]string{
		"another key":     b.Pseudonym("rate-limit", addr),
		"another purpose": a.Pseudonym("login-lockout", addr),
		"another value":   a.Pseudonym("rate-limit", "someone.else@example.org"),
		"no keyring":      (*Keyring)(nil).Pseudonym("rate-limit", addr),
	} {
		if other == p {
			t.Errorf("%s gives the same pseudonym", name)
		}
	}
	// Without keys it is still no address, and still deterministic.
	var none *Keyring
	if q := none.Pseudonym("rate-limit", addr); len(q) != 22 || q != none.Pseudonym("rate-limit", addr) {
		t.Errorf("unkeyed pseudonym %q", q)
	}
}
