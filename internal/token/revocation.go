package token

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv"
)

// Kv keys of the revocation state.
const (
	denySessionPrefix = "token:deny:sid:" // + session ID: every token of the session
	denyTokenPrefix   = "token:deny:jti:" // + jti: one token without a session
	revokeBeforeKey   = "token:revoke_before"
)

// revocation is the in-memory copy of the kill-switch time.
type revocation struct {
	// before is the kill-switch time in Unix microseconds; 0 for none.
	// -1 until it has been read once.
	before atomic.Int64
}

// DenySession puts a session on the deny list, so that every node rejects
// its access tokens from the next request on. The entry lasts until until,
// and at least AccessTTL + Leeway (the longest any of its tokens can be
// accepted); after that it expires by itself. Call it whenever a session
// ends (logout, revocation, password change, account disabled).
func (m *Manager) DenySession(ctx context.Context, sessionID string, until time.Time) error {
	if sessionID == "" {
		return errors.New("token: DenySession needs a session ID")
	}
	ttl := max(until.Sub(m.now()), m.cfg.denyTTL())
	if err := m.kv.Set(ctx, denySessionPrefix+sessionID, []byte("1"), ttl); err != nil {
		return fmt.Errorf("token: deny session: %w", err)
	}
	return nil
}

// DenyToken puts one access token without a session (a client_credentials
// token) on the deny list, by its jti, so that every node rejects it from
// the next request on. expiresAt is the token's exp: the entry lasts until
// then plus Leeway, after which Verify refuses the token anyway, and then
// expires by itself. Tokens of a session are revoked with DenySession.
func (m *Manager) DenyToken(ctx context.Context, jti string, expiresAt time.Time) error {
	if jti == "" {
		return errors.New("token: DenyToken needs a token ID")
	}
	ttl := expiresAt.Add(m.cfg.Leeway).Sub(m.now())
	if ttl <= 0 {
		return nil // no longer accepted anyway
	}
	if err := m.kv.Set(ctx, denyTokenPrefix+jti, []byte("1"), ttl); err != nil {
		return fmt.Errorf("token: deny token: %w", err)
	}
	return nil
}

// RevokeIssuedBefore is the incident kill switch: every access token
// issued before t is rejected by every node, at once through the kv
// channel token.revoke_before and within a few seconds on a node that
// missed the message. Because iat has whole seconds, tokens issued in the
// same second as t, just after it, are rejected too. A later call replaces
// the time (a t in the past un-revokes tokens issued after it).
func (m *Manager) RevokeIssuedBefore(ctx context.Context, t time.Time) error {
	micros := t.UnixMicro()
	if micros <= 0 {
		return errors.New("token: kill-switch time must be after 1970")
	}
	if err := m.kv.Set(ctx, revokeBeforeKey, []byte(strconv.FormatInt(micros, 10)), 0); err != nil {
		return fmt.Errorf("token: set kill switch: %w", err)
	}
	m.revocation.before.Store(micros)
	m.log.WarnContext(ctx, "token: kill switch set: rejecting every access token issued before this time", "before", t.UTC())
	m.announce(ctx, ChannelRevokeBefore, []byte(strconv.FormatInt(micros, 10)))
	return nil
}

// RevokedBefore returns the kill-switch time this node holds (zero when
// there is none).
func (m *Manager) RevokedBefore() time.Time {
	if v := m.revocation.before.Load(); v > 0 {
		return time.UnixMicro(v).UTC()
	}
	return time.Time{}
}

// IsRevoked reports whether a token with these (verified) claims was
// revoked: issued before the kill-switch time, or on the deny list, by its
// session (DenySession) or, for a token without one, by its jti
// (DenyToken). The first is checked in memory; the second costs one kv
// read, and never a database query. An error means the answer is unknown;
// treat the token as invalid (Verify does).
func (m *Manager) IsRevoked(ctx context.Context, c Claims) (bool, error) {
	before := m.revocation.before.Load()
	if before < 0 {
		return false, errors.New("token: kill-switch time not loaded; call Start first")
	}
	if before > 0 && c.IssuedAt.Before(ceilSecond(time.UnixMicro(before))) {
		return true, nil
	}
	key := denySessionPrefix + c.SessionID
	if c.SessionID == "" {
		if c.ID == "" {
			return false, nil // cannot be denied one by one (Verify requires a jti)
		}
		key = denyTokenPrefix + c.ID
	}
	_, err := m.kv.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, kv.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("token: read deny list: %w", err)
}

// ceilSecond rounds t up to a whole second: a token with iat s was issued
// somewhere in [s, s+1), so it certainly predates t only if s+1 <= t, and
// may if s < t. Rejecting every iat before ceil(t) errs on the safe side.
func ceilSecond(t time.Time) time.Time {
	if f := t.Truncate(time.Second); !f.Equal(t) {
		return f.Add(time.Second)
	}
	return t
}

func (m *Manager) refreshRevokeBeforeLogged(ctx context.Context) {
	if err := m.refreshRevokeBefore(ctx); err != nil && ctx.Err() == nil {
		m.log.ErrorContext(ctx, "token: reading the kill-switch time failed; keeping the one read before", "error", err)
	}
}

// refreshRevokeBefore reads the kill-switch time from the kv store into
// memory. The stored value always wins (RevokeIssuedBefore may move it
// back); when it cannot be read or is malformed, the in-memory time stays.
func (m *Manager) refreshRevokeBefore(ctx context.Context) error {
	v, err := m.kv.Get(ctx, revokeBeforeKey)
	if errors.Is(err, kv.ErrNotFound) {
		m.revocation.before.Store(0)
		return nil
	}
	if err != nil {
		return fmt.Errorf("token: read kill-switch time: %w", err)
	}
	micros, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || micros <= 0 {
		return fmt.Errorf("token: kill-switch time %q in the kv store is not a positive integer", v)
	}
	m.revocation.before.Store(micros)
	return nil
}
