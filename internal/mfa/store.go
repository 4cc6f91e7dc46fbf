package mfa

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Tables are the tables MFA reads and writes: second factors and codes,
// the audit log, and (read only) the account and the policies of its
// organisations.
type Tables interface {
	store.MFAStore
	store.AuditLog
	GetUser(ctx context.Context, id string) (store.User, error)
	UserOrganizations(ctx context.Context, userID string) ([]store.Organization, error)
}

// Tx is the store inside one of MFA's transactions.
type Tx interface {
	Tables
	// DriverTx is the driver's transaction, for jobs enqueued with it.
	DriverTx() any
	// Publish runs the subscribers of e in this transaction (see
	// package event); an error must roll the transaction back.
	Publish(ctx context.Context, e event.Event) error
	// AfterCommit leaves fn to run once the transaction committed.
	AfterCommit(fn func(ctx context.Context))
}

// Store is the storage MFA needs (see store.Narrow).
type Store interface {
	Tables
	InTx(ctx context.Context, fn func(Tx) error) error
	// Listens reports whether anything subscribed to events like e.
	Listens(e event.Event) bool
}
