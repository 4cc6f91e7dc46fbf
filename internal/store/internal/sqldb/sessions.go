package sqldb

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// The reads of sessions and refresh tokens. Their writes (sign-in,
// rotation, revocation) stay in each backend, where the engines differ.

func (t *Tables) scanSession(r sqlrow.Scanner) (store.Session, error) {
	return sqlrow.ScanSession(r, t.d.TimeDest, t.d.NullTimeDest, t.d.ListDest)
}

// GetSession implements store.SessionStore. It reads the primary (or the
// transaction): a session just revoked must not look live.
func (t *Tables) GetSession(ctx context.Context, id string) (store.Session, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.Session{}, t.errorf("get session %q: %w", id, store.ErrNotFound)
	}
	x, err := row(ctx, t, Primary, t.scanSession, "SELECT "+sqlrow.SessionColumns+" FROM sessions WHERE id = $1", canon)
	if err != nil {
		return store.Session{}, t.errorf("get session %s: %w", canon, t.d.MapErr(err))
	}
	return x, nil
}

// ListUserSessions implements store.SessionStore, reading the primary:
// the user's live sessions, newest first.
func (t *Tables) ListUserSessions(ctx context.Context, userID string, now time.Time) ([]store.Session, error) {
	canon, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID, so none has sessions
	}
	list, err := rows(ctx, t, Primary, t.scanSession, "SELECT "+sqlrow.SessionColumns+` FROM sessions
		WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
		ORDER BY created_at DESC, id DESC`, canon, t.d.TimeValue(now))
	if err != nil {
		return nil, t.errorf("list sessions: %w", err)
	}
	return list, nil
}

// GetRefreshTokenByHash implements store.SessionStore: one lookup on the
// unique index of token_hash, on the primary, with the email address of
// the token's user.
func (t *Tables) GetRefreshTokenByHash(ctx context.Context, hash string) (store.RefreshToken, error) {
	if !sqlrow.Storable(hash) {
		return store.RefreshToken{}, t.errorf("get refresh token: %w", store.ErrNotFound)
	}
	scan := func(r sqlrow.Scanner) (store.RefreshToken, error) {
		var email *string
		tok, err := sqlrow.ScanRefreshToken(sqlrow.WithExtra(r, &email), t.d.TimeDest, t.d.NullTimeDest)
		if email != nil {
			tok.UserEmail = *email
		}
		return tok, err
	}
	tok, err := row(ctx, t, Primary, scan, "SELECT "+sqlrow.RefreshTokenColumns+
		", "+sqlrow.UserEmailColumn+" FROM refresh_tokens WHERE token_hash = $1", hash)
	if err != nil {
		return store.RefreshToken{}, t.errorf("get refresh token: %w", t.d.MapErr(err))
	}
	return tok, nil
}
