package token

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse/gatehouse/pkg/accesstoken"
)

// ErrInvalid is returned (wrapped, with the reason for the logs) for every
// token that is not a valid, unrevoked access token. Never echo the reason
// to the client.
var ErrInvalid = errors.New("token: invalid access token")

// ErrUnavailable is returned (wrapped) when the revocation state cannot be
// read. The token is not accepted: revocation fails closed. It is not
// ErrInvalid either, so the caller answers with a server error (and the
// client retries) instead of a 401 that would make it throw the token away.
var ErrUnavailable = errors.New("token: revocation state unavailable")

// errUnknownKey marks a token whose kid is not in the cache.
var errUnknownKey = errors.New("unknown kid")

// supportedAlgs is the global allowlist, used only to read the kid of a
// token whose algorithm none of the cached keys has (it may belong to a
// key not loaded yet).
var supportedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

func invalid(reason error) error { return fmt.Errorf("%w: %w", ErrInvalid, reason) }

// Verify checks raw (the token, without "Bearer ") and returns its claims:
// the signature with the cached key named by kid and only with that key's
// algorithm, typ at+jwt, iss, aud (one of Config.Audience), exp (with no
// leeway: the token dies at its exp here), nbf and iat with Leeway, the key not expired, and then revocation (IsRevoked).
//
// For a token signed by a known key Verify reads no database; a token with
// an unknown kid makes it reload the keys, at most once per few seconds.
// Invalid and revoked tokens yield ErrInvalid; if the revocation state
// cannot be read the error wraps ErrUnavailable (fail closed, logged).
func (m *Manager) Verify(ctx context.Context, raw string) (Claims, error) {
	return m.verify(ctx, raw, m.cfg.Audience)
}

// verify is Verify with the audiences to accept; nil accepts any.
func (m *Manager) verify(ctx context.Context, raw string, audience []string) (Claims, error) {
	c, err := m.checkSignature(ctx, raw, audience)
	if err != nil {
		return Claims{}, err
	}
	revoked, err := m.IsRevoked(ctx, c)
	if err != nil {
		m.log.ErrorContext(ctx, "token: revocation check failed; rejecting the token", "error", err)
		return Claims{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if revoked {
		return Claims{}, invalid(errors.New("revoked"))
	}
	return c, nil
}

// VerifyIssued is Verify for any audience: it accepts every live token
// this server issued, whichever API it is for. Token introspection
// (RFC 7662) answers for all of them; Gatehouse's own API uses Verify.
func (m *Manager) VerifyIssued(ctx context.Context, raw string) (Claims, error) {
	return m.verify(ctx, raw, nil)
}

// checkSignature checks everything but revocation; a token's aud must
// contain one of audience, or with a nil audience anything (it must still
// have an aud).
func (m *Manager) checkSignature(ctx context.Context, raw string, audience []string) (Claims, error) {
	if len(raw) > accesstoken.MaxTokenBytes {
		return Claims{}, invalid(errors.New("too long"))
	}
	ks := m.keys.Load()
	if ks == nil {
		return Claims{}, errors.New("token: no keys loaded; call Start first")
	}
	now := m.now()
	if c, ok := m.verified.get(raw, ks, now); ok {
		return m.validate(c, audience, now)
	}
	tok, key, err := parse(raw, ks)
	if errors.Is(err, errUnknownKey) {
		m.reloadForUnknownKey(ctx)
		tok, key, err = parse(raw, m.keys.Load())
	}
	if err != nil {
		return Claims{}, invalid(err)
	}
	var c Claims
	if err := tok.Claims(key.public, &c); err != nil {
		return Claims{}, invalid(errors.New("bad signature or payload"))
	}
	if !key.liveAt(now) {
		return Claims{}, invalid(errors.New("signing key expired"))
	}
	c, err = m.validate(c, audience, now)
	if err == nil {
		m.verified.put(raw, key.kid, c)
	}
	return c, err
}

// validate checks the claims of a token whose signature checked out:
// issuer, audience and times.
func (m *Manager) validate(c Claims, audience []string, now time.Time) (Claims, error) {
	if audience == nil {
		// Any API's token: Validate still requires an aud.
		audience = c.Audience
	}
	if err := c.Validate(accesstoken.Expected{
		Issuer:   m.cfg.Issuer,
		Audience: audience,
		Time:     now,
		Leeway:   m.cfg.Leeway,
		// This is the issuer: its clock set exp, so no skew is allowed
		// there (other servers verifying with pkg/accesstoken keep theirs).
		StrictExpiry: true,
	}); err != nil {
		return Claims{}, invalid(err)
	}
	return c, nil
}

// parse parses raw with the algorithms of the cached keys as the
// allowlist, and returns it with the key its header names, after checking
// typ and that alg is that key's algorithm. It does not verify the
// signature.
func parse(raw string, ks *keySet) (*jwt.JSONWebToken, *cachedKey, error) {
	tok, err := jwt.ParseSigned(raw, ks.algs)
	if err != nil {
		// Perhaps signed by a new key with an algorithm no cached key has.
		if t, err := jwt.ParseSigned(raw, supportedAlgs); err == nil && len(t.Headers) == 1 {
			if kid := t.Headers[0].KeyID; kid != "" && ks.byKID[kid] == nil {
				return nil, nil, errUnknownKey
			}
		}
		return nil, nil, errors.New("malformed or algorithm not allowed")
	}
	if len(tok.Headers) != 1 {
		return nil, nil, errors.New("not exactly one signature")
	}
	h := tok.Headers[0]
	if h.KeyID == "" {
		return nil, nil, errors.New("no kid")
	}
	if !accesstoken.IsAccessTokenType(h.ExtraHeaders[jose.HeaderType]) {
		return nil, nil, errors.New("typ is not at+jwt")
	}
	key := ks.byKID[h.KeyID]
	if key == nil {
		return nil, nil, errUnknownKey
	}
	if h.Algorithm != string(key.alg) {
		return nil, nil, errors.New("alg differs from the key's")
	}
	return tok, key, nil
}

// verifiedCacheSize bounds the verified-token cache: about 1 KiB each.
const verifiedCacheSize = 20_000

// verifiedCache remembers the claims of tokens whose signature and form
// checked out, by the token's text, until they expire: a token presented
// again (every call of a client between two refreshes) costs a map lookup
// instead of a signature verification. It caches nothing about
// revocation, which is checked at every use, nor about time: the claims
// are validated again at every use. An entry counts only while the key
// that signed it (its kid) is still published and live, so removing a
// key ends its tokens at once; a kid names one key's material for ever.
type verifiedCache struct {
	mu  sync.Mutex
	m   map[string]verifiedEntry
	max int
}

type verifiedEntry struct {
	kid    string
	claims Claims
}

func (v *verifiedCache) get(raw string, ks *keySet, now time.Time) (Claims, bool) {
	v.mu.Lock()
	e, ok := v.m[raw]
	if ok && !now.Before(e.claims.ExpiresAt) {
		delete(v.m, raw)
		ok = false
	}
	v.mu.Unlock()
	if !ok {
		return Claims{}, false
	}
	key := ks.byKID[e.kid]
	if key == nil || !key.liveAt(now) {
		return Claims{}, false
	}
	return e.claims, true
}

func (v *verifiedCache) put(raw, kid string, c Claims) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[string]verifiedEntry)
	}
	if len(v.m) >= v.max {
		// Full: drop an arbitrary tenth (map order), expired or not.
		n := v.max / 10
		for k := range v.m {
			delete(v.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	v.m[raw] = verifiedEntry{kid: kid, claims: c}
}
