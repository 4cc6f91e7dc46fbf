package user

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Tables are the tables the account use cases read and write: users,
// their one-time tokens (verification, reset, email change) and the
// audit log.
type Tables interface {
	store.UserStore
	store.OneTimeTokenStore
	store.AuditLog
}

// Tx is the store inside one of the account use cases' transactions.
type Tx interface {
	Tables
	// DriverTx is the driver's transaction, for jobs enqueued with it.
	DriverTx() any
	// Publish runs the subscribers of e in this transaction (see
	// package event); an error must roll the transaction back.
	Publish(ctx context.Context, e event.Event) error
}

// Store is the storage the account use cases need (see store.Narrow).
type Store interface {
	Tables
	InTx(ctx context.Context, fn func(Tx) error) error
	// Listens reports whether anything subscribed to events like e.
	Listens(e event.Event) bool
}
