package user

import (
	"context"
	"errors"
	"testing"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/store"
)

// errRefused is a subscriber's refusal of a change.
var errRefused = errors.New("subscriber refused")

// TestRegisterPublishesUserRegistered checks that sign-up publishes
// event.UserRegistered inside its transaction: a subscriber sees the new
// account and can write beside it, and a subscriber's error undoes the
// sign-up, its audit event and its email.
func TestRegisterPublishesUserRegistered(t *testing.T) {
	ctx := context.Background()
	bus := event.NewBus()
	var seen []event.UserRegistered
	refuse := false
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.UserRegistered) error {
		if refuse {
			return errRefused
		}
		seen = append(seen, e)
		// What a subscriber records commits with the change.
		return tx.AppendAuditEvent(ctx, store.AuditEvent{SubjectID: e.User.ID, Action: "test.saw_registration"})
	})
	s, _, _, _ := newTestServiceOn(t, bus)

	if _, err := s.Register(ctx, "ivy@example.com", pw, "Ivy", httpapi.Meta{IP: "192.0.2.7", RequestID: "req-1"}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].User.Email != "ivy@example.com" || seen[0].User.ID == "" || seen[0].Meta.RequestID != "req-1" {
		t.Fatalf("UserRegistered events = %+v, want one for ivy with the request", seen)
	}
	events, _, err := s.Store.ListAuditEvents(ctx, store.AuditFilter{SubjectID: seen[0].User.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !hasAction(events, "test.saw_registration") || !hasAction(events, "user.registered") {
		t.Errorf("audit events %+v, want the subscriber's and the sign-up's", events)
	}

	refuse = true
	if _, err := s.Register(ctx, "jay@example.com", pw, "Jay", httpapi.Meta{IP: "192.0.2.7"}); !errors.Is(err, errRefused) {
		t.Fatalf("Register with a refusing subscriber: err = %v, want it", err)
	}
	if _, err := s.Store.GetUserByEmail(ctx, "jay@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused account exists: err = %v", err)
	}
}

// TestPasswordChangesPublishPasswordChanged checks that a password change
// and a reset publish event.PasswordChanged in their transactions, and
// that a subscriber's error keeps the old password.
func TestPasswordChangesPublishPasswordChanged(t *testing.T) {
	ctx := context.Background()
	bus := event.NewBus()
	var seen []event.PasswordChanged
	refuse := false
	event.Subscribe(bus, func(_ context.Context, _ event.Tx, e event.PasswordChanged) error {
		if refuse {
			return errRefused
		}
		seen = append(seen, e)
		return nil
	})
	s, jobs, _, kr := newTestServiceOn(t, bus)
	if _, err := s.Register(ctx, "kim@example.com", pw, "Kim", httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	u, err := s.Store.GetUserByEmail(ctx, "kim@example.com")
	if err != nil {
		t.Fatal(err)
	}
	const next = "a new and different passphrase 9"
	if err := s.ChangePassword(ctx, u.ID, "", pw, next, httpapi.Meta{RequestID: "req-2"}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].UserID != u.ID || seen[0].Reset || seen[0].Meta.RequestID != "req-2" {
		t.Fatalf("after a change: events %+v, want one change by kim", seen)
	}
	if err := s.ForgotPassword(ctx, "kim@example.com", httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	jobs.work(t)
	if err := s.ResetPassword(ctx, jobs.token(t, kr, mail.PasswordReset, "kim@example.com"), pw, httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[1].UserID != u.ID || !seen[1].Reset {
		t.Fatalf("after a reset: events %+v, want a second one, a reset", seen)
	}

	refuse = true
	before, err := s.Store.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ChangePassword(ctx, u.ID, "", pw, next, httpapi.Meta{}); !errors.Is(err, errRefused) {
		t.Fatalf("ChangePassword with a refusing subscriber: err = %v, want it", err)
	}
	after, err := s.Store.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.PasswordHash != before.PasswordHash {
		t.Error("a refused password change was kept")
	}
}

func hasAction(events []store.AuditEvent, action string) bool {
	for _, e := range events {
		if e.Action == action {
			return true
		}
	}
	return false
}
