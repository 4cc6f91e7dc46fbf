package store

import "context"

// Narrowed is a full Store seen through a domain's narrow store: every
// method of the backend, and an InTx whose callback gets the domain's own
// transaction type T instead of the whole Store. A domain declares
//
//	type Tx interface { store.UserStore; store.AuditLog; DriverTx() any }
//	type Store interface { store.UserStore; store.AuditLog; InTx(ctx, func(Tx) error) error }
//
// and the wiring hands it Narrow(full, func(tx store.Store) Tx { return tx }):
// the conversion is checked by the compiler, so a method the domain needs
// and the backends lack fails the build, not a run.
type Narrowed[T any] struct {
	Store
	as func(Store) T
}

// Narrow wraps s so that InTx hands its callback as(tx). as is usually
// the identity conversion to T; it may wrap the transaction's store (to
// publish events into the same transaction, say).
func Narrow[T any](s Store, as func(Store) T) Narrowed[T] {
	return Narrowed[T]{Store: s, as: as}
}

// InTx runs fn in a transaction of the underlying store with the
// transaction's store seen as T. It shadows Store.InTx.
func (n Narrowed[T]) InTx(ctx context.Context, fn func(T) error) error {
	return n.Store.InTx(ctx, func(tx Store) error { return fn(n.as(tx)) })
}
