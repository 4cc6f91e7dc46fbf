package event_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// backends opens a migrated store of each kind.
var backends = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"sqlite", func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrator().Up(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// accountsTx is what a domain's transaction type looks like.
type accountsTx interface {
	store.UserStore
	store.AuditLog
	Publish(ctx context.Context, e event.Event) error
}

var errRefused = errors.New("refused")

// register creates an account and publishes its event in one
// transaction, as a domain does.
func register(ctx context.Context, st event.Store[accountsTx], email string) (store.User, error) {
	var u store.User
	err := st.InTx(ctx, func(tx accountsTx) error {
		var err error
		if u, err = tx.CreateUser(ctx, store.User{Email: email, EmailNormalized: email}); err != nil {
			return err
		}
		return tx.Publish(ctx, event.UserRegistered{User: u})
	})
	return u, err
}

func TestEventsCommitAndRollBackWithTheChange(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			full := b.open(t)
			bus := event.NewBus()
			var order []string
			refuse := false
			event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.UserRegistered) error {
				order = append(order, "audit")
				return tx.AppendAuditEvent(ctx, store.AuditEvent{SubjectID: e.User.ID, Action: "test.registered"})
			})
			event.Subscribe(bus, func(_ context.Context, _ event.Tx, _ event.UserRegistered) error {
				order = append(order, "second")
				if refuse {
					return errRefused
				}
				return nil
			})
			third := 0
			event.Subscribe(bus, func(context.Context, event.Tx, event.UserRegistered) error {
				third++
				return nil
			})
			st := event.Narrow(full, bus, func(tx event.Tx) accountsTx { return tx })
			if !st.Listens(event.UserRegistered{}) || st.Listens(event.PasswordChanged{}) {
				t.Fatal("Listens does not match the subscriptions")
			}

			// A subscriber sees the event, and what it writes commits with
			// the change.
			u, err := register(ctx, st, "ann@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if len(order) != 2 || order[0] != "audit" || order[1] != "second" || third != 1 {
				t.Fatalf("handlers ran %v (third %d times), want audit, second, third in turn", order, third)
			}
			evs, _, err := full.ListAuditEvents(ctx, store.AuditFilter{SubjectID: u.ID})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Action != "test.registered" {
				t.Fatalf("audit after a published change = %+v, want the subscriber's event", evs)
			}

			// A subscriber's error rolls the change back, with what the
			// subscribers before it wrote; later subscribers do not run.
			refuse, order = true, nil
			_, err = register(ctx, st, "bo@example.com")
			if !errors.Is(err, errRefused) {
				t.Fatalf("refused change: err = %v, want the subscriber's error", err)
			}
			if third != 1 {
				t.Errorf("a handler after the refusing one ran")
			}
			if _, err := full.GetUserByEmail(ctx, "bo@example.com"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the refused change was kept: err = %v", err)
			}
			all, _, err := full.ListAuditEvents(ctx, store.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1 {
				t.Errorf("audit after a refused change has %d events, want only the first change's", len(all))
			}
		})
	}
}

func TestPublishInTx(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			full := b.open(t)
			bus := event.NewBus()
			// Nothing listens: nothing happens.
			if err := bus.PublishInTx(ctx, full, event.SecondFactorVerified{UserID: "u1"}); err != nil {
				t.Fatalf("PublishInTx without subscribers: %v", err)
			}
			fail := false
			event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.SecondFactorVerified) error {
				if err := tx.AppendAuditEvent(ctx, store.AuditEvent{SubjectID: e.UserID, Action: "test.verified"}); err != nil {
					return err
				}
				if fail {
					return errRefused
				}
				return nil
			})
			if err := bus.PublishInTx(ctx, full, event.SecondFactorVerified{UserID: "u1"}); err != nil {
				t.Fatal(err)
			}
			fail = true
			if err := bus.PublishInTx(ctx, full, event.SecondFactorVerified{UserID: "u2"}); !errors.Is(err, errRefused) {
				t.Fatalf("PublishInTx with a failing subscriber: err = %v, want its error", err)
			}
			for id, want := range map[string]int{"u1": 1, "u2": 0} {
				evs, _, err := full.ListAuditEvents(ctx, store.AuditFilter{SubjectID: id})
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) != want {
					t.Errorf("audit events of %s = %d, want %d", id, len(evs), want)
				}
			}
		})
	}
}

// A nil bus has no subscribers: domains built without one (tests, the
// CLI) publish into nothing.
func TestNilBus(t *testing.T) {
	var bus *event.Bus
	if bus.Listens(event.UserRegistered{}) {
		t.Error("a nil bus listens")
	}
	if err := (event.Tx{}).Publish(context.Background(), event.UserRegistered{}); err != nil {
		t.Errorf("Publish on a nil bus: %v", err)
	}
}

