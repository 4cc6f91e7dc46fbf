package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// algorithms are the JWS algorithms Gatehouse signs with: the allowlist.
var algorithms = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256,
	"ES256": jose.ES256,
	"EdDSA": jose.EdDSA,
}

// rsaBits is the size of the RSA keys Gatehouse generates, and the least
// it accepts.
const rsaBits = 2048

// tokenType is the "typ" header of an access token (RFC 9068).
const tokenType = "at+jwt"

// keyIDBytes is the entropy of a kid.
const keyIDBytes = 16

// privateKeyAD is the associated data that binds a sealed private key to
// its kid, so a sealed key copied to another row does not open.
func privateKeyAD(kid string) []byte { return []byte("token/signing-key/" + kid) }

// generateKey returns a new private key for alg.
func generateKey(alg jose.SignatureAlgorithm) (crypto.Signer, error) {
	switch alg {
	case jose.RS256:
		return rsa.GenerateKey(rand.Reader, rsaBits)
	case jose.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("token: unsupported algorithm %q", alg)
}

// keyMatches reports whether pub is a key of the kind alg signs with.
func keyMatches(alg jose.SignatureAlgorithm, pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return alg == jose.RS256 && k.N != nil && k.N.BitLen() >= rsaBits
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == jose.EdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}

// newSigningKey generates a key pair for alg and returns it as the store
// keeps it: the private JWK sealed under the keyring, bound to the kid.
func newSigningKey(alg string, keyring *secret.Keyring, now time.Time) (store.SigningKey, error) {
	jalg, ok := algorithms[alg]
	if !ok {
		return store.SigningKey{}, fmt.Errorf("token: unsupported algorithm %q", alg)
	}
	kid, err := secret.NewToken(keyIDBytes)
	if err != nil {
		return store.SigningKey{}, err
	}
	priv, err := generateKey(jalg)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("token: generate %s key: %w", alg, err)
	}
	jwk := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg, Use: "sig"}
	privJSON, err := jwk.MarshalJSON()
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("token: encode private key: %w", err)
	}
	defer clear(privJSON)
	sealed, err := keyring.Seal(privJSON, privateKeyAD(kid))
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("token: seal private key: %w", err)
	}
	pubJSON, err := jwk.Public().MarshalJSON()
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("token: encode public key: %w", err)
	}
	return store.SigningKey{
		ID:          kid,
		Algorithm:   alg,
		PrivateKey:  sealed,
		PublicKey:   string(pubJSON),
		CreatedAt:   now,
		ActivatedAt: now,
	}, nil
}

// cachedKey is one verification key in memory.
type cachedKey struct {
	kid       string
	alg       jose.SignatureAlgorithm
	public    crypto.PublicKey
	jwk       jose.JSONWebKey // the public JWK as published
	current   bool
	expiresAt time.Time // zero: none
}

// liveAt reports whether the key may still be used at now.
func (k *cachedKey) liveAt(now time.Time) bool {
	return k.expiresAt.IsZero() || now.Before(k.expiresAt)
}

// keySigner signs with the current key.
type keySigner struct {
	kid    string
	key    crypto.Signer // the private key signer signs with
	signer jose.Signer
}

// keySet is an immutable snapshot of the keys, swapped atomically on each
// reload.
type keySet struct {
	byKID  map[string]*cachedKey
	list   []*cachedKey // newest first
	algs   []jose.SignatureAlgorithm
	signer *keySigner // nil when no current key could be opened
}

// parsePublicKey checks a stored key's public JWK against its row.
func parsePublicKey(k store.SigningKey) (*cachedKey, error) {
	alg, ok := algorithms[k.Algorithm]
	if !ok {
		return nil, fmt.Errorf("unsupported algorithm %q", k.Algorithm)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal([]byte(k.PublicKey), &jwk); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	switch {
	case !jwk.IsPublic() || !jwk.Valid():
		return nil, errors.New("public key is not a valid public JWK")
	case jwk.KeyID != k.ID || jwk.Algorithm != k.Algorithm:
		return nil, errors.New("public key's kid or alg differs from the row")
	case !keyMatches(alg, jwk.Key):
		return nil, fmt.Errorf("public key does not fit %s", alg)
	}
	jwk.Use = "sig"
	return &cachedKey{
		kid:       k.ID,
		alg:       alg,
		public:    jwk.Key,
		jwk:       jwk,
		current:   k.RetiredAt.IsZero(),
		expiresAt: k.ExpiresAt,
	}, nil
}

// openSigner decrypts a stored key's private half, checks that it belongs
// to pub, and returns a signer that sets typ and kid.
func openSigner(k store.SigningKey, pub *cachedKey, keyring *secret.Keyring) (*keySigner, error) {
	plain, err := keyring.Open(k.PrivateKey, privateKeyAD(k.ID))
	if err != nil {
		return nil, fmt.Errorf("open private key: %w", err)
	}
	defer clear(plain)
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(plain, &jwk); err != nil {
		return nil, errors.New("decode private key: not a JWK")
	}
	if jwk.IsPublic() || !jwk.Valid() || jwk.KeyID != k.ID {
		return nil, errors.New("private key is not a valid private JWK for this kid")
	}
	if rk, ok := jwk.Key.(*rsa.PrivateKey); ok {
		// go-jose fills in the CRT values but not the precomputation the
		// standard library signs with; without it every signature redoes
		// (and re-validates) it, about a tenth of a signature's cost.
		if err := rk.Validate(); err != nil {
			return nil, fmt.Errorf("private key: %w", err)
		}
		rk.Precompute()
	}
	signer, ok := jwk.Key.(crypto.Signer)
	if !ok {
		return nil, errors.New("private key cannot sign")
	}
	if eq, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(pub.public) {
		return nil, errors.New("private key does not match the public key")
	}
	s, err := jose.NewSigner(
		jose.SigningKey{Algorithm: pub.alg, Key: jose.JSONWebKey{Key: jwk.Key, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType(tokenType),
	)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return &keySigner{kid: k.ID, key: signer, signer: s}, nil
}
