package store

import (
	"context"
	"time"
)

// RiskProfile is a user's behavioural model for risk scoring
// (internal/risk.Profile), kept as the JSON document that package writes.
type RiskProfile struct {
	UserID string
	// Profile is a JSON object, returned as stored (byte for byte on
	// both backends).
	Profile   []byte
	UpdatedAt time.Time // now when zero on Put
}

// RiskProfileStore keeps one risk profile per user. A profile goes with
// its user when the user row is deleted.
type RiskProfileStore interface {
	// GetRiskProfile returns the user's profile, reading the primary;
	// ErrNotFound when none was stored (a user without history) or the
	// user does not exist.
	GetRiskProfile(ctx context.Context, userID string) (RiskProfile, error)
	// PutRiskProfile stores p, replacing the user's previous profile (an
	// upsert). Profile must be a JSON object; a user that does not exist
	// is ErrNotFound.
	PutRiskProfile(ctx context.Context, p RiskProfile) error
}
