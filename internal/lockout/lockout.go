// Package lockout counts consecutive failures of a subject (a login name,
// a user's second factor) in the ephemeral store and locks the subject for
// an exponentially growing time once they reach a threshold. The state is
// in kv, so it holds across nodes, and every count is an atomic increment
// made before the secret is checked, in the same step as the lock check
// (kv.Store.IncrUnless): of N parallel guesses at most Threshold are ever
// checked.
//
// A caller uses it like this: Attempt before checking; refuse when it
// answers a lock, or when Over(n) (then EnsureLocked gives the lock to
// answer with); check; on a failure call Failed, which locks when this
// attempt was the Threshold-th; on a success call Succeeded.
package lockout

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv"
)

// Config tunes a Counter.
type Config struct {
	// Threshold consecutive failures lock the subject.
	Threshold int
	// BaseLock is the first lock; each further lock doubles it, up to
	// MaxLock.
	BaseLock time.Duration
	MaxLock  time.Duration
	// FailureWindow is how long failures and past locks are remembered
	// without another; only Succeeded forgets them earlier.
	FailureWindow time.Duration
}

// Counter keeps the failures and locks of subjects under one key prefix.
// A subject's keys share one {hash tag}, the subject, so that on Redis
// Cluster they live in one slot: Attempt checks the lock and counts in one
// script, and Succeeded deletes both counters with one DEL. A subject must
// not contain braces.
type Counter struct {
	KV     kv.Store
	Config Config
	// Prefix starts every key: Prefix+":{"+subject+"}:fail" and so on.
	Prefix string
}

func (c Counter) failKey(subject string) string  { return c.Prefix + ":{" + subject + "}:fail" }
func (c Counter) lockKey(subject string) string  { return c.Prefix + ":{" + subject + "}:lock" }
func (c Counter) locksKey(subject string) string { return c.Prefix + ":{" + subject + "}:locks" }

// Attempt counts an attempt on the subject before its secret is checked,
// unless the subject is locked: then it counts nothing and returns how
// long the lock lasts (at least a second). The check and the count are one
// atomic step. An attempt counted with n over the threshold (see Over)
// must be refused without a check.
//
// There is no moment between the check and the count for a lock to land
// in, so no second check is needed after counting: a lock sets its key
// before it resets the counter, so an attempt that would count on a
// freshly reset counter finds the lock in that same step. An attempt
// counted before a lock landed counted in the lock's own window, as one of
// at most Threshold.
func (c Counter) Attempt(ctx context.Context, subject string) (n int64, lockedFor time.Duration, err error) {
	n, ttl, blocked, err := c.KV.IncrUnless(ctx, c.failKey(subject), 1, c.Config.FailureWindow, c.lockKey(subject))
	if err != nil {
		return 0, 0, err
	}
	if blocked {
		return 0, max(ttl, time.Second), nil
	}
	return n, 0, nil
}

// Over reports whether the attempt counted as n is beyond the threshold.
func (c Counter) Over(n int64) bool { return n > int64(c.Config.Threshold) }

// Locked returns how long the subject stays locked (0 if it is not).
func (c Counter) Locked(ctx context.Context, subject string) (time.Duration, error) {
	ttl, err := c.KV.TTL(ctx, c.lockKey(subject))
	if errors.Is(err, kv.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return max(ttl, time.Second), nil
}

// Failed records a failed check of attempt n. It locks the subject when n
// is the threshold and returns the lock's duration (0 when this attempt
// did not lock).
func (c Counter) Failed(ctx context.Context, subject string, n int64) (time.Duration, error) {
	if n != int64(c.Config.Threshold) {
		return 0, nil
	}
	return c.lock(ctx, subject)
}

// lock locks the subject for BaseLock × 2^(locks so far), capped.
func (c Counter) lock(ctx context.Context, subject string) (time.Duration, error) {
	count, err := c.KV.Incr(ctx, c.locksKey(subject), 1, c.Config.FailureWindow)
	if err != nil {
		return 0, err
	}
	d := c.Config.BaseLock
	for i := int64(1); i < count && d < c.Config.MaxLock; i++ {
		d *= 2
	}
	d = min(d, c.Config.MaxLock)
	if err := c.KV.Set(ctx, c.lockKey(subject), []byte("1"), d); err != nil {
		return 0, err
	}
	// The next window of attempts starts when the lock ends.
	if _, err := c.KV.Delete(ctx, c.failKey(subject)); err != nil {
		return 0, err
	}
	return d, nil
}

// EnsureLocked is called for an attempt beyond the threshold. The attempt
// that reached the threshold sets the lock once its check fails; if it has
// not (yet), a provisional base lock is set here so a counter stuck above
// the threshold can never lock the subject for longer.
func (c Counter) EnsureLocked(ctx context.Context, subject string) (time.Duration, error) {
	if d, err := c.Locked(ctx, subject); err != nil || d > 0 {
		return d, err
	}
	set, err := c.KV.SetNX(ctx, c.lockKey(subject), []byte("1"), c.Config.BaseLock)
	if err != nil {
		return 0, err
	}
	if set {
		if _, err := c.KV.Delete(ctx, c.failKey(subject)); err != nil {
			return 0, err
		}
	}
	return c.Locked(ctx, subject)
}

// Succeeded forgets the subject's failures and past locks.
func (c Counter) Succeeded(ctx context.Context, subject string) error {
	_, err := c.KV.Delete(ctx, c.failKey(subject), c.locksKey(subject))
	return err
}
