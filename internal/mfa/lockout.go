package mfa

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
)

// LockoutConfig tunes the per-user lock of second-factor verification.
//
// Each mfa_token dies after a few wrong codes, but a correct password opens
// a fresh one (and resets the login lockout), so without a count across
// tokens someone who knows the password could guess codes for ever at the
// rate of the per-user throttle. NIST SP 800-63B §5.2.2 asks for a limit on
// consecutive failures per account: this is it.
type LockoutConfig struct {
	// Threshold consecutive wrong codes, across every mfa_token and
	// reauthentication, lock second-factor verification (default 10).
	Threshold int
	// BaseLock is the first lock; each further lock doubles it, up to
	// MaxLock.
	BaseLock time.Duration // default 1 min
	MaxLock  time.Duration // default 1 h
	// FailureWindow is how long failures and past locks are remembered
	// (default 24 h); only a correct code of an existing factor resets
	// them earlier.
	FailureWindow time.Duration
}

// DefaultLockout returns the defaults.
func DefaultLockout() LockoutConfig {
	return LockoutConfig{Threshold: 10, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour}
}

// lockout keeps the consecutive second-factor failures of each user and
// their locks in the ephemeral store, so they hold across nodes. It works
// as the login lockout does (internal/session/lockout.go): every count is
// an atomic increment made before the code is checked, in the same step as
// the lock check (kv.Store.IncrUnless), so of N parallel guesses at most
// Threshold are ever checked.
//
// A user's keys share one {hash tag}, the user id (which holds no braces),
// so that on Redis Cluster they live in one slot.
type lockout struct {
	kv  kv.Store
	cfg LockoutConfig
}

func mfaFailKey(userID string) string  { return "mfa:{" + userID + "}:fail" }
func mfaLockKey(userID string) string  { return "mfa:{" + userID + "}:lock" }
func mfaLocksKey(userID string) string { return "mfa:{" + userID + "}:locks" }

// attempt counts a verification of userID before its code is checked,
// unless verification is locked: then it counts nothing and returns how
// long the lock lasts (at least a second). An attempt counted with n over
// the threshold (see over) must be refused without checking the code.
func (l *lockout) attempt(ctx context.Context, userID string) (n int64, lockedFor time.Duration, err error) {
	n, ttl, blocked, err := l.kv.IncrUnless(ctx, mfaFailKey(userID), 1, l.cfg.FailureWindow, mfaLockKey(userID))
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

// locked returns how long verification stays locked (0 if it is not).
func (l *lockout) locked(ctx context.Context, userID string) (time.Duration, error) {
	ttl, err := l.kv.TTL(ctx, mfaLockKey(userID))
	if errors.Is(err, kv.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return max(ttl, time.Second), nil
}

// failed records a wrong code (attempt n). It locks when n reaches the
// threshold and returns the lock's duration (0 when this attempt did not
// lock).
func (l *lockout) failed(ctx context.Context, userID string, n int64) (time.Duration, error) {
	if n != int64(l.cfg.Threshold) {
		return 0, nil
	}
	count, err := l.kv.Incr(ctx, mfaLocksKey(userID), 1, l.cfg.FailureWindow)
	if err != nil {
		return 0, err
	}
	d := l.cfg.BaseLock
	for i := int64(1); i < count && d < l.cfg.MaxLock; i++ {
		d *= 2
	}
	d = min(d, l.cfg.MaxLock)
	if err := l.kv.Set(ctx, mfaLockKey(userID), []byte("1"), d); err != nil {
		return 0, err
	}
	// The next window of attempts starts when the lock ends.
	if _, err := l.kv.Delete(ctx, mfaFailKey(userID)); err != nil {
		return 0, err
	}
	return d, nil
}

// ensureLocked is called for an attempt beyond the threshold. The attempt
// that reached the threshold sets the lock once its code is found wrong;
// if it has not (yet), a provisional base lock is set here so a counter
// stuck above the threshold can never lock for longer.
func (l *lockout) ensureLocked(ctx context.Context, userID string) (time.Duration, error) {
	if d, err := l.locked(ctx, userID); err != nil || d > 0 {
		return d, err
	}
	set, err := l.kv.SetNX(ctx, mfaLockKey(userID), []byte("1"), l.cfg.BaseLock)
	if err != nil {
		return 0, err
	}
	if set {
		if _, err := l.kv.Delete(ctx, mfaFailKey(userID)); err != nil {
			return 0, err
		}
	}
	return l.locked(ctx, userID)
}

// succeeded resets the user's counters after a correct second factor.
func (l *lockout) succeeded(ctx context.Context, userID string) error {
	_, err := l.kv.Delete(ctx, mfaFailKey(userID), mfaLocksKey(userID))
	return err
}

func (s *Service) lockout() *lockout { return &lockout{kv: s.KV, cfg: s.Config.Lockout} }

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
// may have made up, as with an authenticator app of their own).
func (s *Service) guarded(ctx context.Context, u store.User, m session.Meta, reset bool, check func() (bool, error)) (bool, error) {
	lk := s.lockout()
	n, d, err := lk.attempt(ctx, u.ID)
	if err != nil {
		return false, err
	}
	if d == 0 && lk.over(n) {
		if d, err = lk.ensureLocked(ctx, u.ID); err != nil {
			return false, err
		}
	}
	if d > 0 {
		return false, lockedProblem(d)
	}
	ok, err := check()
	if err != nil {
		return false, err
	}
	if !ok {
		d, err := lk.failed(ctx, u.ID, n)
		if err != nil {
			return false, err
		}
		if d > 0 {
			s.onLocked(ctx, u, d, m)
		}
		return false, nil
	}
	if reset {
		if err := lk.succeeded(ctx, u.ID); err != nil {
			return false, err
		}
	}
	return true, nil
}

// onLocked records and announces a lock of second-factor verification;
// failures to do so are logged, the lock itself stands. The email is the
// account-locked one: its advice (someone may be guessing; change the
// password) fits, as whoever guesses codes got past the password.
func (s *Service) onLocked(ctx context.Context, u store.User, d time.Duration, m session.Meta) {
	now := s.now()
	err := s.Store.InTx(ctx, func(tx store.Store) error {
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
			OccurredAt: now, SubjectID: u.ID, Action: "security.mfa_locked",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
			Data: map[string]any{"lock_seconds": int(d / time.Second)},
		}); err != nil {
			return err
		}
		args, err := mail.NewSendArgs(s.Keys, mail.AccountLocked, u.Email, mail.Data{RecipientName: u.Name, UnlockAt: now.Add(d), ExpiresIn: d, IP: m.IP, UserAgent: m.UserAgent, Time: now}, "")
		if err != nil {
			return err
		}
		_, err = s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
		return err
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "could not record the second-factor lock", "user_id", u.ID, "error", err.Error())
	}
}
