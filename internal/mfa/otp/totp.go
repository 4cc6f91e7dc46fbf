package otp

import (
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	potp "github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// TOTP parameters used by Code, Validate and URI.
const (
	// Digits is the length of a TOTP code.
	Digits = 6
	// Period is the length of a TOTP time step, in seconds.
	Period = 30
	// DefaultSkew is the number of steps before and after the current one
	// that Validate should accept to allow for clock drift and typing time:
	// with 1, a code is accepted for 60 to 90 seconds.
	DefaultSkew = 1
	// SecretSize is the size of a generated TOTP secret in bytes (160 bits,
	// as RFC 4226 recommends).
	SecretSize = 20
	// MinSecretSize is the shortest secret accepted, in bytes (RFC 4226
	// requires at least 128 bits).
	MinSecretSize = 16

	// maxSkew caps the window Validate searches, whatever the caller asks.
	maxSkew = 10
)

// Algorithm is the HMAC hash function of a TOTP code. The zero value is
// SHA1, the default that all authenticator apps support.
type Algorithm int

// Algorithms of RFC 6238.
const (
	SHA1 Algorithm = iota
	SHA256
	SHA512
)

// String returns the name used in otpauth URIs: "SHA1", "SHA256" or "SHA512".
func (a Algorithm) String() string {
	switch a {
	case SHA1:
		return "SHA1"
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

func (a Algorithm) pquerna() (potp.Algorithm, bool) {
	switch a {
	case SHA1:
		return potp.AlgorithmSHA1, true
	case SHA256:
		return potp.AlgorithmSHA256, true
	case SHA512:
		return potp.AlgorithmSHA512, true
	}
	return 0, false
}

// ErrInvalidSecret means a TOTP secret is not base32 or is shorter than
// MinSecretSize bytes.
var ErrInvalidSecret = errors.New("otp: invalid TOTP secret")

// secretEncoding is the form authenticator apps expect: RFC 4648 base32,
// upper case, without padding.
var secretEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// decodeSecret decodes a base32 secret. It accepts lower case, surrounding
// white space and trailing padding, which some tools add.
func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimRight(strings.ToUpper(strings.TrimSpace(s)), "=")
	key, err := secretEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrInvalidSecret
	}
	if len(key) < MinSecretSize {
		return nil, ErrInvalidSecret
	}
	return key, nil
}

// timeStep returns the TOTP time step (counter) of t.
func timeStep(t time.Time) (int64, error) {
	u := t.Unix()
	if u < 0 {
		return 0, fmt.Errorf("otp: time %v is before the Unix epoch", t)
	}
	return u / Period, nil
}

// hotpCode returns the RFC 4226 HOTP value of key at counter. It uses
// pquerna/otp; the tests check it against the RFC vectors and an
// independent implementation.
func hotpCode(key []byte, counter int64, digits int, alg Algorithm) (string, error) {
	palg, ok := alg.pquerna()
	if !ok {
		return "", fmt.Errorf("otp: unsupported algorithm %v", alg)
	}
	if digits < 6 || digits > 8 {
		return "", fmt.Errorf("otp: unsupported code length %d, want 6 to 8 digits", digits)
	}
	if counter < 0 {
		return "", fmt.Errorf("otp: negative counter %d", counter)
	}
	return hotp.GenerateCodeCustom(base32.StdEncoding.EncodeToString(key), uint64(counter), hotp.ValidateOpts{
		Digits:    potp.Digits(digits),
		Algorithm: palg,
	})
}

// Code returns the TOTP code (SHA-1, 6 digits, 30-second steps) of the
// base32 secret at time t. It is meant for tests and tools; to check a code
// a user typed, use Validate.
func Code(secret string, t time.Time) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	return CodeWith(key, t, Digits, SHA1)
}

// CodeWith returns the TOTP code of the raw secret at time t with 30-second
// steps, the given number of digits (6 to 8) and HMAC algorithm. With
// digits 8 it reproduces the test vectors of RFC 6238 Appendix B.
func CodeWith(secret []byte, t time.Time, digits int, alg Algorithm) (string, error) {
	if len(secret) < MinSecretSize {
		return "", ErrInvalidSecret
	}
	s, err := timeStep(t)
	if err != nil {
		return "", err
	}
	return hotpCode(secret, s, digits, alg)
}

// Validate reports whether code is the TOTP code (SHA-1, 6 digits,
// 30-second steps) of the base32 secret for a step within skew steps of the
// one containing now, and if so returns that step.
//
// Validate does not prevent replay: a code stays valid for its whole window.
// The caller must accept the returned step only if it is later than the last
// step accepted for this secret, and record it, in one atomic statement
// (store.MFAStore.AcceptTOTPStep). Because every step at or before the
// recorded one is then refused, an older code cannot be used after a newer
// one either.
//
// Pass DefaultSkew (1) for skew unless there is a reason not to; 0 accepts
// the current step only. A negative skew is treated as 0 and a skew above 10
// as 10. Steps before the Unix epoch are never accepted.
//
// code must be exactly 6 ASCII digits; anything else is refused before any
// cryptography. The caller may strip spaces users type. Each candidate is
// compared in constant time, and every step in the window is computed and
// compared whether or not an earlier one matched. Should the code match
// more than one step (a chance of about 2 in 10^6), the earliest is
// returned, so that a replayed code is always reported at, or before, the
// step at which it was first accepted. An invalid secret yields false.
func Validate(secret, code string, now time.Time, skew int) (step int64, ok bool) {
	if !isDigits(code, Digits) {
		return 0, false
	}
	key, err := decodeSecret(secret)
	if err != nil {
		return 0, false
	}
	cur, err := timeStep(now)
	if err != nil {
		return 0, false
	}
	skew = min(max(skew, 0), maxSkew)

	matched := int64(-1)
	for s := cur - int64(skew); s <= cur+int64(skew); s++ {
		if s < 0 {
			continue
		}
		want, err := hotpCode(key, s, Digits, SHA1)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && matched < 0 {
			matched = s
		}
	}
	if matched < 0 {
		return 0, false
	}
	return matched, true
}

// isDigits reports whether s is exactly n ASCII digits.
func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
