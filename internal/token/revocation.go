package token

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Revocation lives in the database; the kv store (Redis in production)
// holds a cache of it that every node reads once per request:
//
//   - the deny list: a key per denied session (every access token of it)
//     or per denied token without a session (by jti), each written to the
//     database first (store.AddDenial, and the session's own revocation)
//     and then to the kv store;
//   - the epoch marker: a key holding the database's revocation epoch. It
//     is written only once the deny list in the kv store is complete, so
//     when it is missing or different, the kv store has lost data (a
//     restart without persistence, a flush, a failover to an empty
//     replica, an eviction) or belongs to another database. Verify reads
//     it with the deny key in the same round trip and, until the deny list
//     has been rebuilt from the database, refuses every token as
//     ErrUnavailable (a retryable 503), never as valid.
//
// The kill-switch time is kept in the database (store.RaiseRevokeBefore:
// it only moves forward) and in memory on every node, refreshed from the
// database every few seconds and at once when a new one is announced.

// Kv keys of the revocation state.
const (
	denySessionPrefix = "token:deny:sid:" // + session ID: every token of the session
	denyTokenPrefix   = "token:deny:jti:" // + jti: one token without a session
	// denyEpochKey holds the revocation epoch once the deny list is
	// complete, or rebuildingPrefix + a nonce while a node rebuilds it.
	denyEpochKey     = "token:deny:epoch"
	rebuildingPrefix = "rebuilding:"
	// revokeBeforeKey and revokeBeforeTimes held the kill-switch time
	// before it moved to the database. A time found there is carried into
	// the database (at Start and with every refresh), and a new cut-off is
	// added to the set too, so that during a rolling upgrade the nodes of
	// the previous release and of this one see each other's kill switch.
	// Both can go in the release after this one.
	revokeBeforeKey   = "token:revoke_before"
	revokeBeforeTimes = "token:revoke_before:times"
)

const (
	// rebuildLockTTL bounds how long other nodes wait for a node that
	// claimed the rebuild and died before finishing it.
	rebuildLockTTL = 30 * time.Second
	// rebuildTimeout bounds one rebuild.
	rebuildTimeout = 20 * time.Second
	// rebuildBatch is how many deny entries one SetMany writes.
	rebuildBatch = 1000
)

// errDenyStateLost is the reason (wrapped in ErrUnavailable) a token is
// refused while the kv deny list is incomplete.
var errDenyStateLost = errors.New("token: the deny list in the kv store lost its data and is being rebuilt from the database")

// RevocationStore is what the Manager needs from the database for
// revocation.
type RevocationStore interface {
	RevocationEpoch(ctx context.Context) (string, error)
	RaiseRevokeBefore(ctx context.Context, t time.Time) (time.Time, error)
	RevokeBefore(ctx context.Context) (time.Time, error)
	AddDenial(ctx context.Context, d store.Denial) error
	ListDenials(ctx context.Context, now time.Time, window time.Duration) ([]store.Denial, error)
}

// revocation is this node's copy of the revocation state.
type revocation struct {
	// before is the kill-switch time in Unix microseconds; 0 for none.
	// -1 until it has been read once. It only moves forward.
	before atomic.Int64
	// epoch is the database's revocation epoch, read by Start.
	epoch atomic.Pointer[[]byte]
	// rebuild wakes the background loop to check and rebuild the deny
	// list; a send never blocks (one pending wake-up is enough).
	rebuild chan struct{}
}

// raise moves the in-memory kill-switch time forward to t (never back).
func (r *revocation) raise(t time.Time) {
	var micros int64
	if !t.IsZero() {
		micros = t.UnixMicro()
	}
	for {
		cur := r.before.Load()
		if cur >= micros {
			return
		}
		if r.before.CompareAndSwap(cur, micros) {
			return
		}
	}
}

// DenySession puts a session on the deny list, so that every node rejects
// its access tokens from the next request on. The entry lasts until until,
// and at least AccessTTL + Leeway (the longest any of its tokens can be
// accepted); after that it expires by itself. It is recorded in the
// database first, so it survives the kv store losing its data. Call it
// whenever a session ends (logout, revocation, password change, account
// disabled or deleted).
func (m *Manager) DenySession(ctx context.Context, sessionID string, until time.Time) error {
	if sessionID == "" {
		return errors.New("token: DenySession needs a session ID")
	}
	ttl := max(until.Sub(m.now()), m.cfg.denyTTL())
	return m.deny(ctx, store.DenySession, sessionID, ttl)
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
	return m.deny(ctx, store.DenyToken, jti, ttl)
}

