package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// RevocationEpoch implements store.RevocationStore. It reads the primary.
func (s *Store) RevocationEpoch(ctx context.Context) (string, error) {
	var epoch string
	if err := s.q.QueryRow(ctx, `SELECT epoch FROM revocation_state WHERE id = 1`).Scan(&epoch); err != nil {
		return "", fmt.Errorf("postgres: revocation epoch: %w", mapErr(err))
	}
	return epoch, nil
}

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

// RevokeBefore implements store.RevocationStore. It reads the primary: a
// lagging replica would hide a kill switch just set.
func (s *Store) RevokeBefore(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.q.QueryRow(ctx, `SELECT revoke_before FROM revocation_state WHERE id = 1`).Scan(nullTimeDest(&t)); err != nil {
		return time.Time{}, fmt.Errorf("postgres: kill-switch time: %w", mapErr(err))
	}
	return t, nil
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

// ListDenials implements store.RevocationStore. It reads the primary, in
// one snapshot (REPEATABLE READ is not needed: a row missed by one query
// because it was written between the two is in the kv cache already, as
// every revocation writes here before it writes there).
func (s *Store) ListDenials(ctx context.Context, now time.Time, window time.Duration) ([]store.Denial, error) {
	var recorded []store.Denial
	rows, err := s.q.Query(ctx, `SELECT kind, id, until FROM access_denials WHERE until > $1`, sqlrow.Micro(now))
	if err != nil {
		return nil, fmt.Errorf("postgres: list denials: %w", mapErr(err))
	}
	for rows.Next() {
		var d store.Denial
		if err := rows.Scan(&d.Kind, &d.ID, &d.Until); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: list denials: %w", err)
		}
		recorded = append(recorded, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list denials: %w", mapErr(err))
	}
	revoked := map[string]time.Time{}
	rows, err = s.q.Query(ctx, `SELECT id, revoked_at FROM sessions WHERE revoked_at > $1`, sqlrow.Micro(now.Add(-window)))
	if err != nil {
		return nil, fmt.Errorf("postgres: list denials: %w", mapErr(err))
	}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: list denials: %w", err)
		}
		revoked[id] = at
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list denials: %w", mapErr(err))
	}
	return sqlrow.MergeDenials(recorded, revoked, window, now), nil
}

// PurgeDenials implements store.RevocationStore.
func (s *Store) PurgeDenials(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.q.Exec(ctx, `DELETE FROM access_denials WHERE until < $1`, sqlrow.Micro(before))
	if err != nil {
		return 0, fmt.Errorf("postgres: purge denials: %w", mapErr(err))
	}
	return tag.RowsAffected(), nil
}
