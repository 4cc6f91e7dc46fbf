// Package secret holds the cryptographic helpers the rest of Gatehouse
// builds on: envelope encryption of secrets at rest under a rotatable
// keyring, a development key file, random tokens, token hashing and
// constant-time comparison.
//
// Nothing in this package logs, and no error it returns carries key
// material, plaintext or token values.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the length in bytes of a key-encryption key and of each data
// key: AES-256.
const KeySize = 32

// maxKeyIDLen is the longest key id ParseKeys accepts.
const maxKeyIDLen = 32

// kek is one key-encryption key of a Keyring.
type kek struct {
	id   string
	aead cipher.AEAD
	// derive is a subkey (HKDF of the key) from which DerivedKeys makes
	// purpose-bound keys; the raw key itself is not kept.
	derive []byte
}

// Keyring holds the key-encryption keys (KEKs) parsed from
// GATEHOUSE_ENCRYPTION_KEYS. The first key seals; every key opens, so an
// operator rotates by putting a new key first, rewrapping stored values
// (see NeedsRewrap and Rewrap), and only then removing the old key.
//
// A Keyring is immutable and safe for concurrent use. It does not keep the
// raw key bytes, only the AES-GCM instances built from them, and it formats
// itself as a redacted list of key ids under fmt and log/slog.
type Keyring struct {
	keys []kek          // keys[0] is the current key
	byID map[string]int // id -> index in keys
}

// ParseKeys parses a key list of the form
//
//	<key-id>:<base64 of 32 random bytes>[,<key-id>:<base64>...]
//
// Key ids match [A-Za-z0-9_-]{1,32}; the key may be in standard or URL-safe
// base64, with or without padding. Whitespace around the whole list and
// around each entry, id and key is ignored. Every problem found is
// reported, each naming the entry by its 1-based position; the text never
// contains key material (not even an invalid id, which might be a
// misplaced key).
func ParseKeys(s string) (*Keyring, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("secret: no encryption keys given: want <key-id>:<base64 of 32 bytes>[,...]")
	}
	entries := strings.Split(s, ",")
	kr := &Keyring{byID: make(map[string]int, len(entries))}
	var errs []error
	for i, entry := range entries {
		n := i + 1
		entry = strings.TrimSpace(entry)
		if entry == "" {
			errs = append(errs, fmt.Errorf("secret: key entry %d is empty", n))
			continue
		}
		rawID, rawKey, ok := strings.Cut(entry, ":")
		if !ok {
			errs = append(errs, fmt.Errorf("secret: key entry %d has no ':' between key id and key", n))
			continue
		}
		id := strings.TrimSpace(rawID)
		if err := checkKeyID(id); err != nil {
			errs = append(errs, fmt.Errorf("secret: key entry %d: %w", n, err))
			continue
		}
		if prev, dup := kr.byID[id]; dup {
			errs = append(errs, fmt.Errorf("secret: key entry %d: key id %q already used by entry %d", n, id, prev+1))
			continue
		}
		// Claim the id even if the key below is bad, so a later duplicate
		// is reported against this entry rather than silently accepted.
		kr.byID[id] = len(kr.keys)
		key, err := decodeKey(strings.TrimSpace(rawKey))
		if err != nil {
			errs = append(errs, fmt.Errorf("secret: key entry %d (id %q): %w", n, id, err))
			kr.keys = append(kr.keys, kek{id: id})
			continue
		}
		aead, err := newAEAD(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret: key entry %d (id %q): %w", n, id, err))
		}
		derive, derr := hkdf.Key(sha256.New, key, nil, "gatehouse/secret/derive", 32)
		clear(key)
		if derr != nil {
			errs = append(errs, fmt.Errorf("secret: key entry %d (id %q): %w", n, id, derr))
		}
		kr.keys = append(kr.keys, kek{id: id, aead: aead, derive: derive})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return kr, nil
}

// checkKeyID reports whether id is a valid key id. Its message never
// repeats the id or any of its characters.
func checkKeyID(id string) error {
	if id == "" {
		return errors.New("key id is empty")
	}
	if len(id) > maxKeyIDLen {
		return fmt.Errorf("key id is %d bytes long, at most %d allowed", len(id), maxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isKeyIDByte(id[i]) {
			return fmt.Errorf("key id has a character not in [A-Za-z0-9_-] at byte %d", i+1)
		}
	}
	return nil
}

func isKeyIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// decodeKey decodes a base64 key in any of the four common forms and checks
// its length. Its messages never contain the input.
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("key is empty")
	}
	var enc *base64.Encoding
	padded := strings.HasSuffix(s, "=")
	switch {
	case strings.ContainsAny(s, "-_") && strings.ContainsAny(s, "+/"):
		return nil, errors.New("key mixes standard (+/) and URL-safe (-_) base64 alphabets")
	case strings.ContainsAny(s, "-_"):
		enc = base64.URLEncoding
	default:
		enc = base64.StdEncoding
	}
	if !padded {
		enc = enc.WithPadding(base64.NoPadding)
	}
	key, err := enc.Strict().DecodeString(s)
	if err != nil {
		// err names only a byte offset, but build our own message so no
		// future change to encoding/base64 can leak input.
		var cie base64.CorruptInputError
		if errors.As(err, &cie) {
			return nil, fmt.Errorf("key is not valid standard or URL-safe base64 (problem at byte %d)", int64(cie)+1)
		}
		return nil, errors.New("key is not valid standard or URL-safe base64")
	}
	if len(key) != KeySize {
		clear(key)
		return nil, fmt.Errorf("key decodes to %d bytes, want %d", len(key), KeySize)
	}
	allZero := true
	for _, b := range key {
		if b != 0 {
			allZero = false
			break
		}
	}
	if allZero {
		return nil, errors.New("key is all zero bytes, want 32 random bytes")
	}
	return key, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: create AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: create GCM: %w", err)
	}
	return aead, nil
}

