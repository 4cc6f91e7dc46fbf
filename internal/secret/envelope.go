package secret

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors returned (possibly wrapped) by Open and Rewrap. Test with
// errors.Is.
var (
	// ErrMalformed means the sealed string is not in the v1 format.
	ErrMalformed = errors.New("secret: malformed sealed value")
	// ErrUnknownKey means the value was sealed under a key id that is not
	// in the keyring (for example, a retired key).
	ErrUnknownKey = errors.New("secret: sealed under an unknown key")
	// ErrDecrypt means authentication failed: the value was altered, or
	// the associated data differs from what it was sealed with.
	ErrDecrypt = errors.New("secret: decryption failed")
)

// Wire format, version 1:
//
//	v1.<kid>.<b64url(wrapNonce || GCM_KEK(dataKey))>.<b64url(nonce || GCM_dataKey(plaintext))>
//
// All base64 is URL-safe without padding, so the value is printable, needs
// no quoting in SQL, JSON or URLs, and contains exactly three dots (key ids
// cannot contain dots).
//
// Each Seal draws a fresh random 32-byte data key, which encrypts the
// plaintext with AES-256-GCM under a random nonce. The data key is then
// encrypted ("wrapped") with AES-256-GCM under the current KEK and a random
// nonce. Both layers authenticate the caller's associated data (plus a
// domain-separation label), so a value copied to another row fails to open.
// The wrapping layer also authenticates the key id. Rewrap replaces only the
// wrapped data key; the ciphertext part stays byte-for-byte the same.
//
// Random 96-bit nonces under one KEK are safe well beyond 2^32 seals per
// key as NIST advises; rotating keys resets the count.
const (
	version     = "v1"
	nonceSize   = 12
	tagSize     = 16
	wrappedSize = nonceSize + KeySize + tagSize

	wrapLabel    = "gatehouse/secret/v1/wrap"
	contentLabel = "gatehouse/secret/v1/content"
)

var b64 = base64.RawURLEncoding.Strict()

// envelope is a parsed sealed value.
type envelope struct {
	kid     string
	wrapped []byte // wrapNonce || wrapped data key || tag
	content []byte // nonce || ciphertext || tag
	ctPart  string // the encoded content part, kept verbatim for Rewrap
}

func parseEnvelope(sealed string) (envelope, error) {
	parts := strings.Split(sealed, ".")
	if len(parts) != 4 || parts[0] != version {
		return envelope{}, ErrMalformed
	}
	kid := parts[1]
	if checkKeyID(kid) != nil {
		return envelope{}, ErrMalformed
	}
	if len(parts[2]) != b64.EncodedLen(wrappedSize) {
		return envelope{}, ErrMalformed
	}
	wrapped, err := b64.DecodeString(parts[2])
	if err != nil || len(wrapped) != wrappedSize {
		return envelope{}, ErrMalformed
	}
	content, err := b64.DecodeString(parts[3])
	if err != nil || len(content) < nonceSize+tagSize {
		return envelope{}, ErrMalformed
	}
	return envelope{kid: kid, wrapped: wrapped, content: content, ctPart: parts[3]}, nil
}

// additionalData builds the AEAD associated data for one layer:
//
//	label || 0x00 || uint32be(len(kid)) || kid || ad
//
// The label separates the two layers; kid is length-prefixed, so that
// (kid, ad) pairs cannot collide, and empty for the content layer, which
// must not depend on the KEK so Rewrap can leave it untouched.
func additionalData(label, kid string, ad []byte) []byte {
	buf := make([]byte, 0, len(label)+1+4+len(kid)+len(ad))
	buf = append(buf, label...)
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(kid)))
	buf = append(buf, kid...)
	buf = append(buf, ad...)
	return buf
}

