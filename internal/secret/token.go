package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// MinTokenBytes is the least entropy NewToken accepts: 128 bits.
const MinTokenBytes = 16

// RandomBytes returns n bytes from crypto/rand.
func RandomBytes(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("secret: negative random byte count %d", n)
	}
	b := make([]byte, n)
	if err := fillRandom(b); err != nil {
		return nil, err
	}
	return b, nil
}

func fillRandom(b []byte) error {
	// Since Go 1.24 crypto/rand.Read never fails (it crashes the program
	// instead), but keep the check in case that changes.
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("secret: read random bytes: %w", err)
	}
	return nil
}

// NewToken returns nbytes random bytes encoded as URL-safe base64 without
// padding, for session ids, one-time links, API keys and the like. It
// refuses fewer than MinTokenBytes (16) bytes.
func NewToken(nbytes int) (string, error) {
	if nbytes < MinTokenBytes {
		return "", fmt.Errorf("secret: token of %d bytes is too short, want at least %d", nbytes, MinTokenBytes)
	}
	b, err := RandomBytes(nbytes)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns the lower-case hex SHA-256 of token. Store this instead
// of the token itself for high-entropy tokens (NewToken output), where a
// fast unsalted hash is enough: look the row up by hash, so the database
// never holds a usable token. Do not use it for passwords or short codes.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Equal reports whether a and b are equal, in time that does not depend on
// their contents, and does not return early when their lengths differ.
//
// subtle.ConstantTimeCompare returns at once when the lengths differ, which
// lets an attacker probe the length of the secret. Equal instead compares
// the SHA-256 digests of both inputs, which always have the same length, in
// constant time. Hashing takes time proportional to the input length in
// 64-byte blocks, so at most the secret's length rounded to 64 bytes could
// show, and for the fixed-length secrets this is used on (tokens, codes,
// digests) that is public anyway. SHA-256 collisions are not a practical
// concern.
func Equal(a, b string) bool {
	ha := sha256.Sum256([]byte(a))
	hb := sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// EqualBytes is Equal for byte slices.
func EqualBytes(a, b []byte) bool {
	ha := sha256.Sum256(a)
	hb := sha256.Sum256(b)
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
