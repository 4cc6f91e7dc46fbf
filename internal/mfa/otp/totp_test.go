package otp

import (
	"encoding/base32"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestCodeWithRFC6238(t *testing.T) {
	for _, v := range rfc6238Vectors {
		for _, tc := range []struct {
			alg  Algorithm
			want string
		}{{SHA1, v.sha1}, {SHA256, v.sha256}, {SHA512, v.sha512}} {
			t.Run(fmt.Sprintf("%v/%d", tc.alg, v.unix), func(t *testing.T) {
				got, err := CodeWith(rfc6238Seeds[tc.alg], time.Unix(v.unix, 0).UTC(), 8, tc.alg)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("CodeWith = %s, want %s", got, tc.want)
				}
			})
		}
	}
}

func TestCodeWithRFC4226(t *testing.T) {
	// With 30-second steps, time 30·i is HOTP counter i.
	for i, want := range rfc4226Vectors {
		got, err := CodeWith(rfc6238Seeds[SHA1], time.Unix(int64(30*i), 0), 6, SHA1)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("counter %d: code %s, want %s", i, got, want)
		}
	}
	// Code is CodeWith with the defaults, from base32.
	b32 := base32.StdEncoding.EncodeToString(rfc6238Seeds[SHA1])
	for i, want := range rfc4226Vectors {
		got, err := Code(b32, time.Unix(int64(30*i+29), 0))
		if err != nil || got != want {
			t.Errorf("Code(counter %d) = %q, %v; want %s", i, got, err, want)
		}
	}
}

func TestCodeErrors(t *testing.T) {
	seed := rfc6238Seeds[SHA1]
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name   string
		secret []byte
		t      time.Time
		digits int
		alg    Algorithm
	}{
		{"short secret", seed[:MinSecretSize-1], now, 6, SHA1},
		{"5 digits", seed, now, 5, SHA1},
		{"9 digits", seed, now, 9, SHA1},
		{"unknown algorithm", seed, now, 6, Algorithm(7)},
		{"before epoch", seed, time.Unix(-1, 0), 6, SHA1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := CodeWith(tt.secret, tt.t, tt.digits, tt.alg); err == nil {
				t.Errorf("CodeWith = %q, want an error", c)
			}
		})
	}
	for _, s := range []string{"", "not base32!", "AAAA", strings.Repeat("A", 25)} {
		if _, err := Code(s, now); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("Code(%q) error = %v, want ErrInvalidSecret", s, err)
		}
	}
}

func TestSecretDecodingIsLenient(t *testing.T) {
	s, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	want, err := Code(s, now)
	if err != nil {
		t.Fatal(err)
	}
	padded := base32.StdEncoding.EncodeToString(mustDecodeB32(t, s))
	for _, variant := range []string{strings.ToLower(s), " " + s + "\n", padded} {
		if got, err := Code(variant, now); err != nil || got != want {
			t.Errorf("Code(%q) = %q, %v; want %s", variant, got, err, want)
		}
	}
}

func mustDecodeB32(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenerateSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s, err := GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 32 || strings.ContainsAny(s, "=abcdefghijklmnopqrstuvwxyz") {
			t.Fatalf("secret %q: want 32 upper-case base32 characters without padding", s)
		}
		if n := len(mustDecodeB32(t, s)); n != SecretSize {
			t.Fatalf("secret decodes to %d bytes, want %d", n, SecretSize)
		}
		if seen[s] {
			t.Fatalf("secret %q generated twice", s)
		}
		seen[s] = true
	}
}

func TestValidateWindow(t *testing.T) {
	secret, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	// Middle of step 56666666.
	now := time.Unix(56666666*30+15, 0)
	cur := now.Unix() / 30

	for offset := int64(-3); offset <= 3; offset++ {
		t.Run(fmt.Sprintf("offset %+d", offset), func(t *testing.T) {
			code, err := Code(secret, time.Unix((cur+offset)*30, 0))
			if err != nil {
				t.Fatal(err)
			}
			// Skip offsets whose code collides with one in the window.
			for o := int64(-1); o <= 1 && (offset < -1 || offset > 1); o++ {
				if c, _ := Code(secret, time.Unix((cur+o)*30, 0)); c == code {
					t.Skip("code collides with one inside the window")
				}
			}
			step, ok := Validate(secret, code, now, DefaultSkew)
			wantOK := offset >= -1 && offset <= 1
			if ok != wantOK {
				t.Fatalf("Validate ok = %v, want %v", ok, wantOK)
			}
			if ok && step != cur+offset {
				t.Errorf("Validate step = %d, want %d", step, cur+offset)
			}
			if !ok && step != 0 {
				t.Errorf("refused code returned step %d", step)
			}
		})
	}
}

