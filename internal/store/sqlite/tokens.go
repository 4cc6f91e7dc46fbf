package sqlite

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
// when there is one.
func (s *Store) CreateOneTimeToken(ctx context.Context, t store.OneTimeToken) error {
	t, err := sqlrow.PrepareToken(t, s.now())
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	err = s.write(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, email, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id, purpose) WHERE consumed_at IS NULL DO UPDATE SET
				id = excluded.id, token_hash = excluded.token_hash, email = excluded.email,
				expires_at = excluded.expires_at, created_at = excluded.created_at`,
			t.ID, t.UserID, string(t.Purpose), t.TokenHash, sqlrow.Null(t.Email), timeValue(t.ExpiresAt), timeValue(t.CreatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: create one-time token: %w", mapErr(err))
	}
	return nil
}

// ConsumeOneTimeToken implements store.OneTimeTokenStore with a single
// UPDATE … RETURNING, which SQLite runs under the database's write lock.
func (s *Store) ConsumeOneTimeToken(ctx context.Context, purpose store.TokenPurpose, tokenHash string, now time.Time) (store.OneTimeToken, error) {
	var t store.OneTimeToken
	err := s.write(ctx, func(q querier) error {
		var err error
		t, err = sqlrow.ScanToken(q.QueryRowContext(ctx, `UPDATE one_time_tokens SET consumed_at = ?1
			WHERE purpose = ?2 AND token_hash = ?3 AND consumed_at IS NULL AND expires_at > ?1
			RETURNING `+sqlrow.TokenColumns,
			timeValue(now), string(purpose), tokenHash), timeDest, nullTimeDest)
		return err
	})
	if err != nil {
		return store.OneTimeToken{}, fmt.Errorf("sqlite: consume one-time token: %w", mapErr(err))
	}
	return t, nil
}

// GetOneTimeToken implements store.OneTimeTokenStore.
func (s *Store) GetOneTimeToken(ctx context.Context, purpose store.TokenPurpose, tokenHash string, now time.Time) (store.OneTimeToken, error) {
	t, err := sqlrow.ScanToken(s.read().QueryRowContext(ctx, `SELECT `+sqlrow.TokenColumns+` FROM one_time_tokens
		WHERE purpose = ?1 AND token_hash = ?2 AND consumed_at IS NULL AND expires_at > ?3`,
		string(purpose), tokenHash, timeValue(now)), timeDest, nullTimeDest)
	if err != nil {
		return store.OneTimeToken{}, fmt.Errorf("sqlite: get one-time token: %w", mapErr(err))
	}
	return t, nil
}

// DeleteUserOneTimeTokens implements store.OneTimeTokenStore.
func (s *Store) DeleteUserOneTimeTokens(ctx context.Context, userID string, purpose store.TokenPurpose) error {
	canon, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil // no user has this ID, so none has tokens
	}
	err := s.write(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, "DELETE FROM one_time_tokens WHERE user_id = ? AND purpose = ? AND consumed_at IS NULL",
			canon, string(purpose))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete one-time tokens: %w", mapErr(err))
	}
	return nil
}

// PurgeOneTimeTokens implements store.OneTimeTokenStore.
func (s *Store) PurgeOneTimeTokens(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, "DELETE FROM one_time_tokens WHERE expires_at < ?1 OR consumed_at < ?1", timeValue(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge one-time tokens: %w", mapErr(err))
	}
	return n, nil
}
