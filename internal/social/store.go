package social

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Tables are the tables social sign-in reads and writes: external
// identities, the accounts they sign in to and the audit log.
type Tables interface {
	store.IdentityStore
	store.UserStore
	store.AuditLog
}

// Tx is the store inside one of social sign-in's transactions. Claiming
// an unverified account (see claimUnverified) clears what its squatter
// set up, so it reaches into other domains' tables: second factors,
// pending email changes and sessions, each named here.
type Tx interface {
	Tables
	ListMFADevices(ctx context.Context, userID string) ([]store.MFADevice, error)
	DeleteMFADevice(ctx context.Context, userID, id string) error
	ListPasskeys(ctx context.Context, userID string) ([]store.Passkey, error)
	DeletePasskey(ctx context.Context, userID, id string) error
	ReplaceBackupCodes(ctx context.Context, userID string, hashes []string, now time.Time) error
	DeleteUserOneTimeTokens(ctx context.Context, userID string, purpose store.TokenPurpose) error
	RevokeUserSessions(ctx context.Context, userID, except, reason string, now time.Time) ([]string, error)
	// DriverTx is the driver's transaction, for jobs enqueued with it.
	DriverTx() any
	// AfterCommit leaves fn to run once the transaction committed.
	AfterCommit(fn func(ctx context.Context))
	// Publish runs the subscribers of e in this transaction (see
	// package event); an error must roll the transaction back.
	Publish(ctx context.Context, e event.Event) error
}

// Store is the storage social sign-in needs (see store.Narrow).
type Store interface {
	Tables
	InTx(ctx context.Context, fn func(Tx) error) error
	// Listens reports whether anything subscribed to events like e.
	Listens(e event.Event) bool
}
