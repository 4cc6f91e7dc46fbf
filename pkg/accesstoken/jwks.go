package accesstoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSBytes bounds the JWKS document read from the server.
const maxJWKSBytes = 1 << 20

// minRSABits is the smallest RSA modulus a key may have.
const minRSABits = 2048

// verificationKey is one usable key of a JWKS.
type verificationKey struct {
	alg    jose.SignatureAlgorithm
	public crypto.PublicKey
}

// keyMatches reports whether pub is a key of the kind alg signs with: an
// RSA key of at least 2048 bits for RS256, a P-256 key for ES256, an
// Ed25519 key for EdDSA. Other algorithms never match.
func keyMatches(alg jose.SignatureAlgorithm, pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return alg == jose.RS256 && k.N != nil && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == jose.EdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}

// parseJWKS returns the usable keys of a JWK Set by kid. A key is usable
// when it has a kid, an alg in allowed that matches its key type, and a
// "use" of "sig" or none. Other keys (encryption keys, symmetric keys, key
// types this package does not know) are skipped, so one odd key does not
// make the whole set unusable; a later duplicate of a kid is skipped too.
func parseJWKS(body []byte, allowed map[jose.SignatureAlgorithm]bool) (map[string]verificationKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New("decode JWKS: no \"keys\" member")
	}
	keys := make(map[string]verificationKey, len(set.Keys))
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue
		}
		alg := jose.SignatureAlgorithm(jwk.Algorithm)
		if jwk.KeyID == "" || !allowed[alg] || (jwk.Use != "" && jwk.Use != "sig") {
			continue
		}
		if _, dup := keys[jwk.KeyID]; dup {
			continue
		}
		pub := jwk.Public() // a JWKS should hold public keys only; never use more
		if !pub.Valid() || !keyMatches(alg, pub.Key) {
			continue
		}
		keys[jwk.KeyID] = verificationKey{alg: alg, public: pub.Key}
	}
	return keys, nil
}

// fetchJWKS downloads and parses the JWKS at url.
func fetchJWKS(ctx context.Context, client *http.Client, url string, allowed map[jose.SignatureAlgorithm]bool) (map[string]verificationKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBytes))
		return nil, fmt.Errorf("fetch JWKS: %s answered %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("fetch JWKS: document larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body, allowed)
}
