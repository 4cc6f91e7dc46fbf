package secret

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	kr := mustParse(t, entry("k1", keyA))
	tests := []struct {
		name string
		pt   []byte
		ad   []byte
	}{
		{"empty plaintext no ad", nil, nil},
		{"empty plaintext with ad", []byte{}, []byte("row:1")},
		{"short", []byte("JBSWY3DPEHPK3PXP"), []byte("totp:user-42")},
		{"binary", []byte{0, 1, 2, 255, 254, 0}, []byte{0, 0}},
		{"large", bytes.Repeat([]byte("abcdefgh"), 1<<14), []byte("big")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := kr.Seal(tt.pt, tt.ad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			parts := strings.Split(sealed, ".")
			if len(parts) != 4 || parts[0] != "v1" || parts[1] != "k1" {
				t.Fatalf("sealed %q does not look like v1.k1.<wrapped>.<ct>", sealed)
			}
			for _, c := range sealed {
				if !(isKeyIDByte(byte(c)) || c == '.') || c > 0x7f {
					t.Fatalf("sealed value has non-URL-safe character %q", c)
				}
			}
			if len(tt.pt) >= 8 && strings.Contains(sealed, string(tt.pt[:8])) {
				t.Fatal("sealed value contains plaintext")
			}
			got, err := kr.Open(sealed, tt.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.pt) {
				t.Fatalf("Open = %q, want %q", got, tt.pt)
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	kr := mustParse(t, entry("k1", keyA))
	a, err := kr.Seal([]byte("same"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kr.Seal([]byte("same"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	if pa[2] == pb[2] || pa[3] == pb[3] {
		t.Errorf("two seals of the same plaintext share a part:\n%s\n%s", a, b)
	}
}

func TestRotation(t *testing.T) {
	oldKR := mustParse(t, entry("old", keyA))
	ad := []byte("totp:user-1")
	sealedOld, err := oldKR.Seal([]byte("secret-1"), ad)
	if err != nil {
		t.Fatal(err)
	}

	// Operator prepends a new key.
	kr := mustParse(t, entry("new", keyB)+","+entry("old", keyA))
	if kr.CurrentKeyID() != "new" {
		t.Fatalf("CurrentKeyID = %q, want new", kr.CurrentKeyID())
	}
	got, err := kr.Open(sealedOld, ad)
	if err != nil || string(got) != "secret-1" {
		t.Fatalf("old key no longer opens: %q, %v", got, err)
	}
	if !kr.NeedsRewrap(sealedOld) {
		t.Error("NeedsRewrap(old value) = false, want true")
	}

	sealedNew, err := kr.Seal([]byte("secret-2"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealedNew, "v1.new.") {
		t.Errorf("new value %q not sealed under current key", sealedNew)
	}
	if kr.NeedsRewrap(sealedNew) {
		t.Error("NeedsRewrap(current value) = true, want false")
	}
	if oldKR.NeedsRewrap("garbage") || kr.NeedsRewrap("") {
		t.Error("NeedsRewrap(malformed) = true, want false")
	}

	rewrapped, err := kr.Rewrap(sealedOld, ad)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if kr.NeedsRewrap(rewrapped) {
		t.Error("rewrapped value still needs rewrap")
	}
	po, pr := strings.Split(sealedOld, "."), strings.Split(rewrapped, ".")
	if pr[1] != "new" || pr[2] == po[2] || pr[3] != po[3] {
		t.Errorf("Rewrap should change only key id and wrapped key:\nold %s\nnew %s", sealedOld, rewrapped)
	}

	// After the old key is removed, the rewrapped value still opens and the
	// original does not.
	newOnly := mustParse(t, entry("new", keyB))
	got, err = newOnly.Open(rewrapped, ad)
	if err != nil || string(got) != "secret-1" {
		t.Fatalf("rewrapped value under new key only: %q, %v", got, err)
	}
	if _, err := newOnly.Open(sealedOld, ad); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open(old value) after retiring key: err = %v, want ErrUnknownKey", err)
	}
	if _, err := newOnly.Rewrap(sealedOld, ad); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Rewrap(old value) after retiring key: err = %v, want ErrUnknownKey", err)
	}

	// Rewrap of a current value is a no-op; with the wrong AD it fails.
	same, err := kr.Rewrap(sealedNew, ad)
	if err != nil || same != sealedNew {
		t.Errorf("Rewrap(current) = %q, %v; want unchanged", same, err)
	}
	if _, err := kr.Rewrap(sealedOld, []byte("totp:user-2")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap with wrong AD: err = %v, want ErrDecrypt", err)
	}
}

func TestRewrapRejectsTamperedContent(t *testing.T) {
	oldKR := mustParse(t, entry("old", keyA))
	kr := mustParse(t, entry("new", keyB)+","+entry("old", keyA))
	sealed, err := oldKR.Seal([]byte("payload"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tampered := flipInPart(t, sealed, 3, 14)
	if _, err := kr.Rewrap(tampered, nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap(tampered content) err = %v, want ErrDecrypt", err)
	}
}

// flipInPart decodes base64 part i of sealed, flips one bit of byte at, and
// re-encodes, so the result is well formed but altered.
func flipInPart(t *testing.T, sealed string, i, at int) string {
	t.Helper()
	parts := strings.Split(sealed, ".")
	raw, err := b64.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	raw[at%len(raw)] ^= 0x01
	parts[i] = b64.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func TestTamperDetection(t *testing.T) {
	kr := mustParse(t, entry("k1", keyA)+","+entry("k2", keyB))
	ad := []byte("row-7")
	sealed, err := kr.Seal([]byte("the plaintext"), ad)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(sealed, ".")
	wrappedLen := len(mustDecode(t, parts[2]))
	contentLen := len(mustDecode(t, parts[3]))

	// Every single-bit flip anywhere in the wrapped key or the content
	// (nonce, ciphertext or tag) must be detected.
	for i, n := range map[int]int{2: wrappedLen, 3: contentLen} {
		for at := 0; at < n; at++ {
			if _, err := kr.Open(flipInPart(t, sealed, i, at), ad); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("flip in part %d byte %d: err = %v, want ErrDecrypt", i, at, err)
			}
		}
	}

	tests := []struct {
		name    string
		sealed  string
		wantErr error
	}{
		{"version changed", "v2" + sealed[2:], ErrMalformed},
		{"key id swapped to another known key", strings.Replace(sealed, ".k1.", ".k2.", 1), ErrDecrypt},
		{"key id unknown", strings.Replace(sealed, ".k1.", ".k9.", 1), ErrUnknownKey},
		{"key id invalid", strings.Replace(sealed, ".k1.", ".k!.", 1), ErrMalformed},
		{"wrapped part swapped with another seal's", swapPart(t, kr, sealed, 2, ad), ErrDecrypt},
		{"content part swapped with another seal's", swapPart(t, kr, sealed, 3, ad), ErrDecrypt},
		{"ciphertext truncated", truncatePart(t, sealed, 3, 1), ErrDecrypt},
		{"ciphertext cut to nonce and tag size", truncatePart(t, sealed, 3, contentLen-nonceSize-tagSize), ErrDecrypt},
		{"ciphertext shorter than nonce and tag", truncatePart(t, sealed, 3, contentLen-nonceSize-tagSize+1), ErrMalformed},
		{"wrapped part truncated", strings.Join([]string{parts[0], parts[1], parts[2][:len(parts[2])-2], parts[3]}, "."), ErrMalformed},
		{"extra part", sealed + ".x", ErrMalformed},
		{"missing part", strings.Join(parts[:3], "."), ErrMalformed},
		{"base64 padding added", sealed + "=", ErrMalformed},
		{"non-base64 character", parts[0] + "." + parts[1] + "." + parts[2] + ".!" + parts[3][1:], ErrMalformed},
		{"empty", "", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kr.Open(tt.sealed, ad)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// truncatePart drops the last n decoded bytes of part i of sealed.
func truncatePart(t *testing.T, sealed string, i, n int) string {
	t.Helper()
	parts := strings.Split(sealed, ".")
	raw := mustDecode(t, parts[i])
	parts[i] = b64.EncodeToString(raw[:len(raw)-n])
	return strings.Join(parts, ".")
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// swapPart replaces part i of sealed with the same part of a fresh seal of
// the same plaintext and AD.
func swapPart(t *testing.T, kr *Keyring, sealed string, i int, ad []byte) string {
	t.Helper()
	other, err := kr.Seal([]byte("the plaintext"), ad)
	if err != nil {
		t.Fatal(err)
	}
	p, o := strings.Split(sealed, "."), strings.Split(other, ".")
	p[i] = o[i]
	return strings.Join(p, ".")
}

func TestAssociatedDataMismatch(t *testing.T) {
	kr := mustParse(t, entry("k1", keyA))
	sealed, err := kr.Seal([]byte("x"), []byte("user:1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range [][]byte{nil, []byte(""), []byte("user:2"), []byte("user:1 "), []byte("User:1")} {
		if _, err := kr.Open(sealed, ad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Open with AD %q: err = %v, want ErrDecrypt", ad, err)
		}
	}
}

// TestAssociatedDataBindsBothLayers checks that each layer on its own
// rejects a different AD: a data key unwrapped for one row cannot decrypt
// content bound to another, and vice versa.
func TestAssociatedDataBindsBothLayers(t *testing.T) {
	kr := mustParse(t, entry("k1", keyA))
	sealed, err := kr.Seal([]byte("x"), []byte("row:1"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseEnvelope(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.unwrap(e, []byte("row:2")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("unwrap with other AD: err = %v, want ErrDecrypt", err)
	}
	dk, err := kr.unwrap(e, []byte("row:1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openContent(dk, e, []byte("row:2")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("content with other AD: err = %v, want ErrDecrypt", err)
	}
}

func TestUnknownKey(t *testing.T) {
	a := mustParse(t, entry("a", keyA))
	b := mustParse(t, entry("b", keyB))
	sealed, err := a.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Open(sealed, nil)
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
	if !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("error %q should name the key id", err)
	}
	// Same id, different key material: authentication fails.
	other := mustParse(t, entry("a", keyB))
	if _, err := other.Open(sealed, nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("same id other key: err = %v, want ErrDecrypt", err)
	}
}

func TestNilKeyring(t *testing.T) {
	var kr *Keyring
	if _, err := kr.Seal([]byte("x"), nil); err == nil {
		t.Error("Seal on nil keyring succeeded")
	}
	good := mustParse(t, entry("k1", keyA))
	sealed, err := good.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(sealed, nil); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open on nil keyring: err = %v, want ErrUnknownKey", err)
	}
	if kr.CurrentKeyID() != "" || kr.KeyIDs() != nil {
		t.Error("nil keyring reports keys")
	}
}

func FuzzOpen(f *testing.F) {
	kr := mustParse(f, entry("k1", keyA)+","+entry("k2", keyB))
	for _, ad := range []string{"", "row:1"} {
		s, err := kr.Seal([]byte("seed plaintext"), []byte(ad))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s, ad)
		f.Add(s, ad+"x")
		f.Add(strings.Replace(s, ".k1.", ".k2.", 1), ad)
		f.Add(strings.Replace(s, ".k1.", ".zz.", 1), ad)
	}
	for _, s := range []string{"", ".", "...", "v1...", "v1.k1..", "v1.k1.AAAA.AAAA", "v1.k1.." + strings.Repeat("A", 80), "v1.k1." + strings.Repeat("A", 80) + "." + strings.Repeat("A", 40)} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, sealed, ad string) {
		pt, err := kr.Open(sealed, []byte(ad))
		if err != nil {
			if pt != nil {
				t.Fatal("Open returned plaintext and an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Open error %v matches no sentinel", err)
			}
			if !errors.Is(err, ErrMalformed) && !kr.NeedsRewrap(sealed) && !strings.HasPrefix(sealed, "v1.k1.") {
				t.Fatalf("well-formed value %q: NeedsRewrap disagrees with key id", sealed)
			}
			return
		}
		// Anything that opens must rewrap to something that still opens.
		if _, err := kr.Rewrap(sealed, []byte(ad)); err != nil {
			t.Fatalf("Open succeeded but Rewrap failed: %v", err)
		}
	})
}
