package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// RevocationEpoch implements store.RevocationStore.
func (s *Store) RevocationEpoch(ctx context.Context) (string, error) {
	var epoch string
	if err := s.read().QueryRowContext(ctx, `SELECT epoch FROM revocation_state WHERE id = 1`).Scan(&epoch); err != nil {
		return "", fmt.Errorf("sqlite: revocation epoch: %w", mapErr(err))
	}
	return epoch, nil
}

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

// RevokeBefore implements store.RevocationStore.
func (s *Store) RevokeBefore(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.read().QueryRowContext(ctx, `SELECT revoke_before FROM revocation_state WHERE id = 1`).Scan(nullTimeDest(&t)); err != nil {
		return time.Time{}, fmt.Errorf("sqlite: kill-switch time: %w", mapErr(err))
	}
	return t, nil
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

// ListDenials implements store.RevocationStore.
func (s *Store) ListDenials(ctx context.Context, now time.Time, window time.Duration) ([]store.Denial, error) {
	q := s.read()
	var recorded []store.Denial
	rows, err := q.QueryContext(ctx, `SELECT kind, id, until FROM access_denials WHERE until > ?`, timeValue(now))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list denials: %w", mapErr(err))
	}
	for rows.Next() {
		var d store.Denial
		if err := rows.Scan(&d.Kind, &d.ID, timeDest(&d.Until)); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: list denials: %w", err)
		}
		recorded = append(recorded, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list denials: %w", mapErr(err))
	}
	revoked := map[string]time.Time{}
	rows, err = q.QueryContext(ctx, `SELECT id, revoked_at FROM sessions WHERE revoked_at > ?`, timeValue(now.Add(-window)))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list denials: %w", mapErr(err))
	}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, timeDest(&at)); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: list denials: %w", err)
		}
		revoked[id] = at
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list denials: %w", mapErr(err))
	}
	return sqlrow.MergeDenials(recorded, revoked, window, now), nil
}

// PurgeDenials implements store.RevocationStore.
func (s *Store) PurgeDenials(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, `DELETE FROM access_denials WHERE until < ?`, timeValue(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge denials: %w", mapErr(err))
	}
	return n, nil
}
