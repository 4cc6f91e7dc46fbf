package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// ConsumeOneTimeToken implements store.OneTimeTokenStore with a single
// UPDATE … RETURNING, which SQLite runs under the database's write lock.
func (s *Store) ConsumeOneTimeToken(ctx context.Context, purpose store.TokenPurpose, tokenHash string, now time.Time) (store.OneTimeToken, error) {
	var t store.OneTimeToken
	err := s.write(ctx, func(q querier) error {
		var err error
		t, err = sqlrow.ScanToken(q.QueryRowContext(ctx, `UPDATE `+sqlrow.TokenTable(purpose)+` SET consumed_at = ?1
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
