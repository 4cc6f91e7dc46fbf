package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// CreateOneTimeToken implements store.OneTimeTokenStore in one statement:
// the partial unique index one_time_tokens_unconsumed_key allows a single
// unconsumed token per user and purpose, and the insert replaces that token
// when there is one. Concurrent calls for the same user and purpose
// serialise on the index; the last one wins.
func (s *Store) CreateOneTimeToken(ctx context.Context, t store.OneTimeToken) error {
	t, err := sqlrow.PrepareToken(t, s.now())
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	_, err = s.q.Exec(ctx, `INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, email, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (user_id, purpose) WHERE consumed_at IS NULL DO UPDATE SET
			id = excluded.id, token_hash = excluded.token_hash, email = excluded.email,
			expires_at = excluded.expires_at, created_at = excluded.created_at`,
		t.ID, t.UserID, string(t.Purpose), t.TokenHash, sqlrow.Null(t.Email), t.ExpiresAt, t.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create one-time token: %w", mapErr(err))
	}
	return nil
}

// ConsumeOneTimeToken implements store.OneTimeTokenStore with a single
// UPDATE … RETURNING. Of concurrent callers, the first to update the row
// wins; the others wait for its lock, re-check the WHERE clause against the
// committed row (READ COMMITTED) and find it consumed.
func (s *Store) ConsumeOneTimeToken(ctx context.Context, purpose store.TokenPurpose, tokenHash string, now time.Time) (store.OneTimeToken, error) {
	t, err := sqlrow.ScanToken(s.q.QueryRow(ctx, `UPDATE one_time_tokens SET consumed_at = $3
		WHERE purpose = $1 AND token_hash = $2 AND consumed_at IS NULL AND expires_at > $3
		RETURNING `+sqlrow.TokenColumns,
		string(purpose), tokenHash, sqlrow.Micro(now)), timeDest, nullTimeDest)
	if err != nil {
		return store.OneTimeToken{}, fmt.Errorf("postgres: consume one-time token: %w", mapErr(err))
	}
	return t, nil
}

// GetOneTimeToken implements store.OneTimeTokenStore. It reads the
// primary: the token was usually written moments ago.
func (s *Store) GetOneTimeToken(ctx context.Context, purpose store.TokenPurpose, tokenHash string, now time.Time) (store.OneTimeToken, error) {
	t, err := sqlrow.ScanToken(s.q.QueryRow(ctx, `SELECT `+sqlrow.TokenColumns+` FROM one_time_tokens
		WHERE purpose = $1 AND token_hash = $2 AND consumed_at IS NULL AND expires_at > $3`,
		string(purpose), tokenHash, sqlrow.Micro(now)), timeDest, nullTimeDest)
	if err != nil {
		return store.OneTimeToken{}, fmt.Errorf("postgres: get one-time token: %w", mapErr(err))
	}
	return t, nil
}

// DeleteUserOneTimeTokens implements store.OneTimeTokenStore.
func (s *Store) DeleteUserOneTimeTokens(ctx context.Context, userID string, purpose store.TokenPurpose) error {
	canon, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil // no user has this ID, so none has tokens
	}
	_, err := s.q.Exec(ctx, "DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL",
		canon, string(purpose))
	if err != nil {
		return fmt.Errorf("postgres: delete one-time tokens: %w", mapErr(err))
	}
	return nil
}

// PurgeOneTimeTokens implements store.OneTimeTokenStore.
func (s *Store) PurgeOneTimeTokens(ctx context.Context, before time.Time) (int64, error) {
	b := sqlrow.Micro(before)
	tag, err := s.q.Exec(ctx, "DELETE FROM one_time_tokens WHERE expires_at < $1 OR consumed_at < $1", b)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge one-time tokens: %w", mapErr(err))
	}
	return tag.RowsAffected(), nil
}
