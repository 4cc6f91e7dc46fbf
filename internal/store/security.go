package store

import (
	"context"
	"time"
)

// Security event severities, lowest first.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Security incident statuses.
const (
	IncidentOpen     = "open"
	IncidentResolved = "resolved"
)

// SecurityReason is one reason of a risk score: a code and what it added
// to the score.
type SecurityReason struct {
	Code   string `json:"code"`
	Points int    `json:"points"`
}

// SecurityEvent is one security-relevant event (internal/security). Empty
// optional strings are stored as NULL.
type SecurityEvent struct {
	ID         string // "sev_…", chosen by the caller
	Type       string // "lockout", "credential_stuffing" …
	Severity   string // SeverityLow … SeverityCritical
	OccurredAt time.Time
	UserID     string // the account concerned
	// Account is the account a sign-in tried, for correlation: the user's
	// ID, or a keyed hash of a login name that has no account ("" when
	// the event is not about an attempt).
	Account string
	ActorID string // who acted, when not the user (an administrator)
	IP      string
	Country string // ISO 3166-1 alpha-2, when geolocation knows it
	City    string
	ASN     int64 // 0: unknown
	Device  string
	// Score is the risk score 0–100 when the event carries one (nil: none).
	Score   *int
	Reasons []SecurityReason
	// IncidentID is the incident correlation attached the event to ("" for
	// none).
	IncidentID string
	// Data is stored as a JSON object and decoded with encoding/json, so
	// numbers come back as float64. Nil is stored as {} and returned as an
	// empty map.
	Data map[string]any
}

// SecurityIncident groups correlated security events (internal/security).
type SecurityIncident struct {
	ID     string // "sinc_…", chosen by the caller
	Type   string // "credential_stuffing" …
	Status string // IncidentOpen or IncidentResolved
	// Key is what correlates the events: the IP, the device fingerprint
	// or the user ID, depending on Type.
	Key        string
	FirstSeen  time.Time
	LastSeen   time.Time
	IPs        []string // in the order first seen
	UserIDs    []string // in the order first seen
	EventCount int
	// Severity is the incident's (SeverityLow … SeverityCritical; empty is
	// stored as medium).
	Severity string
	// NotifiedAt is when administrators were last told of the incident
	// (zero: never), and Escalations how many times they were told again
	// because it stayed open.
	NotifiedAt  time.Time
	Escalations int
	ResolvedAt  time.Time // zero while open
	ResolvedBy  string    // the administrator who resolved it
	Note        string
}

// Security listing page sizes.
const (
	DefaultSecurityLimit = 50
	MaxSecurityLimit     = 200
)

// SecurityEventFilter selects security events. Empty fields do not filter.
type SecurityEventFilter struct {
	Type       string
	Severity   string
	UserID     string
	IP         string
	IncidentID string
	Since      time.Time // OccurredAt >= Since
	Until      time.Time // OccurredAt < Until
	// Cursor is the next-page cursor of a previous call with the same
	// filter; a foreign one is ErrInvalidCursor.
	Cursor string
	// Limit is the page size: DefaultSecurityLimit when <= 0, at most
	// MaxSecurityLimit.
	Limit int
}

// SecurityIncidentFilter selects security incidents. Empty fields do not
// filter.
type SecurityIncidentFilter struct {
	Status string
	Type   string
	Cursor string // as SecurityEventFilter.Cursor
	Limit  int    // as SecurityEventFilter.Limit
}

// SecurityField names a column of security events that correlation
// groups or counts by.
type SecurityField string

// The fields correlation uses.
const (
	SecurityFieldIP      SecurityField = "ip"
	SecurityFieldUserID  SecurityField = "user_id"
	SecurityFieldDevice  SecurityField = "device"
	SecurityFieldCountry SecurityField = "country"
	SecurityFieldAccount SecurityField = "account"
)

// SecurityEventMatch selects the recent events of one key for
// correlation: those of one of Types (every type when empty) whose Field
// is Value, that occurred at or after Since.
type SecurityEventMatch struct {
	Types []string
	Field SecurityField
	Value string
	Since time.Time
}

// SecurityStore keeps security events and incidents. Times are kept to
// the microsecond in UTC.
type SecurityStore interface {
	// CreateSecurityEvent stores ev (OccurredAt now when zero);
	// ErrConflict on a duplicate ID, ErrNotFound for an IncidentID that
	// does not exist.
	CreateSecurityEvent(ctx context.Context, ev SecurityEvent) error
	// ListSecurityEvents returns the events matching f, newest first (ties
	// broken by descending ID), and the cursor of the next page ("" on the
	// last).
	ListSecurityEvents(ctx context.Context, f SecurityEventFilter) ([]SecurityEvent, string, error)
	// DistinctSecurityEventValues returns up to limit distinct non-empty
	// values of field among the events m selects, in no particular order:
	// the accounts one IP failed against, the IPs one account was attacked
	// from. It reads the primary (inside InTx, the transaction).
	DistinctSecurityEventValues(ctx context.Context, m SecurityEventMatch, field SecurityField, limit int) ([]string, error)
	// AttachSecurityEvents sets the incident of the events m selects that
	// have none, and returns how many it changed; ErrNotFound for an
	// incident that does not exist.
	AttachSecurityEvents(ctx context.Context, incidentID string, m SecurityEventMatch) (int, error)

	// OpenSecurityIncident stores inc as a new open incident unless one of
	// the same Type and Key is open already: it returns the incident
	// stored and true, or the open one (locked until the end of the
	// transaction, inside InTx) and false. Concurrent calls open one.
	OpenSecurityIncident(ctx context.Context, inc SecurityIncident) (SecurityIncident, bool, error)
	// GetSecurityIncident returns the incident with this ID, or
	// ErrNotFound.
	GetSecurityIncident(ctx context.Context, id string) (SecurityIncident, error)
	// GetSecurityIncidentForUpdate is GetSecurityIncident that also locks
	// the row until the end of the transaction (inside InTx).
	GetSecurityIncidentForUpdate(ctx context.Context, id string) (SecurityIncident, error)
	// FindOpenSecurityIncident returns the open incident of this type and
	// key, locked until the end of the transaction (inside InTx), or
	// ErrNotFound.
	FindOpenSecurityIncident(ctx context.Context, typ, key string) (SecurityIncident, error)
	// UpdateSecurityIncident replaces every field of the incident with
	// inc.ID but Type, Key and FirstSeen, and returns it as stored;
	// ErrNotFound if absent, ErrConflict when reopening it would make two
	// open incidents of one type and key.
	UpdateSecurityIncident(ctx context.Context, inc SecurityIncident) (SecurityIncident, error)
	// ListSecurityIncidentsToEscalate returns up to limit open incidents
	// whose administrators were notified (NotifiedAt set) before before,
	// the longest ago first.
	ListSecurityIncidentsToEscalate(ctx context.Context, before time.Time, limit int) ([]SecurityIncident, error)
	// ListSecurityIncidents returns the incidents matching f, newest
	// FirstSeen first (ties broken by descending ID), and the cursor of
	// the next page ("" on the last).
	ListSecurityIncidents(ctx context.Context, f SecurityIncidentFilter) ([]SecurityIncident, string, error)
}
