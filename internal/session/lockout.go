package session

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
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

// lockout keeps failure counters and locks in the ephemeral store, so they
// hold across nodes. Its subject is the login name (a keyed hash of the
// normalized email address, see Service.lockSubject), not the account: an
// address with no account locks like any other. Every count is an atomic
// increment, and an attempt is counted before its password is checked: of
// N parallel guesses at most Threshold are ever checked.
//
// A subject's keys share one {hash tag}, the subject (which holds no
// braces), so that on Redis Cluster they live in one slot: attempt checks
// the lock and counts in one script, and succeeded deletes both counters
// with one DEL.
type lockout struct {
	kv  kv.Store
	cfg LockoutConfig
}

func failKey(subject string) string  { return "login:{" + subject + "}:fail" }
func lockKey(subject string) string  { return "login:{" + subject + "}:lock" }
func locksKey(subject string) string { return "login:{" + subject + "}:locks" }

// ipKey names the failure counter of a client address: IPv6 clients count
// by their /64 (see httpapi.LimitKey).
func ipKey(ip string) string { return "login:ipfail:" + httpapi.LimitKey(ip) }

// attempt counts an attempt on the subject before its password is checked,
// unless the subject is locked: then it counts nothing and returns how long
// the lock lasts (at least a second). The check and the count are one
// atomic step (kv.Store.IncrUnless). An attempt counted with n over the
// threshold (see over) must be refused without checking the password.
func (l *lockout) attempt(ctx context.Context, subject string) (n int64, lockedFor time.Duration, err error) {
	n, ttl, blocked, err := l.kv.IncrUnless(ctx, failKey(subject), 1, l.cfg.FailureWindow, lockKey(subject))
	if err != nil {
		return 0, 0, err
	}
	if blocked {
		return 0, max(ttl, time.Second), nil
	}
	return n, 0, nil
}

// over reports whether the attempt counted as n is beyond the threshold.
func (l *lockout) over(n int64) bool { return n > int64(l.cfg.Threshold) }

// locked returns how long the account stays locked (0 if it is not).
func (l *lockout) locked(ctx context.Context, subject string) (time.Duration, error) {
	ttl, err := l.kv.TTL(ctx, lockKey(subject))
	if errors.Is(err, kv.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return max(ttl, time.Second), nil
}

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
// correct password never charges the IP. (A refund that lands after its
// window ended leaves -1 in the next window: one extra attempt, at most.)
func (l *lockout) ipAttempt(ctx context.Context, ip string) (blockedFor time.Duration, err error) {
	if ip == "" || l.cfg.IPFailures <= 0 {
		return 0, nil
	}
	n, err := l.kv.Incr(ctx, ipKey(ip), 1, l.cfg.IPWindow)
	if err != nil {
		return 0, err
	}
	if n <= int64(l.cfg.IPFailures) {
		return 0, nil
	}
	if err := l.ipRefund(ctx, ip); err != nil {
		return 0, err
	}
	ttl, err := l.kv.TTL(ctx, ipKey(ip))
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return 0, err
	}
	return max(ttl, time.Second), nil
}

// ipRefund gives back the unit an attempt took with ipAttempt, for an
// attempt that did not end in a wrong password.
func (l *lockout) ipRefund(ctx context.Context, ip string) error {
	if ip == "" || l.cfg.IPFailures <= 0 {
		return nil
	}
	_, err := l.kv.Incr(ctx, ipKey(ip), -1, l.cfg.IPWindow)
	return err
}

// failed records a wrong password (attempt n of the account; the IP
// counted it already, in ipAttempt). It locks the account when n reaches
// the threshold and returns the lock's duration (0 when this attempt did
// not lock).
func (l *lockout) failed(ctx context.Context, subject string, n int64) (time.Duration, error) {
	if n != int64(l.cfg.Threshold) {
		return 0, nil
	}
	return l.lock(ctx, subject)
}

// lock locks the account for BaseLock × 2^(locks so far), capped.
func (l *lockout) lock(ctx context.Context, subject string) (time.Duration, error) {
	count, err := l.kv.Incr(ctx, locksKey(subject), 1, l.cfg.FailureWindow)
	if err != nil {
		return 0, err
	}
	d := l.cfg.BaseLock
	for i := int64(1); i < count && d < l.cfg.MaxLock; i++ {
		d *= 2
	}
	d = min(d, l.cfg.MaxLock)
	if err := l.kv.Set(ctx, lockKey(subject), []byte("1"), d); err != nil {
		return 0, err
	}
	// The next window of attempts starts when the lock ends.
	if _, err := l.kv.Delete(ctx, failKey(subject)); err != nil {
		return 0, err
	}
	return d, nil
}

// ensureLocked is called for an attempt beyond the threshold. The attempt
// that reached the threshold sets the lock once its password check fails;
// if it has not (yet), a provisional base lock is set here so a counter
// stuck above the threshold can never lock the account for longer.
func (l *lockout) ensureLocked(ctx context.Context, subject string) (time.Duration, error) {
	if d, err := l.locked(ctx, subject); err != nil || d > 0 {
		return d, err
	}
	set, err := l.kv.SetNX(ctx, lockKey(subject), []byte("1"), l.cfg.BaseLock)
	if err != nil {
		return 0, err
	}
	if set {
		if _, err := l.kv.Delete(ctx, failKey(subject)); err != nil {
			return 0, err
		}
	}
	return l.locked(ctx, subject)
}

// succeeded resets the account's counters, with one DEL (the keys share a
// slot).
func (l *lockout) succeeded(ctx context.Context, subject string) error {
	_, err := l.kv.Delete(ctx, failKey(subject), locksKey(subject))
	return err
}
