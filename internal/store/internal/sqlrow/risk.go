package sqlrow

import (
	"bytes"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// RiskProfileColumns is the column list ScanRiskProfile expects, in order.
const RiskProfileColumns = "user_id, profile, updated_at"

// ScanRiskProfile scans one row selected with RiskProfileColumns.
func ScanRiskProfile(s Scanner, td TimeDest) (store.RiskProfile, error) {
	var (
		p    store.RiskProfile
		data []byte
	)
	if err := s.Scan(&p.UserID, &data, td(&p.UpdatedAt)); err != nil {
		return store.RiskProfile{}, err
	}
	p.Profile = bytes.Clone(data) // a driver may reuse its buffer
	utc(&p.UpdatedAt)
	return p, nil
}

// PrepareRiskProfile validates p for PutRiskProfile and returns the user
// ID in canonical form; ok is false for an ID that names no user. A zero
// UpdatedAt is now.
func PrepareRiskProfile(p store.RiskProfile, now time.Time) (_ store.RiskProfile, ok bool, _ error) {
	if !jsonObject(p.Profile) {
		return p, true, errors.New("risk profile: Profile must be a JSON object in UTF-8 without NUL")
	}
	id, ok := ParseID(p.UserID)
	if !ok {
		return p, false, nil
	}
	p.UserID = id
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = now
	}
	return p, true, nil
}
