// Package apikey implements Gatehouse's API keys and service accounts:
// the key format (a secret scanners recognise, with a checksum that
// refuses typos before any lookup), personal keys and service accounts'
// keys (creation, rotation with overlap, revocation, usage), the
// authenticator that turns an API key into a Principal through a per-node
// cache invalidated on every node, and the leak report endpoint that
// secret scanning services call.
package apikey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"math/big"
)

// Kinds of key, as their token prefix names them.
const (
	KindPersonal = "pk" // gh_pk_…: a user's own key
	KindService  = "sk" // gh_sk_…: a service account's key
)

// Shape of a token: "gh_" + kind + "_" + SecretLen base62 characters
// encoding 32 random bytes + ChecksumLen base62 characters of CRC32-IEEE.
const (
	SecretLen   = 43
	ChecksumLen = 6
	// TokenLen is the length of every token.
	TokenLen = len("gh_pk_") + SecretLen + ChecksumLen
	// PrefixLen is how many leading characters Prefix keeps for display.
	PrefixLen = 12
)

// TokenPattern matches Gatehouse API keys anywhere in a text, for secret
// scanners (GitHub custom patterns, gitleaks, trufflehog): "gh_pk_" or
// "gh_sk_" followed by 49 base62 characters, between word boundaries. A
// match is confirmed offline by its checksum (Parse).
const TokenPattern = `\bgh_(?:pk|sk)_[0-9A-Za-z]{49}\b`

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// ErrMalformed is a string that is not an API key of the right shape or
// whose checksum is wrong.
var ErrMalformed = errors.New("apikey: malformed API key")

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Generate returns a new token of kind (KindPersonal or KindService).
func Generate(kind string) (string, error) {
	if kind != KindPersonal && kind != KindService {
		return "", errors.New("apikey: unknown kind " + kind)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return build(kind, b), nil
}

// build makes the token of kind with secret b.
func build(kind string, b [32]byte) string {
	body := "gh_" + kind + "_" + base62(new(big.Int).SetBytes(b[:]), SecretLen)
	return body + checksum(body)
}

// checksum is the CRC32-IEEE of s as ChecksumLen base62 digits.
func checksum(s string) string {
	var out [ChecksumLen]byte
	checksumInto(&out, s)
	return string(out[:])
}

func checksumInto(out *[ChecksumLen]byte, s string) {
	n := crc32.ChecksumIEEE([]byte(s))
	for i := ChecksumLen - 1; i >= 0; i-- {
		out[i] = alphabet[n%62]
		n /= 62
	}
}

// base62 writes n in base 62, most significant digit first, zero-padded
// to width.
func base62(n *big.Int, width int) string {
	out := make([]byte, width)
	for i := range out {
		out[i] = '0'
	}
	var m big.Int
	base := big.NewInt(62)
	for i := width - 1; i >= 0 && n.Sign() > 0; i-- {
		n.DivMod(n, base, &m)
		out[i] = alphabet[m.Int64()]
	}
	return string(out)
}

// Parse checks token's shape and checksum and returns its kind
// (KindPersonal or KindService); ErrMalformed otherwise. It touches no
// storage.
func Parse(token string) (string, error) {
	if len(token) != TokenLen || !LooksLike(token) {
		return "", ErrMalformed
	}
	for i := 6; i < TokenLen; i++ {
		if !isBase62(token[i]) {
			return "", ErrMalformed
		}
	}
	body := token[:len(token)-ChecksumLen]
	var sum [ChecksumLen]byte
	checksumInto(&sum, body)
	if string(sum[:]) != token[len(body):] {
		return "", ErrMalformed
	}
	return token[3:5], nil
}

// LooksLike reports whether token has an API key's prefix (gh_pk_ or
// gh_sk_), valid or not: such a credential is the API key
// authenticator's to accept or refuse.
func LooksLike(token string) bool {
	return len(token) >= 6 && token[:3] == "gh_" && (token[3:6] == "pk_" || token[3:6] == "sk_")
}

// Prefix returns the first PrefixLen characters of token, kept for
// display ("gh_pk_3Fz9Qa").
func Prefix(token string) string {
	if len(token) < PrefixLen {
		return token
	}
	return token[:PrefixLen]
}

// Hashes returns the HMAC-SHA256 of token under each key (from
// secret.Keyring.DerivedKeys(HashPurpose)), the current key first: the
// first is stored, all are looked up.
func Hashes(keys [][]byte, token string) [][]byte {
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(token))
		out = append(out, mac.Sum(nil))
	}
	return out
}

// HashPurpose is the purpose of the derived keys that hash API keys.
const HashPurpose = "api-key"
