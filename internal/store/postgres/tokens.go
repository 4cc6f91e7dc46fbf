package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// ConsumeOneTimeToken implements store.OneTimeTokenStore with a single
// UPDATE … RETURNING. Of concurrent callers, the first to update the row
// wins; the others wait for its lock, re-check the WHERE clause against the
// committed row (READ COMMITTED) and find it consumed.
func (s *Store) ConsumeOneTimeToken(ctx context.Context, purpose store.TokenPurpose, tokenHash string, now time.Time) (store.OneTimeToken, error) {
	t, err := sqlrow.ScanToken(s.q.QueryRow(ctx, `UPDATE `+sqlrow.TokenTable(purpose)+` SET consumed_at = $3
		WHERE purpose = $1 AND token_hash = $2 AND consumed_at IS NULL AND expires_at > $3
		RETURNING `+sqlrow.TokenColumns,
		string(purpose), tokenHash, sqlrow.Micro(now)), timeDest, nullTimeDest)
	if err != nil {
		return store.OneTimeToken{}, fmt.Errorf("postgres: consume one-time token: %w", mapErr(err))
	}
	return t, nil
}
