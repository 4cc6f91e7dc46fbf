// Package store is Gatehouse's storage contract. Each database backend
// (internal/store/postgres, internal/store/sqlite) implements it with its own
// SQL, and internal/store/storetest is the conformance suite every backend
// must pass.
//
// Rules of the contract:
//   - ctx first in every method; value types in and out.
//   - "Not found" is ErrNotFound, never (nil, nil); a unique-key clash is
//     ErrConflict. Backends wrap driver errors so callers can use errors.Is.
//   - A database that cannot be reached or cannot serve right now (refused
//     or lost connection, pool timeout, server shutting down or starting
//     up, too many connections) is ErrUnavailable, wrapping the driver's
//     error for the log. Callers must pass it on, never turn it into "not
//     found" or "wrong credentials": it answers 503 with Retry-After.
//   - Times are stored and returned in UTC with at least microsecond precision.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors every backend maps its driver errors to.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflict")
	// ErrInvalidCursor is returned (wrapped) for a pagination cursor the
	// backend did not hand out.
	ErrInvalidCursor = errors.New("store: invalid cursor")
	// ErrUnavailable is returned (wrapped, with the driver's error) when the
	// database is unreachable or refuses service for now: a retryable
	// outage, not a failed request.
	ErrUnavailable = errors.New("store: database unavailable")
	// ErrInvalidText is returned (wrapped) when the database refuses text
	// in a query: NUL or invalid UTF-8, which PostgreSQL cannot hold.
	// Request input is refused before it gets here (see httpapi.ValidText);
	// this is the last line of defence, so such input is never a 5xx.
	ErrInvalidText = errors.New("store: text is not valid UTF-8 without NUL")
)

// Dialect names.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// Store is what every backend implements. Domains do not take it whole:
// each declares the method sets it uses and an InTx over its own
// transaction type (see Narrow), so a domain touching another's tables
// shows in its type. Only the wiring, maintenance and the conformance
// suite hold a Store.
type Store interface {
	AuditLog
	Transactor
	UserStore
	OneTimeTokenStore
	SigningKeyStore
	SessionStore
	ClientStore
	APIStore
	MFAStore
	OrgStore
	IdentityStore
	RevocationStore
	WebhookStore
	RiskProfileStore
	SecurityStore
	AuthzStore
	APIKeyStore
	PasskeyStore

	// Dialect returns DialectPostgres or DialectSQLite.
	Dialect() string
	// Ping checks that the primary database answers.
	Ping(ctx context.Context) error
	// Migrator gives access to the versioned schema migrations.
	Migrator() Migrator
	// Stats reports connection pool figures for metrics.
	Stats() PoolStats
	// Close releases every connection.
	Close() error
}

// AuditLog is the append-only audit trail.
type AuditLog interface {
	// AppendAuditEvent stores e. An empty ID is replaced by a new UUIDv7, a
	// zero OccurredAt by the current time; times are kept to the microsecond
	// in UTC. Action is required. A duplicate ID is ErrConflict.
	AppendAuditEvent(ctx context.Context, e AuditEvent) error
	// ListAuditEvents returns the events matching f, newest first (ties
	// broken by descending ID), and the cursor of the next page, or "" on the
	// last page. A cursor the backend did not hand out is ErrInvalidCursor.
	// Backends may serve this from a read replica, so a just-appended event
	// can be missing for the length of the replication lag.
	ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, string, error)
}

// AuditEvent is one entry of the audit log. Empty optional strings are
// stored as NULL.
type AuditEvent struct {
	ID         string // UUID; generated (v7) when empty
	OccurredAt time.Time
	ActorID    string // who did it; empty for the system or an anonymous caller
	SubjectID  string // whom or what it was done to
	Action     string // e.g. "user.registered"
	IP         string
	UserAgent  string
	RequestID  string
	// Data is stored as a JSON object and decoded with encoding/json, so
	// numbers come back as float64. Nil is stored as {} and returned as an
	// empty map.
	Data      map[string]any
	CreatedAt time.Time // set by the database on insert; ignored on append
}

// Audit listing page sizes.
const (
	DefaultAuditLimit = 50
	MaxAuditLimit     = 200
)

// AuditFilter selects audit events. Empty fields do not filter.
type AuditFilter struct {
	SubjectID string
	ActorID   string
	// Cursor is the next-page cursor of a previous call with the same filter.
	Cursor string
	// Limit is the page size: DefaultAuditLimit when <= 0, at most
	// MaxAuditLimit.
	Limit int
}

// Migrator applies the embedded, versioned migrations of one dialect.
type Migrator interface {
	// Up applies every pending migration in order, each in its own
	// transaction, and returns those it applied. Concurrent callers (several
	// nodes starting at once) are serialised.
	Up(ctx context.Context) ([]Migration, error)
	// Down rolls back the most recently applied migration and returns it.
	// With nothing applied it returns ErrNotFound.
	Down(ctx context.Context) (Migration, error)
	// Status lists every known migration, applied or not, in order.
	Status(ctx context.Context) ([]Migration, error)
}

// Migration describes one versioned migration.
type Migration struct {
	Version   int
	Name      string
	Applied   bool
	AppliedAt time.Time // zero when not applied
	// Unknown marks a version recorded as applied in the database but absent
	// from this binary: a newer release applied it during a rolling deploy.
	// Up and Status leave it alone; Down refuses to roll it back.
	Unknown bool
}

// PoolStats are connection pool figures exported as metrics.
type PoolStats struct {
	MaxOpen      int
	Open         int
	InUse        int
	Idle         int
	WaitCount    int64
	WaitDuration time.Duration
}
