// Package event is how a change in one domain reaches the others: typed
// events, published by the domain inside the transaction of the change,
// and handlers subscribed in one visible place (internal/app/events.go).
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
	handlers map[reflect.Type][]func(ctx context.Context, tx Tx, e Event) error
}

// NewBus returns a bus without subscribers.
func NewBus() *Bus {
	return &Bus{handlers: map[reflect.Type][]func(context.Context, Tx, Event) error{}}
}

// Subscribe adds h to the handlers of events of type E.
func Subscribe[E Event](b *Bus, h Handler[E]) {
	t := reflect.TypeFor[E]()
	b.handlers[t] = append(b.handlers[t], func(ctx context.Context, tx Tx, e Event) error {
		return h(ctx, tx, e.(E))
	})
}

// Listens reports whether anything subscribed to events of e's type, so
// that a hot path can skip a transaction nobody would see.
func (b *Bus) Listens(e Event) bool {
	return b != nil && len(b.handlers[reflect.TypeOf(e)]) > 0
}

func (b *Bus) dispatch(ctx context.Context, tx Tx, e Event) error {
	if b == nil {
		return nil
	}
	for _, h := range b.handlers[reflect.TypeOf(e)] {
		if err := h(ctx, tx, e); err != nil {
			return fmt.Errorf("event %s: %w", e.EventName(), err)
		}
	}
	return nil
}

// Bind returns the transaction's store tx with Publish: what a domain's
// Tx is made of (see Narrow).
func (b *Bus) Bind(tx store.Store) Tx { return Tx{Store: tx, bus: b} }

// PublishInTx publishes e in a transaction of its own on st, for a
// reaction that happens outside any change of the database (a job that
// failed, say). Without subscribers it opens no transaction.
func (b *Bus) PublishInTx(ctx context.Context, st store.Store, e Event) error {
	if !b.Listens(e) {
		return nil
	}
	return st.InTx(ctx, func(tx store.Store) error { return b.Bind(tx).Publish(ctx, e) })
}

// Tx is the store of a transaction that can publish events into it.
// Handlers get it; a domain sees it through its own narrow Tx interface.
type Tx struct {
	store.Store
	bus *Bus
}

// Publish runs the handlers of e in this transaction; the first error is
// returned, and the caller must then roll back (return it from InTx).
func (t Tx) Publish(ctx context.Context, e Event) error { return t.bus.dispatch(ctx, t, e) }

// Store is a full store narrowed to a domain's transaction type T (see
// store.Narrow), whose transactions can publish on the bus.
type Store[T any] struct {
	store.Narrowed[T]
	bus *Bus
}

// Narrow wraps s for a domain: InTx hands its callback as(tx), the
// transaction's store bound to b. as is the identity conversion to the
// domain's Tx, checked by the compiler. b may be nil (no subscribers).
func Narrow[T any](s store.Store, b *Bus, as func(Tx) T) Store[T] {
	return Store[T]{Narrowed: store.Narrow(s, func(tx store.Store) T { return as(b.Bind(tx)) }), bus: b}
}

// Listens reports whether anything subscribed to events of e's type.
func (s Store[T]) Listens(e Event) bool { return s.bus.Listens(e) }