// CurrentKeyID returns the id of the key that Seal uses.
func (kr *Keyring) CurrentKeyID() string {
	if kr == nil || len(kr.keys) == 0 {
		return ""
	}
	return kr.keys[0].id
}

// DerivedKeys returns a 32-byte key for purpose (e.g. "mfa-code-hash")
// derived from each encryption key, the current one first. Keyed hashes
// (HMACs of one-time codes) are made with the first and checked against
// all, so they survive a key rotation as long as the old key stays listed.
func (kr *Keyring) DerivedKeys(purpose string) [][]byte {
	if kr == nil {
		return nil
	}
	out := make([][]byte, 0, len(kr.keys))
	for _, k := range kr.keys {
		dk, err := hkdf.Key(sha256.New, k.derive, nil, "gatehouse/"+purpose, 32)
		if err != nil {
			continue
		}
		out = append(out, dk)
	}
	return out
}

// RateLimitPurpose is the Pseudonym purpose of the email addresses and
// phone numbers in rate-limit keys.
const RateLimitPurpose = "rate-limit"

// Pseudonym stands for personal data (a normalized email address, a phone
// number) in the names of ephemeral state (rate-limit and lockout keys),
// so that a dump of the ephemeral store, or a MONITOR of its traffic,
// holds no address or number: an HMAC-SHA256 of value under a key derived
// for purpose from the current encryption key, its first 128 bits in
// unpadded base64url (22 characters, no braces or colons). Without the
// encryption keys, the names cannot be matched against a list of
// addresses. The same purpose and value give the same name until the
// current key changes (a rotation starts such counters afresh).
//
// A nil or empty Keyring (only in tests) gives an unkeyed SHA-256 of
// purpose and value instead.
func (kr *Keyring) Pseudonym(purpose, value string) string {
	var sum []byte
	if keys := kr.DerivedKeys(purpose); len(keys) > 0 {
		mac := hmac.New(sha256.New, keys[0])
		mac.Write([]byte(value))
		sum = mac.Sum(nil)
	} else {
		h := sha256.Sum256([]byte("gatehouse/" + purpose + "\x00" + value))
		sum = h[:]
	}
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// KeyIDs returns the ids of all keys, the current one first.
func (kr *Keyring) KeyIDs() []string {
	if kr == nil {
		return nil
	}
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.id
	}
	return ids
}

func (kr *Keyring) lookup(id string) (cipher.AEAD, bool) {
	if kr == nil {
		return nil, false
	}
	i, ok := kr.byID[id]
	if !ok {
		return nil, false
	}
	return kr.keys[i].aead, true
}

// String returns the key ids only, e.g. "secret.Keyring[current=k2 k1]".
// String, GoString and LogValue have value receivers so that a dereferenced
// Keyring is redacted too: printing its fields would show the AES key
// schedule.
func (kr Keyring) String() string {
	if len(kr.keys) == 0 {
		return "secret.Keyring[]"
	}
	return "secret.Keyring[current=" + strings.Join(kr.KeyIDs(), " ") + "]"
}

// GoString makes %#v print the same redacted form as String.
func (kr Keyring) GoString() string { return kr.String() }

// LogValue makes log/slog print the key ids only.
func (kr Keyring) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("current", kr.CurrentKeyID()),
		slog.Any("ids", kr.KeyIDs()),
	)
}

// GenerateKeyString returns a new key entry "<id>:<standard base64 of 32
// random bytes>" suitable for GATEHOUSE_ENCRYPTION_KEYS. To rotate, an
// operator prepends it to the existing list.
func GenerateKeyString(id string) (string, error) {
	if err := checkKeyID(id); err != nil {
		return "", fmt.Errorf("secret: generate key: %w", err)
	}
	key, err := RandomBytes(KeySize)
	if err != nil {
		return "", err
	}
	defer clear(key)
	return id + ":" + base64.StdEncoding.EncodeToString(key), nil
}
