package mfa

import (
	"context"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/lockout"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
)

// LockoutConfig tunes the per-user lock of second-factor verification:
// Threshold consecutive wrong codes, across every mfa_token and
// reauthentication, lock verification (default 10) for BaseLock (1 min),
// doubling up to MaxLock (1 h); failures and past locks are remembered for
// FailureWindow (24 h), and only a correct code of an existing factor
// resets them earlier.
//
// Each mfa_token dies after a few wrong codes, but a correct password opens
// a fresh one (and resets the login lockout), so without a count across
// tokens someone who knows the password could guess codes for ever at the
// rate of the per-user throttle. NIST SP 800-63B §5.2.2 asks for a limit on
// consecutive failures per account: this is it.
type LockoutConfig = lockout.Config

// DefaultLockout returns the defaults.
func DefaultLockout() LockoutConfig {
	return LockoutConfig{Threshold: 10, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour}
}

// lockout counts the consecutive second-factor failures of each user (the
// subject is the user id) and locks verification, across nodes.
func (s *Service) lockout() lockout.Counter {
	return lockout.Counter{KV: s.KV, Config: s.Config.Lockout, Prefix: "mfa"}
}

// lockedProblem is the answer while second-factor verification is locked.
func lockedProblem(d time.Duration) error {
	p := httpapi.NewProblem(http.StatusTooManyRequests, "mfa_locked", "Too many wrong codes; second-factor verification is locked for a while.")
	p.RetryAfter = int((d + time.Second - 1) / time.Second)
	return p
}

// guarded runs check, the verification of a code of u's, under the
// per-user lockout: a locked user is refused before check runs, the
// attempt is counted before it, and a wrong code that reaches the
// threshold locks (with an event and an email). With reset, a correct
// code resets the count: pass it only for the factors the user already
// had, never for the confirmation of a new device (whose code the caller
// may have made up, as with an authenticator app of their own); without,
// a correct code only gives its own attempt back, as does a check that
// ends in an error.
func (s *Service) guarded(ctx context.Context, u store.User, m httpapi.Meta, reset bool, check func() (bool, error)) (bool, error) {
	lk := s.lockout()
	n, d, err := lk.Attempt(ctx, u.ID)
	if err != nil {
		return false, err
	}
	if d > 0 {
		return false, lockedProblem(d)
	}
	// The attempt ends in exactly one of Failed, Succeeded or Release
	// (see lockout.Counter).
	release := func() {
		if err := lk.Release(context.WithoutCancel(ctx), u.ID); err != nil {
			s.Log.ErrorContext(ctx, "could not give back a second-factor attempt", "user_id", u.ID, "error", err.Error())
		}
	}
	ok, err := check()
	if err != nil {
		release()
		return false, err
	}
	if !ok {
		d, err := lk.Failed(ctx, u.ID, n)
		if err != nil {
			return false, err
		}
		s.onFailed(ctx, u, m)
		if d > 0 {
			s.onLocked(ctx, u, d, m)
		}
		return false, nil
	}
	if reset {
		if err := lk.Succeeded(ctx, u.ID); err != nil {
			return false, err
		}
	} else {
		// Neither a failure nor a reset: the attempt is given back.
		release()
	}
	return true, nil
}

// onFailed publishes a wrong code (event.SecondFactorFailed, a security
// event) in a transaction of its own; a failure to do so is logged.
func (s *Service) onFailed(ctx context.Context, u store.User, m httpapi.Meta) {
	e := event.SecondFactorFailed{UserID: u.ID, Meta: m}
	if !s.Store.Listens(e) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := s.Store.InTx(ctx, func(tx Tx) error { return tx.Publish(ctx, e) }); err != nil {
		s.Log.ErrorContext(ctx, "could not record a wrong second-factor code", "user_id", u.ID, "error", err.Error())
	}
}

// onLocked records and announces a lock of second-factor verification;
// failures to do so are logged, the lock itself stands. The email is the
// account-locked one: its advice (someone may be guessing; change the
// password) fits, as whoever guesses codes got past the password.
func (s *Service) onLocked(ctx context.Context, u store.User, d time.Duration, m httpapi.Meta) {
	err := s.Store.InTx(ctx, func(tx Tx) error {
		return session.RecordLock(ctx, tx, s.Jobs, s.Keys, u, d, m, "security.mfa_locked", s.now())
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "could not record the second-factor lock", "user_id", u.ID, "error", err.Error())
	}
}

// Unlock lifts the lock of u's second-factor verification, if any, and
// forgets its failures (an administrator's unlock); it reports whether it
// was locked.
func (s *Service) Unlock(ctx context.Context, u store.User) (bool, error) {
	return s.lockout().Clear(ctx, u.ID)
}
