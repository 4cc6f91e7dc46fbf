package session

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/password"
)

// VerifyPassword checks the password of a signed-in user, for a sensitive
// change confirmed by password (a new email address), through the same
// per-account lockout as sign-in: a locked account is refused with 429
// account_locked before any check, a wrong password counts towards the
// lock (and answers ErrInvalidCredentials), a right one resets the count.
// So a stolen access token does not give unlimited password guesses. The
// per-IP limit is left alone: the caller is authenticated, and guesses one
// account's password only.
func (s *Service) VerifyPassword(ctx context.Context, userID, pw string, m Meta) error {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	lk := s.lockout()
	subject := s.lockSubject(u.EmailNormalized)
	n, d, err := lk.attempt(ctx, subject)
	if err != nil {
		return err
	}
	if d > 0 {
		return lockedProblem(d, "account_locked", "Too many wrong passwords; the account is locked for a while.")
	}
	if lk.over(n) {
		d, err := lk.ensureLocked(ctx, subject)
		if err != nil {
			return err
		}
		return lockedProblem(d, "account_locked", "Too many wrong passwords; the account is locked for a while.")
	}
	ok := false
	if pw != "" {
		ok, _, err = s.Hasher.Verify(ctx, pw, u.PasswordHash)
		if err != nil && !password.Unusable(err) {
			return err
		}
	}
	if !ok {
		d, err := lk.failed(ctx, subject, n)
		if err != nil {
			return err
		}
		if d > 0 {
			s.onLocked(ctx, u, d, m)
		}
		return ErrInvalidCredentials
	}
	return lk.succeeded(ctx, subject)
}
