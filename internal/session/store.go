package session

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Tables are the tables sign-in reads and writes: users (credentials,
// status, last login), sessions and refresh tokens, the audit log, the
// revocation state and the "this wasn't me" links (one-time tokens of
// purpose not_me).
type Tables interface {
	store.UserStore
	store.SessionStore
	store.AuditLog
	store.RevocationStore
	store.OneTimeTokenStore
}

// Tx is the store inside one of sign-in's transactions.
type Tx interface {
	Tables
	// DriverTx is the driver's transaction, for jobs enqueued with it.
	DriverTx() any
	// Publish runs the subscribers of e in this transaction (see
	// package event); an error must roll the transaction back.
	Publish(ctx context.Context, e event.Event) error
}

// Store is the storage sign-in needs (see store.Narrow).
type Store interface {
	Tables
	InTx(ctx context.Context, fn func(Tx) error) error
	// Listens reports whether anything subscribed to events like e.
	Listens(e event.Event) bool
}

// AuditTx is the part of a transaction that records a security event and
// enqueues its email (see RecordLock).
type AuditTx interface {
	store.AuditLog
	DriverTx() any
	Publish(ctx context.Context, e event.Event) error
}
