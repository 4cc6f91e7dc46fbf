package session

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/lockout"
	"github.com/gatehouse/gatehouse/internal/store"
)

// LockoutConfig tunes brute-force protection.
type LockoutConfig struct {
	// Threshold consecutive failures lock the account (default 5).
	Threshold int
	// BaseLock is the first lock; each further lock doubles it, up to MaxLock.
	BaseLock time.Duration // default 1 min
	MaxLock  time.Duration // default 1 h
	// IPFailures failed logins from one IP within IPWindow block that IP
	// (credential stuffing across accounts).
	IPFailures int           // default 100
	IPWindow   time.Duration // default 15 min
	// FailureWindow is how long a failure is remembered without another.
	FailureWindow time.Duration // default 24 h
}

// DefaultLockout returns the defaults.
func DefaultLockout() LockoutConfig {
	return LockoutConfig{Threshold: 5, BaseLock: time.Minute, MaxLock: time.Hour, IPFailures: 100, IPWindow: 15 * time.Minute, FailureWindow: 24 * time.Hour}
}

// guard is the sign-in's brute-force protection: a lockout.Counter of
// failures per login name (a keyed hash of the normalized email address,
// see Service.lockSubject), not per account, so an address with no account
// locks like any other; and a count of failures per client address.
type guard struct {
	lockout.Counter
	cfg LockoutConfig
}

func (s *Service) guard() *guard {
	c := s.Config.Lockout
	return &guard{
		Counter: lockout.Counter{KV: s.KV, Prefix: "login", Config: lockout.Config{
			Threshold: c.Threshold, BaseLock: c.BaseLock, MaxLock: c.MaxLock, FailureWindow: c.FailureWindow,
		}},
		cfg: c,
	}
}

// release gives back the unit of an attempt on subject that ended without
// an answer (an error, the client gone), so that it counts as no failure;
// it is made even when the request's context is cancelled, and a failure
// to make it is logged.
func (s *Service) release(ctx context.Context, lk *guard, subject string) {
	if err := lk.Release(context.WithoutCancel(ctx), subject); err != nil {
		s.Log.ErrorContext(ctx, "could not give back a sign-in attempt", "error", err.Error())
	}
}

// ipKey names the failure counter of a client address: IPv6 clients count
// by their /64 (see httpapi.LimitKey).
func ipKey(ip string) string { return "login:ipfail:" + httpapi.LimitKey(ip) }

// ipAttempt counts a sign-in attempt from ip before its password is
// checked, in one atomic increment, and reports whether the IP is over its
// limit: then the attempt is refunded at once and must be refused without
// a password check, and blockedFor is how long the IP's window has left
// (at least a second).
//
// The counter holds the IP's failures in the window plus its attempts in
// flight: every attempt takes a unit before its check, and one that does
// not end in a wrong password (a correct password, a locked subject, an
// error) gives it back with ipRefund. So of N parallel attempts from one IP
// at most IPFailures are checked, as with the per-subject count, and a
// correct password never charges the IP.
func (l *guard) ipAttempt(ctx context.Context, ip string) (blockedFor time.Duration, err error) {
	if ip == "" || l.cfg.IPFailures <= 0 {
		return 0, nil
	}
	n, err := l.KV.Incr(ctx, ipKey(ip), 1, l.cfg.IPWindow)
	if err != nil {
		return 0, err
	}
	if n <= int64(l.cfg.IPFailures) {
		return 0, nil
	}
	if err := l.ipRefund(ctx, ip); err != nil {
		return 0, err
	}
	ttl, err := l.KV.TTL(ctx, ipKey(ip))
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return 0, err
	}
	return max(ttl, time.Second), nil
}

// ipRefund gives back the unit an attempt took with ipAttempt, for an
// attempt that did not end in a wrong password. It never creates a
// counter (kv.Store.DecrExisting): if the IP's window ended meanwhile, the
// refund finds nothing to give back, so it never lends the next window an
// attempt.
func (l *guard) ipRefund(ctx context.Context, ip string) error {
	if ip == "" || l.cfg.IPFailures <= 0 {
		return nil
	}
	_, err := l.KV.DecrExisting(ctx, ipKey(ip), 1)
	if errors.Is(err, kv.ErrNotFound) {
		return nil
	}
	return err
}

// Unlock lifts the sign-in lock of u's address, if any, and forgets its
// failures (an administrator's unlock); it reports whether it was locked.
// The per-IP count is left alone: it belongs to the client, not to u.
func (s *Service) Unlock(ctx context.Context, u store.User) (bool, error) {
	return s.guard().Clear(ctx, s.lockSubject(u.EmailNormalized))
}