// TestAfterCommit checks that work a handler leaves for after the commit
// runs once the change committed, sees it from outside the transaction,
// and does not run at all when the change rolls back.
func TestAfterCommit(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			full := b.open(t)
			bus := event.NewBus()
			var ran []string
			event.Subscribe(bus, func(_ context.Context, tx event.Tx, e event.UserRegistered) error {
				tx.AfterCommit(func(ctx context.Context) {
					// Outside the transaction: only a committed change is
					// visible, and a write does not wait for its lock.
					if _, err := full.GetUser(ctx, e.User.ID); err != nil {
						t.Errorf("after the commit, the change is not visible: %v", err)
					}
					if err := full.AppendAuditEvent(ctx, store.AuditEvent{SubjectID: e.User.ID, Action: "test.after"}); err != nil {
						t.Errorf("a write after the commit: %v", err)
					}
					ran = append(ran, e.User.Email)
				})
				if e.User.Email == "refused@example.com" {
					return errRefused
				}
				return nil
			})
			st := event.Narrow(full, bus, func(tx event.Tx) accountsTx { return tx })
			if _, err := register(ctx, st, "kept@example.com"); err != nil {
				t.Fatal(err)
			}
			if _, err := register(ctx, st, "refused@example.com"); !errors.Is(err, errRefused) {
				t.Fatalf("refused change: err = %v", err)
			}
			if len(ran) != 1 || ran[0] != "kept@example.com" {
				t.Errorf("after-commit work ran for %v, want the committed change only", ran)
			}
		})
	}
}

// TestSubscribeAll checks that a handler subscribed to every event sees
// events of every type, in turn with the handlers of each type in the
// order of subscription, in the publisher's transaction (its error rolls
// the change back), and that Listens then answers for every type.
func TestSubscribeAll(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			full := b.open(t)
			bus := event.NewBus()
			if bus.Listens(event.UserRegistered{}) || bus.Listens(event.SessionsRevoked{}) {
				t.Fatal("a bus without subscribers listens")
			}
			var order []string
			event.Subscribe(bus, func(context.Context, event.Tx, event.UserRegistered) error {
				order = append(order, "typed before")
				return nil
			})
			if bus.Listens(event.SessionsRevoked{}) {
				t.Fatal("Listens answers for a type nobody subscribed to")
			}
			var all []event.Event
			refuse := false
			event.SubscribeAll(bus, func(ctx context.Context, tx event.Tx, e event.Event) error {
				order = append(order, "all")
				all = append(all, e)
				if refuse {
					return errRefused
				}
				return tx.AppendAuditEvent(ctx, store.AuditEvent{Action: "test.all." + e.EventName()})
			})
			event.Subscribe(bus, func(context.Context, event.Tx, event.UserRegistered) error {
				order = append(order, "typed after")
				return nil
			})
			for _, e := range []event.Event{event.UserRegistered{}, event.SessionsRevoked{}, event.OrganizationMemberAdded{}} {
				if !bus.Listens(e) {
					t.Errorf("Listens(%T) = false with a handler of every event", e)
				}
			}

			st := event.Narrow(full, bus, func(tx event.Tx) accountsTx { return tx })
			u, err := register(ctx, st, "ann@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"typed before", "all", "typed after"}; !slices.Equal(order, want) {
				t.Errorf("handlers ran %v, want %v", order, want)
			}
			revoked := event.SessionsRevoked{UserID: u.ID, SessionIDs: []string{"s1"}, Reason: "logout"}
			if err := bus.PublishInTx(ctx, full, revoked); err != nil {
				t.Fatal(err)
			}
			if len(all) != 2 || all[0].(event.UserRegistered).User.ID != u.ID || all[1].(event.SessionsRevoked).Reason != "logout" {
				t.Fatalf("the handler of every event saw %+v, want the registration then the revocation", all)
			}
			evs, _, err := full.ListAuditEvents(ctx, store.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, e := range evs {
				got[e.Action] = true
			}
			if !got["test.all.user.registered"] || !got["test.all.session.revoked"] {
				t.Errorf("audit %v, want what the handler of every event wrote for both", got)
			}

			// Its error rolls the change back, and the handlers after it
			// do not run.
			refuse, order = true, nil
			if _, err := register(ctx, st, "bo@example.com"); !errors.Is(err, errRefused) {
				t.Fatalf("refused change: err = %v, want the handler's error", err)
			}
			if want := []string{"typed before", "all"}; !slices.Equal(order, want) {
				t.Errorf("handlers ran %v, want %v", order, want)
			}
			if _, err := full.GetUserByEmail(ctx, "bo@example.com"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the refused change was kept: err = %v", err)
			}
		})
	}
}
