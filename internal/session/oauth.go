package session

import (
	"context"
	"errors"

	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// What the OAuth endpoints (introspection, revocation) read and record:
// they hold no store of their own and go through the session service.

// FindRefreshToken returns the refresh token whose value is raw, with its
// owner's UserEmail, as it is (rotated, revoked or expired tokens too);
// store.ErrNotFound when there is none.
func (s *Service) FindRefreshToken(ctx context.Context, raw string) (store.RefreshToken, error) {
	return s.Store.GetRefreshTokenByHash(ctx, secret.HashToken(raw))
}

// Username returns the email address of the user, which introspection
// reports as an access token's username; "" when there is no such user
// (any more).
func (s *Service) Username(ctx context.Context, userID string) (string, error) {
	u, err := s.Store.GetUser(ctx, userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	}
	return u.Email, nil
}

// RecordEvent appends e to the audit log.
func (s *Service) RecordEvent(ctx context.Context, e store.AuditEvent) error {
	return s.Store.AppendAuditEvent(ctx, e)
}