func TestValidateSkew(t *testing.T) {
	secret := base32.StdEncoding.EncodeToString(rfc6238Seeds[SHA1])
	now := time.Unix(1_700_000_015, 0)
	cur := now.Unix() / 30
	codeAt := func(step int64) string {
		c, err := Code(secret, time.Unix(step*30, 0))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	if _, ok := Validate(secret, codeAt(cur), now, 0); !ok {
		t.Error("skew 0 refused the current code")
	}
	if _, ok := Validate(secret, codeAt(cur-1), now, 0); ok {
		t.Error("skew 0 accepted the previous code")
	}
	if _, ok := Validate(secret, codeAt(cur-1), now, -5); ok {
		t.Error("negative skew was not treated as 0")
	}
	if s, ok := Validate(secret, codeAt(cur+2), now, 2); !ok || s != cur+2 {
		t.Errorf("skew 2, code of step +2: step %d ok %v", s, ok)
	}
	if _, ok := Validate(secret, codeAt(cur-maxSkew-1), now, 1000); ok {
		t.Error("skew was not capped at maxSkew")
	}
	if s, ok := Validate(secret, codeAt(cur-maxSkew), now, 1000); !ok || s != cur-maxSkew {
		t.Errorf("capped skew: step %d ok %v", s, ok)
	}
	// Near the epoch the window is cut at step 0.
	if s, ok := Validate(secret, rfc4226Vectors[0], time.Unix(10, 0), 1); !ok || s != 0 {
		t.Errorf("step 0: step %d ok %v", s, ok)
	}
	if _, ok := Validate(secret, rfc4226Vectors[0], time.Unix(-10, 0), 1); ok {
		t.Error("time before the epoch accepted")
	}
}

// When a code matches several steps of the window, the earliest is
// reported, so a replayed code cannot pass as a later step.
func TestValidateReportsEarliestMatch(t *testing.T) {
	key := rfc6238Seeds[SHA1]
	secret := base32.StdEncoding.EncodeToString(key)
	// With the RFC seed, counters 153567 and 153569 share a code (found by
	// searching with refHOTP; such pairs occur about once per 10^6 steps).
	const s0, code = 153567, "468457"
	for _, c := range []uint64{s0, s0 + 2} {
		if got := refHOTP(key, c, 6, refHash[SHA1]); got != code {
			t.Fatalf("reference code at counter %d = %s, want %s", c, got, code)
		}
	}
	if refHOTP(key, s0+1, 6, refHash[SHA1]) == code {
		t.Fatal("counter s0+1 unexpectedly shares the code")
	}
	step, ok := Validate(secret, code, time.Unix((s0+1)*30, 0), 1)
	if !ok || step != s0 {
		t.Errorf("Validate = %d, %v; want the earliest step %d", step, ok, s0)
	}
	// Once s0 has been accepted and s0+2 is the only match left in the
	// window, s0+2 is reported.
	step, ok = Validate(secret, code, time.Unix((s0+3)*30, 0), 1)
	if !ok || step != s0+2 {
		t.Errorf("Validate = %d, %v; want %d", step, ok, s0+2)
	}
}

func TestValidateRejectsMalformedInput(t *testing.T) {
	secret := base32.StdEncoding.EncodeToString(rfc6238Seeds[SHA1])
	now := time.Unix(1_700_000_000, 0)
	good, err := Code(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := Validate(secret, good, now, 1); !ok {
		t.Fatal("valid code refused")
	}
	for _, code := range []string{
		"", "12345", "1234567", good + " ", " " + good, good[:3] + " " + good[3:],
		"12345a", "-12345", "+12345", "１２３４５６", "12345\x00", "0x1234",
	} {
		if _, ok := Validate(secret, code, now, 1); ok {
			t.Errorf("Validate accepted %q", code)
		}
	}
	for _, s := range []string{"", "!!!!", "AAAAAAAA"} {
		if _, ok := Validate(s, good, now, 1); ok {
			t.Errorf("Validate accepted invalid secret %q", s)
		}
	}
}

// A code computed by an independent implementation of RFC 4226/6238 is
// accepted, and at the right step, for many random secrets and times.
func TestValidateAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		secret, err := GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		at := time.Unix(r.Int64N(4_000_000_000), 0)
		code := refTOTP(t, secret, at)
		got, err := Code(secret, at)
		if err != nil || got != code {
			t.Fatalf("Code = %q, %v; reference %s", got, err, code)
		}
		step, ok := Validate(secret, code, at, DefaultSkew)
		if !ok || step != at.Unix()/30 {
			t.Fatalf("Validate(reference code) = %d, %v; want %d, true", step, ok, at.Unix()/30)
		}
	}
	// And for 8-digit SHA-256/512 codes through CodeWith.
	for range 50 {
		for _, alg := range []Algorithm{SHA1, SHA256, SHA512} {
			key := make([]byte, 16+r.IntN(64))
			for i := range key {
				key[i] = byte(r.Uint32())
			}
			at := time.Unix(r.Int64N(4_000_000_000), 0)
			want := refHOTP(key, uint64(at.Unix()/30), 8, refHash[alg])
			if got, err := CodeWith(key, at, 8, alg); err != nil || got != want {
				t.Fatalf("CodeWith %v = %q, %v; reference %s", alg, got, err, want)
			}
		}
	}
}

func TestAlgorithmString(t *testing.T) {
	for alg, want := range map[Algorithm]string{SHA1: "SHA1", SHA256: "SHA256", SHA512: "SHA512", 9: "Algorithm(9)"} {
		if got := alg.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func FuzzValidate(f *testing.F) {
	secret := base32.StdEncoding.EncodeToString(rfc6238Seeds[SHA1])
	for _, s := range []string{"287082", "", "12345", "1234567", "abcdef", "２８７０８２"} {
		f.Add(s)
	}
	now := time.Unix(45, 0) // step 1
	f.Fuzz(func(t *testing.T, code string) {
		step, ok := Validate(secret, code, now, 1)
		if !ok {
			return
		}
		if !isDigits(code, 6) || step < 0 || step > 2 {
			t.Fatalf("Validate(%q) = %d, true", code, step)
		}
		if want := refHOTP(rfc6238Seeds[SHA1], uint64(step), 6, refHash[SHA1]); want != code {
			t.Fatalf("Validate(%q) matched step %d whose code is %s", code, step, want)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	secret, err := GenerateSecret()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	code, err := Code(secret, now)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		Validate(secret, code, now, DefaultSkew)
	}
}
