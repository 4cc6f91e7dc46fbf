package sqldb

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// The revocation reads and the purge. Raising the kill-switch time and
// adding a denial keep the larger time with each engine's own function
// (GREATEST, max), so they stay in the backends.

// RevocationEpoch implements store.RevocationStore. It reads the primary.
func (t *Tables) RevocationEpoch(ctx context.Context) (string, error) {
	var epoch string
	err := t.x.Row(ctx, Primary, `SELECT epoch FROM revocation_state WHERE id = 1`).Scan(&epoch)
	if err != nil {
		return "", t.errorf("revocation epoch: %w", t.d.MapErr(err))
	}
	return epoch, nil
}

// RevokeBefore implements store.RevocationStore. It reads the primary: a
// lagging replica would hide a kill switch just set.
func (t *Tables) RevokeBefore(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := t.x.Row(ctx, Primary, `SELECT revoke_before FROM revocation_state WHERE id = 1`).Scan(t.d.NullTimeDest(&at))
	if err != nil {
		return time.Time{}, t.errorf("kill-switch time: %w", t.d.MapErr(err))
	}
	return at, nil
}

// ListDenials implements store.RevocationStore. It reads the primary with
// two queries (a row missed by one because it was written between the two
// is in the kv cache already, as every revocation writes here before it
// writes there).
func (t *Tables) ListDenials(ctx context.Context, now time.Time, window time.Duration) ([]store.Denial, error) {
	var recorded []store.Denial
	err := t.x.Rows(ctx, Primary, `SELECT kind, id, until FROM access_denials WHERE until > $1`, []any{t.d.TimeValue(now)},
		func(r sqlrow.Scanner) error {
			var d store.Denial
			if err := r.Scan(&d.Kind, &d.ID, t.d.TimeDest(&d.Until)); err != nil {
				return err
			}
			recorded = append(recorded, d)
			return nil
		})
	if err != nil {
		return nil, t.errorf("list denials: %w", t.d.MapErr(err))
	}
	revoked := map[string]time.Time{}
	err = t.x.Rows(ctx, Primary, `SELECT id, revoked_at FROM sessions WHERE revoked_at > $1`, []any{t.d.TimeValue(now.Add(-window))},
		func(r sqlrow.Scanner) error {
			var id string
			var at time.Time
			if err := r.Scan(&id, t.d.TimeDest(&at)); err != nil {
				return err
			}
			revoked[id] = at
			return nil
		})
	if err != nil {
		return nil, t.errorf("list denials: %w", t.d.MapErr(err))
	}
	return sqlrow.MergeDenials(recorded, revoked, window, now), nil
}

// PurgeDenials implements store.RevocationStore.
func (t *Tables) PurgeDenials(ctx context.Context, before time.Time) (int64, error) {
	n, err := t.x.Exec(ctx, `DELETE FROM access_denials WHERE until < $1`, t.d.TimeValue(before))
	if err != nil {
		return 0, t.errorf("purge denials: %w", t.d.MapErr(err))
	}
	return n, nil
}
