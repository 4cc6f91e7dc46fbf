package token

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// SetIntervals changes the intervals New fixes; call it before Start.
func (m *Manager) SetIntervals(unknownKeyReload, revokeRefresh, resubscribe time.Duration) {
	m.unknownKeyReloadEvery = unknownKeyReload
	m.revokeRefreshEvery = revokeRefresh
	m.resubscribeEvery = resubscribe
}

// PrivateKey opens the stored private key kid, so tests can sign tokens by
// hand (with a missing kid, a wrong typ …).
func (m *Manager) PrivateKey(ctx context.Context, kid string) (crypto.Signer, error) {
	rows, err := m.store.ListSigningKeys(ctx, m.now())
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.ID != kid {
			continue
		}
		plain, err := m.keyring.Open(r.PrivateKey, privateKeyAD(kid))
		if err != nil {
			return nil, err
		}
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(plain, &jwk); err != nil {
			return nil, err
		}
		return jwk.Key.(crypto.Signer), nil
	}
	return nil, fmt.Errorf("no key %s", kid)
}

// SigningKeyID returns the kid this node signs with ("" if none).
func (m *Manager) SigningKeyID() string {
	if ks := m.keys.Load(); ks != nil && ks.signer != nil {
		return ks.signer.kid
	}
	return ""
}

// CurrentSigningKey returns the private key this node signs with.
func (m *Manager) CurrentSigningKey() crypto.Signer {
	if ks := m.keys.Load(); ks != nil && ks.signer != nil {
		return ks.signer.key
	}
	return nil
}

// Kv keys of the deny list, for tests that tamper with it.
const (
	DenyEpochKey     = denyEpochKey
	RebuildingPrefix = rebuildingPrefix
)
