// Package lockout counts consecutive failures of a subject (a login name,
// a user's second factor) in the ephemeral store and locks the subject for
// an exponentially growing time once they reach a threshold. The state is
// in kv, so it holds across nodes, and every count is an atomic increment
// made before the secret is checked, in the same step as the lock check
// (kv.Store.IncrUnless): of N parallel guesses at most Threshold are ever
// checked.
//
// The counter holds the subject's failures plus its attempts in flight.
// An attempt that would take it past Threshold is not checked, and does
// not lock either: it gives its unit back and waits (up to
// Config.MaxWait) for the attempts in flight to settle. If they fail, the
// one that reached the threshold locks, and the waiting attempt is refused
// with that lock; if one succeeds, the count is reset and the waiting
// attempt takes its turn. So N parallel wrong guesses still get at most
// Threshold checks and then the lock, while N parallel correct secrets (a
// client retrying, a script) are all checked, Threshold at a time, and
// never lock the subject.
//
// A caller uses it like this: Attempt before checking; refuse when it
// answers a lock; check; then call exactly one of Failed (a wrong
// secret: it locks when this attempt was the Threshold-th), Succeeded (a
// right one: it forgets the failures) or Release (no answer, such as an
// error, or a right secret that must not reset the count: the attempt's
// unit is given back).
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
	// MaxWait is how long an attempt beyond Threshold attempts in flight
	// waits for them to settle (0: DefaultMaxWait). An attempt still
	// waiting then finds the count stuck (attempts that never settled,
	// such as on a node that crashed): it locks the subject for BaseLock,
	// which also resets the count.
	MaxWait time.Duration
}

// DefaultMaxWait is the MaxWait of a Config that sets none.
const DefaultMaxWait = 10 * time.Second

// pollEvery is how often a waiting attempt tries again.
const pollEvery = 20 * time.Millisecond

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
// atomic step. A counted attempt (lockedFor 0) is checked, and then ends
// with exactly one of Failed, Succeeded or Release.
//
// There is no moment between the check and the count for a lock to land
// in, so no second check is needed after counting: a lock sets its key
// before it resets the counter, so an attempt that would count on a
// freshly reset counter finds the lock in that same step. An attempt
// counted before a lock landed counted in the lock's own window, as one of
// at most Threshold.
//
// An attempt counted beyond Threshold gives its unit back at once and
// waits for room (see the package documentation): until a lock answers
// it, a settled attempt makes room, ctx ends (its error is returned), or
// MaxWait passes (then the subject is locked for BaseLock, see
// ensureLocked).
func (c Counter) Attempt(ctx context.Context, subject string) (n int64, lockedFor time.Duration, err error) {
	wait := c.Config.MaxWait
	if wait <= 0 {
		wait = DefaultMaxWait
	}
	var deadline time.Time
	for {
		n, ttl, blocked, err := c.KV.IncrUnless(ctx, c.failKey(subject), 1, c.Config.FailureWindow, c.lockKey(subject))
		if err != nil {
			return 0, 0, err
		}
		if blocked {
			return 0, max(ttl, time.Second), nil
		}
		if n <= int64(c.Config.Threshold) {
			return n, 0, nil
		}
		// Over: not checked, and not counted while it waits.
		if err := c.give(ctx, subject); err != nil {
			return 0, 0, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(wait)
		} else if time.Now().After(deadline) {
			d, err := c.ensureLocked(ctx, subject)
			return 0, d, err
		}
		t := time.NewTimer(pollEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, 0, ctx.Err()
		case <-t.C:
		}
	}
}

// give takes one unit off the subject's count: never below 0, and never
// from a count that was reset (by a lock or a success) or that expired
// meanwhile, so it lends a fresh count nothing.
func (c Counter) give(ctx context.Context, subject string) error {
	_, err := c.KV.DecrExisting(ctx, c.failKey(subject), 1)
	if errors.Is(err, kv.ErrNotFound) {
		return nil
	}
	return err
}

// Release ends a counted attempt that was neither a failure nor a success
// that resets the count (an error during the check, a client gone, a right
// secret that must not reset): its unit is given back, so it neither
// counts as a failure nor keeps an attempt waiting.
func (c Counter) Release(ctx context.Context, subject string) error {
	return c.give(ctx, subject)
}

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

// ensureLocked is called by an attempt that waited MaxWait for room in
// vain: the attempts in flight never settled (they may have died with
// their node). The attempt that reached the threshold sets the lock once
// its check fails; if none has, a provisional base lock is set here, which
// resets the count, so a count stuck at the threshold can never lock the
// subject for longer.
func (c Counter) ensureLocked(ctx context.Context, subject string) (time.Duration, error) {
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

// Succeeded ends a counted attempt whose secret was right: it forgets the
// subject's failures and past locks, and so gives back this attempt's
// unit too (and those of the attempts in flight, which a success
// forgives as it forgives failures).
func (c Counter) Succeeded(ctx context.Context, subject string) error {
	_, err := c.KV.Delete(ctx, c.failKey(subject), c.locksKey(subject))
	return err
}

// Clear lifts the subject's lock, if any, and forgets its failures and
// past locks (an administrator's unlock): its next lock is a first one
// again. It reports whether the subject was locked. Attempts in flight
// then end on a fresh count, which Failed, Succeeded and Release handle
// as they do after a reset by Succeeded.
func (c Counter) Clear(ctx context.Context, subject string) (wasLocked bool, err error) {
	n, err := c.KV.Delete(ctx, c.lockKey(subject))
	if err != nil {
		return false, err
	}
	if _, err := c.KV.Delete(ctx, c.failKey(subject), c.locksKey(subject)); err != nil {
		return false, err
	}
	return n > 0, nil
}
