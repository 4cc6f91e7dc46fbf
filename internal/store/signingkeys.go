package store

import (
	"context"
	"time"
)

// SigningKey is a key that signs access tokens. The store keeps it as it is
// given: the private half arrives already sealed (secret.Keyring.Seal, bound
// to the key ID), so the database never holds it in plaintext.
//
// A key is current while RetiredAt is zero; the newest current key signs.
// A retired key no longer signs but still verifies (and is published in the
// JWKS) until ExpiresAt, when the last token it signed has expired; after
// that it may be purged.
type SigningKey struct {
	ID         string // the JWS "kid": random and URL-safe; unique
	Algorithm  string // JWS alg: "RS256", "ES256" or "EdDSA"
	PrivateKey string // the private JWK (JSON), sealed with secret.Keyring
	PublicKey  string // the public JWK (JSON)
	CreatedAt  time.Time
	// ActivatedAt is when the key started signing (it orders keys: newest
	// first). Zero is stored as CreatedAt.
	ActivatedAt time.Time
	RetiredAt   time.Time // zero: still current
	ExpiresAt   time.Time // zero: no expiry
}

// SigningKeyStore keeps the access-token signing keys.
type SigningKeyStore interface {
	// CreateSigningKey stores k as given; a zero CreatedAt is set to now
	// and a zero ActivatedAt to CreatedAt. A key with a zero RetiredAt is
	// current next to any other current key: two nodes starting at once
	// may each create one, and both are kept (the newest signs).
	// ErrConflict when the ID exists.
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns the keys that have not expired at now
	// (ExpiresAt zero or after now), newest first: by ActivatedAt, then
	// CreatedAt, then ID, all descending.
	ListSigningKeys(ctx context.Context, now time.Time) ([]SigningKey, error)
	// RotateSigningKeys makes newKey the only current key, in one
	// transaction: every current key is retired (RetiredAt = retireAt,
	// ExpiresAt = expireOldAt) and newKey is inserted as current (a zero
	// CreatedAt is set to now and a zero ActivatedAt to retireAt; newKey's
	// RetiredAt and ExpiresAt are ignored). Concurrent rotations are serialised, so exactly one key is
	// current afterwards. ErrConflict when newKey's ID exists.
	RotateSigningKeys(ctx context.Context, newKey SigningKey, retireAt, expireOldAt time.Time) error
	// PurgeSigningKeys deletes the keys that expired before before and
	// returns how many.
	PurgeSigningKeys(ctx context.Context, before time.Time) (int64, error)
}
