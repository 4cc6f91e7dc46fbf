package otp

import (
	"crypto/rand"
	"fmt"
	"io"
)

// randomString returns n symbols drawn uniformly and independently from
// alphabet (at most 256 symbols), reading random bytes from r.
//
// It uses rejection sampling: a byte b is used only if it is below
// limit = 256 - 256%len(alphabet), the largest multiple of len(alphabet)
// that fits in a byte, and then maps to alphabet[b%len(alphabet)]. Each
// symbol thus has exactly limit/len(alphabet) accepted byte values, so all
// are equally likely; a plain b%len(alphabet) over all 256 values would
// favour the first 256%len(alphabet) symbols. Rejected bytes are discarded
// and more are read, which happens with probability (256-limit)/256 per
// byte: 6/256 for digits, 8/256 for the backup-code alphabet.
func randomString(r io.Reader, alphabet string, n int) (string, error) {
	size := len(alphabet)
	if size < 2 || size > 256 {
		return "", fmt.Errorf("otp: alphabet of %d symbols", size)
	}
	limit := 256 - 256%size
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+4)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("otp: read random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%size])
			}
		}
		clear(buf)
	}
	return string(out), nil
}

// Numeric code lengths accepted by NumericCode.
const (
	MinNumericDigits = 6
	MaxNumericDigits = 10
)

// NumericCode returns a code of the given number of decimal digits (6 to
// 10), each drawn uniformly from crypto/rand without modulo bias, so that
// all 10^digits codes are equally likely. Leading zeros are kept. It is
// meant for codes sent by email or SMS; store them with Hasher.
func NumericCode(digits int) (string, error) {
	if digits < MinNumericDigits || digits > MaxNumericDigits {
		return "", fmt.Errorf("otp: numeric code of %d digits, want %d to %d", digits, MinNumericDigits, MaxNumericDigits)
	}
	return randomString(rand.Reader, "0123456789", digits)
}
