package session

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

// VerifyPassword is CheckPassword for the user with this ID.
func (s *Service) VerifyPassword(ctx context.Context, userID, pw string, m httpapi.Meta) error {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	return s.CheckPassword(ctx, u, pw, m)
}

// CheckPassword checks the password of a signed-in user proving
// themselves again (POST /v1/auth/reauthenticate, a new email address
// confirmed by password) through the same per-account lockout as sign-in:
// a locked account is refused with 429 account_locked before any check, a
// wrong password counts towards the lock (announced like a login's) and
// answers ErrInvalidCredentials, a right one resets the count. So a stolen
// access token does not give unlimited password guesses. The per-IP limit
// is left alone: the caller is authenticated, and guesses one account's
// password only.
func (s *Service) CheckPassword(ctx context.Context, u store.User, pw string, m httpapi.Meta) error {
	lk := s.guard()
	subject := s.lockSubject(user.NormalizeEmail(u.Email))
	n, d, err := lk.Attempt(ctx, subject)
	if err != nil {
		return err
	}
	if d > 0 {
		return lockedProblem(d, "account_locked", "Too many failed sign-ins; the account is locked for a while.")
	}
	ok := false
	if pw != "" {
		ok, _, err = s.Hasher.Verify(ctx, pw, u.PasswordHash)
		if err != nil && !password.Unusable(err) {
			s.release(ctx, lk, subject)
			return err
		}
	}
	if !ok {
		d, err := lk.Failed(ctx, subject, n)
		if err != nil {
			return err
		}
		if d > 0 {
			s.onLocked(ctx, u, d, m)
		}
		return ErrInvalidCredentials
	}
	return lk.Succeeded(ctx, subject)
}
