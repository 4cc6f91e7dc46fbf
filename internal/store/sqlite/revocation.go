package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// RaiseRevokeBefore implements store.RevocationStore. SQLite's max() of a
// NULL is NULL, hence the coalesce; one UPDATE on the single writer is
// atomic.
func (s *Store) RaiseRevokeBefore(ctx context.Context, t time.Time) (time.Time, error) {
	if t.IsZero() {
		return time.Time{}, fmt.Errorf("sqlite: raise kill-switch time: zero time")
	}
	var got time.Time
	err := s.write(ctx, func(q querier) error {
		return q.QueryRowContext(ctx, `UPDATE revocation_state SET revoke_before = max(coalesce(revoke_before, ?1), ?1)
			WHERE id = 1 RETURNING revoke_before`, timeValue(t)).Scan(timeDest(&got))
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: raise kill-switch time: %w", mapErr(err))
	}
	return got, nil
}

// AddDenial implements store.RevocationStore.
func (s *Store) AddDenial(ctx context.Context, d store.Denial) error {
	if err := sqlrow.CheckDenial(d); err != nil {
		return fmt.Errorf("sqlite: add denial: %w", err)
	}
	err := s.write(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO access_denials (kind, id, until) VALUES (?, ?, ?)
			ON CONFLICT (kind, id) DO UPDATE SET until = max(access_denials.until, excluded.until)`,
			d.Kind, d.ID, timeValue(d.Until))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: add denial: %w", mapErr(err))
	}
	return nil
}
