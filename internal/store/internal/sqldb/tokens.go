package sqldb

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// CreateOneTimeToken implements store.OneTimeTokenStore in one statement:
// the partial unique index one_time_tokens_unconsumed_key allows a single
// unconsumed token per user and purpose, and the insert replaces that token
// when there is one. Concurrent calls for the same user and purpose
// serialise on the index (on SQLite, the write lock); the last one wins.
// A not_me token goes to its own table, which has no such index: it is
// inserted beside the user's others.
func (t *Tables) CreateOneTimeToken(ctx context.Context, tok store.OneTimeToken) error {
	tok, err := sqlrow.PrepareToken(tok, t.now())
	if err != nil {
		return t.errorf("%w", err)
	}
	q := `INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, email, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (user_id, purpose) WHERE consumed_at IS NULL DO UPDATE SET
			id = excluded.id, token_hash = excluded.token_hash, email = excluded.email,
			expires_at = excluded.expires_at, created_at = excluded.created_at`
	if tok.Purpose == store.PurposeNotMe {
		q = `INSERT INTO not_me_tokens (id, user_id, purpose, token_hash, email, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`
	}
	tv := t.d.TimeValue
	_, err = t.x.Exec(ctx, q,
		tok.ID, tok.UserID, string(tok.Purpose), tok.TokenHash, sqlrow.Null(tok.Email), tv(tok.ExpiresAt), tv(tok.CreatedAt))
	if err != nil {
		return t.errorf("create one-time token: %w", t.d.MapErr(err))
	}
	return nil
}

// GetOneTimeToken implements store.OneTimeTokenStore. It reads the
// primary: the token was usually written moments ago.
func (t *Tables) GetOneTimeToken(ctx context.Context, purpose store.TokenPurpose, tokenHash string, now time.Time) (store.OneTimeToken, error) {
	tok, err := row(ctx, t, Primary, t.scanToken, `SELECT `+sqlrow.TokenColumns+` FROM `+sqlrow.TokenTable(purpose)+`
		WHERE purpose = $1 AND token_hash = $2 AND consumed_at IS NULL AND expires_at > $3`,
		string(purpose), tokenHash, t.d.TimeValue(now))
	if err != nil {
		return store.OneTimeToken{}, t.errorf("get one-time token: %w", t.d.MapErr(err))
	}
	return tok, nil
}

func (t *Tables) scanToken(r sqlrow.Scanner) (store.OneTimeToken, error) {
	return sqlrow.ScanToken(r, t.d.TimeDest, t.d.NullTimeDest)
}

// DeleteUserOneTimeTokens implements store.OneTimeTokenStore.
func (t *Tables) DeleteUserOneTimeTokens(ctx context.Context, userID string, purpose store.TokenPurpose) error {
	canon, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil // no user has this ID, so none has tokens
	}
	_, err := t.x.Exec(ctx, "DELETE FROM "+sqlrow.TokenTable(purpose)+" WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL",
		canon, string(purpose))
	if err != nil {
		return t.errorf("delete one-time tokens: %w", t.d.MapErr(err))
	}
	return nil
}

// PurgeOneTimeTokens implements store.OneTimeTokenStore, over both token
// tables.
func (t *Tables) PurgeOneTimeTokens(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for _, table := range []string{"one_time_tokens", "not_me_tokens"} {
		n, err := t.x.Exec(ctx, "DELETE FROM "+table+" WHERE expires_at < $1 OR consumed_at < $1", t.d.TimeValue(before))
		if err != nil {
			return total, t.errorf("purge one-time tokens: %w", t.d.MapErr(err))
		}
		total += n
	}
	return total, nil
}