// Seal encrypts plaintext under the current key and binds it to
// associatedData, which must be given again, unchanged, to Open. Use
// something that identifies where the value lives, such as
// "totp:<user id>" or "webhook:<id>:secret". The associated data is
// authenticated, not encrypted, and is not part of the output.
func (kr *Keyring) Seal(plaintext, associatedData []byte) (string, error) {
	if kr == nil || len(kr.keys) == 0 {
		return "", errors.New("secret: seal with an empty keyring")
	}
	cur := kr.keys[0]

	dataKey, err := RandomBytes(KeySize)
	if err != nil {
		return "", err
	}
	defer clear(dataKey)
	dek, err := newAEAD(dataKey)
	if err != nil {
		return "", err
	}

	content := make([]byte, nonceSize, nonceSize+len(plaintext)+tagSize)
	if err := fillRandom(content); err != nil {
		return "", err
	}
	content = dek.Seal(content, content[:nonceSize], plaintext, additionalData(contentLabel, "", associatedData))

	wrapped, err := wrap(cur, dataKey, associatedData)
	if err != nil {
		return "", err
	}
	return join(cur.id, wrapped, b64.EncodeToString(content)), nil
}

func wrap(k kek, dataKey, associatedData []byte) ([]byte, error) {
	out := make([]byte, nonceSize, wrappedSize)
	if err := fillRandom(out); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[:nonceSize], dataKey, additionalData(wrapLabel, k.id, associatedData)), nil
}

func join(kid string, wrapped []byte, ctPart string) string {
	var sb strings.Builder
	sb.Grow(len(version) + len(kid) + b64.EncodedLen(len(wrapped)) + len(ctPart) + 3)
	sb.WriteString(version)
	sb.WriteByte('.')
	sb.WriteString(kid)
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(wrapped))
	sb.WriteByte('.')
	sb.WriteString(ctPart)
	return sb.String()
}

// unwrap returns the data key of e, authenticated against associatedData.
func (kr *Keyring) unwrap(e envelope, associatedData []byte) ([]byte, error) {
	aead, ok := kr.lookup(e.kid)
	if !ok {
		return nil, fmt.Errorf("%w: key id %q", ErrUnknownKey, e.kid)
	}
	dataKey, err := aead.Open(nil, e.wrapped[:nonceSize], e.wrapped[nonceSize:], additionalData(wrapLabel, e.kid, associatedData))
	if err != nil || len(dataKey) != KeySize {
		return nil, ErrDecrypt
	}
	return dataKey, nil
}

func openContent(dataKey []byte, e envelope, associatedData []byte) ([]byte, error) {
	dek, err := newAEAD(dataKey)
	if err != nil {
		return nil, err
	}
	pt, err := dek.Open(nil, e.content[:nonceSize], e.content[nonceSize:], additionalData(contentLabel, "", associatedData))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Open decrypts a value produced by Seal (under any key in the keyring) and
// checks it against associatedData. Errors match ErrMalformed,
// ErrUnknownKey or ErrDecrypt under errors.Is.
func (kr *Keyring) Open(sealed string, associatedData []byte) ([]byte, error) {
	e, err := parseEnvelope(sealed)
	if err != nil {
		return nil, err
	}
	dataKey, err := kr.unwrap(e, associatedData)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	return openContent(dataKey, e, associatedData)
}

// NeedsRewrap reports whether sealed is under a key other than the current
// one, and so should be passed to Rewrap before that key is retired. It
// does not authenticate the value and reports false for values that are
// not in the sealed format at all (Open reports those).
func (kr *Keyring) NeedsRewrap(sealed string) bool {
	e, err := parseEnvelope(sealed)
	if err != nil {
		return false
	}
	return e.kid != kr.CurrentKeyID()
}

// Rewrap re-encrypts the data key of sealed under the current key, leaving
// the encrypted content as it is. It fully authenticates the value first,
// so a tampered value is never laundered into a fresh-looking one. A value
// already under the current key is returned unchanged.
func (kr *Keyring) Rewrap(sealed string, associatedData []byte) (string, error) {
	e, err := parseEnvelope(sealed)
	if err != nil {
		return "", err
	}
	dataKey, err := kr.unwrap(e, associatedData)
	if err != nil {
		return "", err
	}
	defer clear(dataKey)
	pt, err := openContent(dataKey, e, associatedData)
	if err != nil {
		return "", err
	}
	clear(pt)
	cur := kr.keys[0]
	if e.kid == cur.id {
		return sealed, nil
	}
	wrapped, err := wrap(cur, dataKey, associatedData)
	if err != nil {
		return "", err
	}
	return join(cur.id, wrapped, e.ctPart), nil
}
