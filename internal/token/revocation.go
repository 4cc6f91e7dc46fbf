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
	// revokeBeforeKey held the kill-switch time as a value until the
	// cut-off became a set; it is still read, so a cut-off set before an
	// upgrade stands.
	revokeBeforeKey = "token:revoke_before"
	// revokeBeforeTimes is the set of kill-switch times (decimal Unix
	// microseconds); the cut-off is the latest. Adding to a set is atomic
	// and the latest always wins, so of two concurrent calls, or a node
	// holding a stale cut-off, none can move the cut-off back.
	revokeBeforeTimes = "token:revoke_before:times"
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
// same second as t, just after it, are rejected too. The cut-off only
// moves forward: a t earlier than the current cut-off changes nothing.
func (m *Manager) RevokeIssuedBefore(ctx context.Context, t time.Time) error {
	micros := t.UnixMicro()
	if micros <= 0 {
		return errors.New("token: kill-switch time must be after 1970")
	}
	if _, err := m.kv.SAdd(ctx, revokeBeforeTimes, strconv.FormatInt(micros, 10)); err != nil {
		return fmt.Errorf("token: set kill switch: %w", err)
	}
	if err := m.refreshRevokeBefore(ctx); err != nil {
		return err
	}
	m.log.WarnContext(ctx, "token: kill switch set: rejecting every access token issued before this time", "before", m.RevokedBefore())
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
// memory: the latest of the stored times (and of the value an older
// release kept). When it cannot be read or is malformed, the in-memory
// time stays. It also drops the stored times older than the latest, which
// can never matter again.
func (m *Manager) refreshRevokeBefore(ctx context.Context) error {
	members, err := m.kv.SMembers(ctx, revokeBeforeTimes)
	if err != nil {
		return fmt.Errorf("token: read kill-switch times: %w", err)
	}
	legacy, err := m.kv.Get(ctx, revokeBeforeKey)
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return fmt.Errorf("token: read kill-switch time: %w", err)
	}
	if len(legacy) > 0 {
		members = append(members, string(legacy))
	}
	var latest int64
	for _, v := range members {
		micros, err := strconv.ParseInt(v, 10, 64)
		if err != nil || micros <= 0 {
			return fmt.Errorf("token: kill-switch time %q in the kv store is not a positive integer", v)
		}
		latest = max(latest, micros)
	}
	m.revocation.before.Store(latest)
	var older []string
	for _, v := range members {
		if micros, _ := strconv.ParseInt(v, 10, 64); micros < latest {
			older = append(older, v)
		}
	}
	if len(older) > 0 {
		if _, err := m.kv.SRem(ctx, revokeBeforeTimes, older...); err != nil {
			m.log.WarnContext(ctx, "token: could not drop superseded kill-switch times", "error", err)
		}
	}
	return nil
}
