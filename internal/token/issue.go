package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/secret"
)

// jtiBytes is the entropy of a token ID.
const jtiBytes = 16

// AccessClaims are what the caller decides about a new access token; the
// Manager adds iss, iat, nbf, exp and jti.
type AccessClaims struct {
	Subject   string   // required: the user ID (or the client ID without a user)
	Audience  []string // default: Config.DefaultAudience
	ClientID  string   // required
	SessionID string   // empty for tokens without a login session
	AuthTime  time.Time
	AMR       []string
	Scope     string // space-separated
	// Extra claims, which may not reuse a registered name (iss, sub, aud,
	// client_id, exp, iat, nbf, jti, sid, auth_time, amr, scope).
	Extra map[string]any
}

// Issue signs an access token with the current key and returns it with
// its expiry (now + AccessTTL, to the second). The header carries
// typ "at+jwt" and the key's kid.
func (m *Manager) Issue(ctx context.Context, ac AccessClaims) (string, time.Time, error) {
	if ac.Subject == "" || ac.ClientID == "" {
		return "", time.Time{}, errors.New("token: subject and client ID are required")
	}
	ks := m.keys.Load()
	if ks == nil || ks.signer == nil {
		return "", time.Time{}, ErrNoSigningKey
	}
	jti, err := secret.NewToken(jtiBytes)
	if err != nil {
		return "", time.Time{}, err
	}
	aud := ac.Audience
	if len(aud) == 0 {
		aud = []string{m.cfg.DefaultAudience}
	}
	iat := m.now().Truncate(time.Second)
	exp := iat.Add(m.cfg.AccessTTL)
	payload, err := json.Marshal(Claims{
		Issuer:    m.cfg.Issuer,
		Subject:   ac.Subject,
		Audience:  aud,
		ClientID:  ac.ClientID,
		ExpiresAt: exp,
		IssuedAt:  iat,
		NotBefore: iat,
		ID:        jti,
		SessionID: ac.SessionID,
		AuthTime:  ac.AuthTime,
		AMR:       ac.AMR,
		Scope:     ac.Scope,
		Extra:     ac.Extra,
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: encode claims: %w", err)
	}
	jws, err := ks.signer.signer.Sign(payload)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: sign: %w", err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: serialize: %w", err)
	}
	return raw, exp.UTC(), nil
}
