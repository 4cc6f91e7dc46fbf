package sqlrow

import (
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// SigningKeyColumns is the column list ScanSigningKey expects, in order.
const SigningKeyColumns = "id, algorithm, private_key, public_key, created_at, activated_at, retired_at, expires_at"

// ScanSigningKey scans one row selected with SigningKeyColumns. td scans a
// NOT NULL time column, ntd a nullable one.
func ScanSigningKey(s Scanner, td, ntd TimeDest) (store.SigningKey, error) {
	var k store.SigningKey
	err := s.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &k.PublicKey,
		td(&k.CreatedAt), td(&k.ActivatedAt), ntd(&k.RetiredAt), ntd(&k.ExpiresAt))
	if err != nil {
		return store.SigningKey{}, err
	}
	k.CreatedAt, k.ActivatedAt = k.CreatedAt.UTC(), k.ActivatedAt.UTC()
	return k, nil
}

// signingAlgorithms are the JWS algorithms a signing key may have; the
// migrations hold the same list in a CHECK constraint.
var signingAlgorithms = map[string]bool{"RS256": true, "ES256": true, "EdDSA": true}

// PrepareSigningKey validates k and fills in the defaults of
// CreateSigningKey: CreatedAt = now, ActivatedAt = CreatedAt. Times come
// back in UTC to the microsecond.
func PrepareSigningKey(k store.SigningKey, now time.Time) (store.SigningKey, error) {
	switch {
	case k.ID == "":
		return store.SigningKey{}, errors.New("signing key: id is required")
	case !signingAlgorithms[k.Algorithm]:
		return store.SigningKey{}, fmt.Errorf("signing key: unsupported algorithm %q", k.Algorithm)
	case k.PrivateKey == "" || k.PublicKey == "":
		return store.SigningKey{}, errors.New("signing key: private and public key are required")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now
	}
	if k.ActivatedAt.IsZero() {
		k.ActivatedAt = k.CreatedAt
	}
	k.CreatedAt, k.ActivatedAt = Micro(k.CreatedAt), Micro(k.ActivatedAt)
	if !k.RetiredAt.IsZero() {
		k.RetiredAt = Micro(k.RetiredAt)
	}
	if !k.ExpiresAt.IsZero() {
		k.ExpiresAt = Micro(k.ExpiresAt)
	}
	return k, nil
}

// PrepareRotation prepares the new key of RotateSigningKeys: it is current
// (RetiredAt and ExpiresAt cleared) and, unless set, activated at retireAt,
// the moment the keys it replaces retire. retireAt is required.
func PrepareRotation(newKey store.SigningKey, retireAt, now time.Time) (store.SigningKey, error) {
	if retireAt.IsZero() {
		return store.SigningKey{}, errors.New("signing key rotation: retire time is required")
	}
	newKey.RetiredAt, newKey.ExpiresAt = time.Time{}, time.Time{}
	if newKey.ActivatedAt.IsZero() {
		newKey.ActivatedAt = retireAt
	}
	return PrepareSigningKey(newKey, now)
}
