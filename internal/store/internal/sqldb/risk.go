package sqldb

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func (t *Tables) scanRiskProfile(r sqlrow.Scanner) (store.RiskProfile, error) {
	return sqlrow.ScanRiskProfile(r, t.d.TimeDest)
}

// GetRiskProfile implements store.RiskProfileStore, reading the primary.
func (t *Tables) GetRiskProfile(ctx context.Context, userID string) (store.RiskProfile, error) {
	id, ok := sqlrow.ParseID(userID)
	if !ok {
		return store.RiskProfile{}, t.errorf("get risk profile of %q: %w", userID, store.ErrNotFound)
	}
	p, err := row(ctx, t, Primary, t.scanRiskProfile, "SELECT "+sqlrow.RiskProfileColumns+
		" FROM user_risk_profiles WHERE user_id = $1", id)
	if err != nil {
		return store.RiskProfile{}, t.errorf("get risk profile of %s: %w", id, t.d.MapErr(err))
	}
	return p, nil
}

// PutRiskProfile implements store.RiskProfileStore with one INSERT … ON
// CONFLICT DO UPDATE.
func (t *Tables) PutRiskProfile(ctx context.Context, p store.RiskProfile) error {
	p, ok, err := sqlrow.PrepareRiskProfile(p, t.now())
	if err != nil {
		return t.errorf("put risk profile: %w", err)
	}
	if !ok {
		return t.errorf("put risk profile of %q: %w", p.UserID, store.ErrNotFound)
	}
	_, err = t.x.Exec(ctx, `INSERT INTO user_risk_profiles (`+sqlrow.RiskProfileColumns+`) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at`,
		p.UserID, string(p.Profile), t.d.TimeValue(p.UpdatedAt))
	if err != nil {
		return t.errorf("put risk profile of %s: %w", p.UserID, t.d.MapRefErr(err))
	}
	return nil
}
