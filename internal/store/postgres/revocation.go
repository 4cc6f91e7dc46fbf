package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// RaiseRevokeBefore implements store.RevocationStore: GREATEST ignores a
// NULL, and one UPDATE is atomic, so concurrent calls keep the latest.
func (s *Store) RaiseRevokeBefore(ctx context.Context, t time.Time) (time.Time, error) {
	if t.IsZero() {
		return time.Time{}, fmt.Errorf("postgres: raise kill-switch time: zero time")
	}
	var got time.Time
	err := s.q.QueryRow(ctx, `UPDATE revocation_state SET revoke_before = GREATEST(revoke_before, $1)
		WHERE id = 1 RETURNING revoke_before`, sqlrow.Micro(t)).Scan(&got)
	if err != nil {
		return time.Time{}, fmt.Errorf("postgres: raise kill-switch time: %w", mapErr(err))
	}
	return got.UTC(), nil
}

// AddDenial implements store.RevocationStore.
func (s *Store) AddDenial(ctx context.Context, d store.Denial) error {
	if err := sqlrow.CheckDenial(d); err != nil {
		return fmt.Errorf("postgres: add denial: %w", err)
	}
	_, err := s.q.Exec(ctx, `INSERT INTO access_denials (kind, id, until) VALUES ($1, $2, $3)
		ON CONFLICT (kind, id) DO UPDATE SET until = GREATEST(access_denials.until, EXCLUDED.until)`,
		d.Kind, d.ID, sqlrow.Micro(d.Until))
	if err != nil {
		return fmt.Errorf("postgres: add denial: %w", mapErr(err))
	}
	return nil
}
