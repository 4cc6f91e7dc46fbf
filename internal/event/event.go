// Package event is how a change in one domain reaches the others: typed
// events, published by the domain inside the transaction of the change,
// and handlers subscribed in one visible place (internal/app/services.go).
//
// A handler runs in the publisher's transaction and gets its store, so
// what it records (an audit row, a job, a webhook delivery) commits or
// rolls back with the change, and a handler's error aborts the change.
// Handlers run in the order they were subscribed; the first error stops
// the others.
package event

import (
	"context"
	"fmt"
	"reflect"

	"github.com/gatehouse/gatehouse/internal/store"
)

// Event is something that happened, named in the past tense.
type Event interface {
	// EventName is the event's stable name, e.g. "user.registered".
	EventName() string
}

// Handler reacts to an event of type E inside the transaction tx that
// published it.
type Handler[E Event] func(ctx context.Context, tx Tx, e E) error

// Bus dispatches events to their subscribers. Subscribe everything while
// wiring, before the first Publish; a nil *Bus has no subscribers.
type Bus struct {
	// handlers in the order they were subscribed; a nil t takes every
	// event (SubscribeAll).
	handlers []subscription
}

type subscription struct {
	t reflect.Type
	h func(ctx context.Context, tx Tx, e Event) error
}

// NewBus returns a bus without subscribers.
func NewBus() *Bus { return &Bus{} }

// Subscribe adds h to the handlers of events of type E.
func Subscribe[E Event](b *Bus, h Handler[E]) {
	b.handlers = append(b.handlers, subscription{t: reflect.TypeFor[E](), h: func(ctx context.Context, tx Tx, e Event) error {
		return h(ctx, tx, e.(E))
	}})
}

// SubscribeAll adds h to the handlers of every event, of every type
// (what records each event whatever it is, such as the webhook outbox).
// It runs in turn with the handlers of each type, in the order of
// subscription.
func SubscribeAll(b *Bus, h func(ctx context.Context, tx Tx, e Event) error) {
	b.handlers = append(b.handlers, subscription{h: h})
}

// Listens reports whether anything subscribed to events of e's type (or
// to every event), so that a hot path can skip a transaction nobody would
// see.
func (b *Bus) Listens(e Event) bool {
	if b == nil {
		return false
	}
	t := reflect.TypeOf(e)
	for _, s := range b.handlers {
		if s.t == nil || s.t == t {
			return true
		}
	}
	return false
}

func (b *Bus) dispatch(ctx context.Context, tx Tx, e Event) error {
	if b == nil {
		return nil
	}
	t := reflect.TypeOf(e)
	for _, s := range b.handlers {
		if s.t != nil && s.t != t {
			continue
		}
		if err := s.h(ctx, tx, e); err != nil {
			return fmt.Errorf("event %s: %w", e.EventName(), err)
		}
	}
	return nil
}

// inTx runs fn in a transaction of st whose store publishes on b, then,
// once it committed, what fn left for after the commit (Tx.AfterCommit).
func (b *Bus) inTx(ctx context.Context, st store.Store, fn func(Tx) error) error {
	var after []func(context.Context)
	err := st.InTx(ctx, func(tx store.Store) error { return fn(Tx{Store: tx, bus: b, after: &after}) })
	if err != nil {
		return err
	}
	for _, f := range after {
		f(ctx)
	}
	return nil
}

// PublishInTx publishes e in a transaction of its own on st, for a
// reaction that happens outside any change of the database (a job that
// failed, say). Without subscribers it opens no transaction.
func (b *Bus) PublishInTx(ctx context.Context, st store.Store, e Event) error {
	if !b.Listens(e) {
		return nil
	}
	return b.inTx(ctx, st, func(tx Tx) error { return tx.Publish(ctx, e) })
}

// Tx is the store of a transaction that can publish events into it.
// Handlers get it; a domain sees it through its own narrow Tx interface.
type Tx struct {
	store.Store
	bus   *Bus
	after *[]func(context.Context)
}

// Publish runs the handlers of e in this transaction; the first error is
// returned, and the caller must then roll back (return it from InTx).
func (t Tx) Publish(ctx context.Context, e Event) error { return t.bus.dispatch(ctx, t, e) }

// AfterCommit leaves fn to run once the transaction committed (not at all
// if it rolls back), for work that must not hold the transaction open: a
// wait, a call to another system, a change in a transaction of its own.
// fn gets the context InTx was called with; it reports its own errors.
func (t Tx) AfterCommit(fn func(ctx context.Context)) { *t.after = append(*t.after, fn) }

// Store is a full store narrowed to a domain's transaction type T (as
// store.Narrow does), whose transactions can publish on the bus.
type Store[T any] struct {
	store.Store
	bus *Bus
	as  func(Tx) T
}

// Narrow wraps s for a domain: InTx hands its callback as(tx), the
// transaction's store bound to b. as is the identity conversion to the
// domain's Tx, checked by the compiler. b may be nil (no subscribers).
func Narrow[T any](s store.Store, b *Bus, as func(Tx) T) Store[T] {
	return Store[T]{Store: s, bus: b, as: as}
}

// InTx runs fn in a transaction whose store, seen as T, publishes on the
// bus; what fn left for after the commit runs once it committed. It
// shadows store.Store's InTx.
func (s Store[T]) InTx(ctx context.Context, fn func(T) error) error {
	return s.bus.inTx(ctx, s.Store, func(tx Tx) error { return fn(s.as(tx)) })
}

// Listens reports whether anything subscribed to events of e's type.
func (s Store[T]) Listens(e Event) bool { return s.bus.Listens(e) }