// deny records a denial in the database, then in the kv cache.
func (m *Manager) deny(ctx context.Context, kind, id string, ttl time.Duration) error {
	if err := m.store.AddDenial(ctx, store.Denial{Kind: kind, ID: id, Until: m.now().Add(ttl)}); err != nil {
		return fmt.Errorf("token: record denial: %w", err)
	}
	if err := m.kv.Set(ctx, denyKey(kind, id), []byte("1"), ttl); err != nil {
		return fmt.Errorf("token: deny %s: %w", kind, err)
	}
	return nil
}

func denyKey(kind, id string) string {
	if kind == store.DenyToken {
		return denyTokenPrefix + id
	}
	return denySessionPrefix + id
}

// RevokeIssuedBefore is the incident kill switch: every access token
// issued before t is rejected by every node, at once through the kv
// channel token.revoke_before and within a few seconds on a node that
// missed the message. Because iat has whole seconds, tokens issued in the
// same second as t, just after it, are rejected too. The time is stored in
// the database and only moves forward: a t earlier than the current
// cut-off changes nothing.
func (m *Manager) RevokeIssuedBefore(ctx context.Context, t time.Time) error {
	if t.UnixMicro() <= 0 {
		return errors.New("token: kill-switch time must be after 1970")
	}
	stored, err := m.store.RaiseRevokeBefore(ctx, t)
	if err != nil {
		return fmt.Errorf("token: set kill switch: %w", err)
	}
	m.revocation.raise(stored)
	if _, err := m.kv.SAdd(ctx, revokeBeforeTimes, strconv.FormatInt(stored.UnixMicro(), 10)); err != nil {
		m.log.WarnContext(ctx, "token: could not copy the kill-switch time for nodes of the previous release", "error", err)
	}
	m.log.WarnContext(ctx, "token: kill switch set: rejecting every access token issued before this time", "before", m.RevokedBefore())
	m.announce(ctx, ChannelRevokeBefore, []byte(strconv.FormatInt(stored.UnixMicro(), 10)))
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
// round trip, which also reads the epoch marker, and never a database
// query. An error means the answer is unknown (the kv store cannot be
// read, or lost its data and the deny list is being rebuilt); treat the
// token as invalid (Verify does).
func (m *Manager) IsRevoked(ctx context.Context, c Claims) (bool, error) {
	before := m.revocation.before.Load()
	epoch := m.revocation.epoch.Load()
	if before < 0 || epoch == nil {
		return false, errors.New("token: revocation state not loaded; call Start first")
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
	vals, err := m.kv.GetMany(ctx, denyEpochKey, key)
	if err != nil {
		return false, fmt.Errorf("token: read deny list: %w", err)
	}
	if !bytes.Equal(vals[0], *epoch) {
		m.wakeRebuild()
		return false, errDenyStateLost
	}
	return vals[1] != nil, nil
}

// wakeRebuild asks the background loop to check the deny list.
func (m *Manager) wakeRebuild() {
	select {
	case m.revocation.rebuild <- struct{}{}:
	default:
	}
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

// loadRevocation reads the epoch and the kill-switch time, carries a
// kill-switch time left in the kv store by an older release into the
// database, and makes sure the kv deny list is complete. Start calls it.
func (m *Manager) loadRevocation(ctx context.Context) error {
	epoch, err := m.store.RevocationEpoch(ctx)
	if err != nil {
		return fmt.Errorf("token: read revocation epoch: %w", err)
	}
	b := []byte(epoch)
	m.revocation.epoch.Store(&b)
	if err := m.carryLegacyKillSwitch(ctx); err != nil {
		return err
	}
	if err := m.refreshRevokeBefore(ctx); err != nil {
		return err
	}
	if _, err := m.syncDenyList(ctx, true); err != nil {
		return err
	}
	return nil
}

// carryLegacyKillSwitch moves a kill-switch time an older release kept in
// the kv store into the database.
func (m *Manager) carryLegacyKillSwitch(ctx context.Context) error {
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
		if micros, err := strconv.ParseInt(v, 10, 64); err == nil && micros > latest {
			latest = micros
		}
	}
	if latest == 0 || latest <= m.revocation.before.Load() {
		return nil // nothing, or nothing this node does not hold already
	}
	if _, err := m.store.RaiseRevokeBefore(ctx, time.UnixMicro(latest)); err != nil {
		return fmt.Errorf("token: carry the kill-switch time into the database: %w", err)
	}
	return nil
}

func (m *Manager) refreshRevokeBeforeLogged(ctx context.Context) {
	err := m.carryLegacyKillSwitch(ctx)
	if err == nil {
		err = m.refreshRevokeBefore(ctx)
	}
	if err != nil && ctx.Err() == nil {
		m.log.ErrorContext(ctx, "token: reading the kill-switch time failed; keeping the one read before", "error", err)
	}
}

// refreshRevokeBefore reads the kill-switch time from the database into
// memory. The in-memory time never moves back; when it cannot be read, it
// stays.
func (m *Manager) refreshRevokeBefore(ctx context.Context) error {
	t, err := m.store.RevokeBefore(ctx)
	if err != nil {
		return fmt.Errorf("token: read kill-switch time: %w", err)
	}
	m.revocation.raise(t)
	return nil
}

func (m *Manager) syncDenyListLogged(ctx context.Context) {
	if _, err := m.syncDenyList(ctx, false); err != nil && ctx.Err() == nil {
		m.log.ErrorContext(ctx, "token: checking or rebuilding the deny list failed; access tokens are refused (503) until it succeeds", "error", err)
	}
}

// syncDenyList checks the epoch marker and, when the kv store has lost the
// deny list, rebuilds it from the database. It reports whether the list
// is complete afterwards; false with no error means another node is
// rebuilding it.
//
// The rebuild claims the marker (rebuildingPrefix + a nonce, expiring
// after rebuildLockTTL in case this node dies), writes every denial still
// in force, and then swaps its own claim for the epoch in one atomic step.
// If the kv store loses its data again meanwhile, the claim is gone, the
// swap fails and the next check starts over: the marker can never say
// "complete" over a list that is not.
//
// starting is set for the check at Start, where an empty kv store is
// expected (the in-process store at every start, a new Redis): the rebuild
// is then logged as routine rather than as a loss.
func (m *Manager) syncDenyList(ctx context.Context, starting bool) (bool, error) {
	epoch := *m.revocation.epoch.Load()
	marker, err := m.kv.Get(ctx, denyEpochKey)
	switch {
	case err == nil && bytes.Equal(marker, epoch):
		return true, nil
	case err == nil && bytes.HasPrefix(marker, []byte(rebuildingPrefix)):
		return false, nil // another node is at it; its claim expires if it died
	case err != nil && !errors.Is(err, kv.ErrNotFound):
		return false, fmt.Errorf("token: read deny-list marker: %w", err)
	}
	nonce, err := secret.NewToken(16)
	if err != nil {
		return false, err
	}
	claim := []byte(rebuildingPrefix + nonce)
	var claimed bool
	if marker == nil {
		claimed, err = m.kv.SetNX(ctx, denyEpochKey, claim, rebuildLockTTL)
	} else {
		// Another database's epoch: this database's denials are missing.
		claimed, err = m.kv.CompareAndSwap(ctx, denyEpochKey, marker, claim, rebuildLockTTL)
	}
	if err != nil || !claimed {
		return false, err
	}
	if starting {
		m.log.InfoContext(ctx, "token: the kv store holds no access-token deny list yet; building it from the database")
	} else {
		m.log.WarnContext(ctx, "token: the kv store lost the access-token deny list; rebuilding it from the database and refusing access tokens until done")
	}
	ctx, cancel := context.WithTimeout(ctx, rebuildTimeout)
	defer cancel()
	n, err := m.rebuildDenyList(ctx)
	if err != nil {
		// Release the claim at once (it expires in a millisecond), so that
		// the next attempt, here or on another node, need not wait for it.
		_, _ = m.kv.CompareAndSwap(context.WithoutCancel(ctx), denyEpochKey, claim, claim, time.Millisecond)
		return false, err
	}
	done, err := m.kv.CompareAndSwap(ctx, denyEpochKey, claim, epoch, 0)
	if err != nil {
		return false, fmt.Errorf("token: mark the deny list complete: %w", err)
	}
	if !done {
		m.wakeRebuild()
		return false, errors.New("token: the kv store lost data again during the deny-list rebuild; starting over")
	}
	if starting {
		m.log.InfoContext(ctx, "token: built the access-token deny list from the database", "entries", n)
	} else {
		m.log.WarnContext(ctx, "token: rebuilt the access-token deny list from the database", "entries", n)
	}
	return true, nil
}

// rebuildDenyList writes every denial in force into the kv store, and
// refreshes the kill-switch time.
func (m *Manager) rebuildDenyList(ctx context.Context) (int, error) {
	if err := m.refreshRevokeBefore(ctx); err != nil {
		return 0, err
	}
	now := m.now()
	denials, err := m.store.ListDenials(ctx, now, m.cfg.denyTTL())
	if err != nil {
		return 0, fmt.Errorf("token: list denials: %w", err)
	}
	entries := make([]kv.Entry, 0, min(len(denials), rebuildBatch))
	n := 0
	flush := func() error {
		if len(entries) == 0 {
			return nil
		}
		if err := m.kv.SetMany(ctx, entries...); err != nil {
			return fmt.Errorf("token: write deny list: %w", err)
		}
		n += len(entries)
		entries = entries[:0]
		return nil
	}
	for _, d := range denials {
		ttl := d.Until.Sub(now)
		if ttl <= 0 {
			continue
		}
		entries = append(entries, kv.Entry{Key: denyKey(d.Kind, d.ID), Value: []byte("1"), TTL: ttl})
		if len(entries) == rebuildBatch {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}
