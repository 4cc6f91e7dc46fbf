package otp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"github.com/gatehouse/gatehouse/internal/secret"
)

// MinHasherKeySize is the shortest key NewHasher accepts, in bytes.
const MinHasherKeySize = 32

// Hasher computes keyed hashes of one-time codes for storage.
//
// A 6-digit code has only 10^6 values: stored as a plain SHA-256, it is
// recovered by trying them all in milliseconds. Under HMAC-SHA-256 with a
// secret key kept out of the database, a leaked table reveals nothing
// without the key. Hashes are deterministic, so a code can be looked up by
// its hash. Backup codes (over 50 bits) use the same Hasher.
//
// The key should be derived from the encryption keyring for this use alone.
// Changing it invalidates every stored hash: pending email and SMS codes
// just expire, but backup codes would have to be issued again.
type Hasher struct {
	key []byte
}

// NewHasher returns a Hasher with a copy of key, which must be at least
// MinHasherKeySize (32) bytes.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < MinHasherKeySize {
		return nil, fmt.Errorf("otp: hasher key of %d bytes, want at least %d", len(key), MinHasherKeySize)
	}
	return &Hasher{key: append([]byte(nil), key...)}, nil
}

// Hash returns the lower-case hex HMAC-SHA256 under the Hasher's key of
// purpose + "\x00" + code.
//
// purpose separates uses, so that a hash made for one cannot be replayed as
// another: for example "email", "sms" or "backup". Adding the user id, as in
// "backup:" + userID, also binds a hash to its owner. purpose must not
// contain a NUL byte, which would make the encoding ambiguous; Hash panics
// if it does, or if the Hasher was not made by NewHasher. Pass codes in
// canonical form (NormalizeBackupCode for backup codes).
func (h *Hasher) Hash(purpose, code string) string {
	if h == nil || len(h.key) < MinHasherKeySize {
		panic("otp: Hasher used without NewHasher")
	}
	if strings.IndexByte(purpose, 0) >= 0 {
		panic("otp: Hasher purpose contains a NUL byte")
	}
	mac := hmac.New(sha256.New, h.key)
	mac.Write([]byte(purpose))
	mac.Write([]byte{0})
	mac.Write([]byte(code))
	return hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether hash is the Hash of code for purpose, comparing
// in constant time.
func (h *Hasher) Verify(purpose, code, hash string) bool {
	return Equal(h.Hash(purpose, code), hash)
}

// Equal reports whether the hashes a and b are equal, in time that depends
// on neither their contents nor (beyond 64-byte blocks) their lengths. See
// secret.Equal.
func Equal(a, b string) bool {
	return secret.Equal(a, b)
}

// String keeps the key out of fmt output; %v on the struct would print it.
func (h Hasher) String() string { return "otp.Hasher{key:REDACTED}" }

// GoString makes %#v print the same redacted form as String.
func (h Hasher) GoString() string { return h.String() }

// LogValue keeps the key out of log/slog output.
func (h Hasher) LogValue() slog.Value { return slog.StringValue(h.String()) }
