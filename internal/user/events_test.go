package user

import (
	"context"
	"errors"
	"slices"
	"strings"
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

// seen subscribes to E on bus and returns what it saw.
func seen[E event.Event](bus *event.Bus) *[]E {
	var got []E
	event.Subscribe(bus, func(_ context.Context, _ event.Tx, e E) error {
		got = append(got, e)
		return nil
	})
	return &got
}

// TestAccountChangesPublishTheirEvents checks the events of the other
// account changes, each published in its transaction: an account created
// by an operator or an import, a profile update (the changed fields by
// name), an email verified (by its link, by the link of an address
// change, by a reset link) — and that what changed nothing publishes
// nothing.
func TestAccountChangesPublishTheirEvents(t *testing.T) {
	ctx := context.Background()
	bus := event.NewBus()
	created := seen[event.UserCreated](bus)
	updated := seen[event.UserUpdated](bus)
	verified := seen[event.EmailVerified](bus)
	s, jobs, clk, kr := newTestServiceOn(t, bus)

	// Created by an operator, and by an import.
	op, err := s.Create(ctx, NewUser{Email: "op@example.com", Password: pw, Verified: true}, httpapi.Meta{UserAgent: "gatehouse-cli"})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := s.Hasher.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Import(ctx, strings.NewReader(`{"email":"imp@example.com","password_hash":"`+hash+`"}`+"\n"), httpapi.Meta{})
	if err != nil || res.Imported != 1 {
		t.Fatalf("import = %+v, %v", res, err)
	}
	if len(*created) != 2 || (*created)[0].User.ID != op.ID || (*created)[0].Via != event.CreatedByAdmin ||
		(*created)[1].User.Email != "imp@example.com" || (*created)[1].Via != event.CreatedByImport {
		t.Fatalf("UserCreated events %+v, want the operator's then the import's", *created)
	}

	// Sign-up, then the verification link.
	if _, err := s.Register(ctx, "liz@example.com", pw, "Liz", httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	liz, err := s.VerifyEmail(ctx, jobs.token(t, kr, mail.VerifyEmail, "liz@example.com"), httpapi.Meta{IP: "192.0.2.9"})
	if err != nil {
		t.Fatal(err)
	}
	if v := *verified; len(v) != 1 || v[0].UserID != liz.ID || v[0].Email != "liz@example.com" || v[0].Via != event.VerifiedByLink || v[0].Meta.IP != "192.0.2.9" {
		t.Fatalf("EmailVerified events %+v, want liz's by the link", *verified)
	}

	// A profile update names the fields that changed; the same values
	// again change nothing and publish nothing.
	recent := httpapi.Meta{AuthTime: clk.Now(), ActorID: liz.ID}
	patch := ProfilePatch{Name: optional[string]{Set: true, Value: "Liz B"}, Locale: optional[string]{Set: true, Value: "en-GB"}, GivenName: optional[string]{Set: true, Value: ""}}
	if _, err := s.UpdateProfile(ctx, liz.ID, patch, recent); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateProfile(ctx, liz.ID, patch, recent); err != nil {
		t.Fatal(err)
	}
	if len(*updated) != 1 || !slices.Equal((*updated)[0].Fields, []string{"locale", "name"}) || (*updated)[0].User.Name != "Liz B" {
		t.Fatalf("UserUpdated events %+v, want one naming locale and name", *updated)
	}

	// An address change: requested (pending_email), then verified (email).
	if _, err := s.UpdateProfile(ctx, liz.ID, ProfilePatch{Email: optional[string]{Set: true, Value: "liz@example.org"}}, recent); err != nil {
		t.Fatal(err)
	}
	if len(*updated) != 2 || !slices.Equal((*updated)[1].Fields, []string{"pending_email"}) || (*updated)[1].User.PendingEmail != "liz@example.org" {
		t.Fatalf("after the change request: UserUpdated events %+v, want a second naming pending_email", *updated)
	}
	if _, err := s.VerifyEmail(ctx, jobs.token(t, kr, mail.EmailChangeVerify, "liz@example.org"), httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	if len(*updated) != 3 || !slices.Equal((*updated)[2].Fields, []string{"email", "pending_email"}) || (*updated)[2].User.Email != "liz@example.org" {
		t.Fatalf("after the change: UserUpdated events %+v, want a third naming email", *updated)
	}
	if len(*verified) != 2 || (*verified)[1].Email != "liz@example.org" || (*verified)[1].Via != event.VerifiedByEmailChange {
		t.Fatalf("after the change: EmailVerified events %+v, want the new address", *verified)
	}

	// A reset link proves an unverified address; a verified one is not
	// verified again.
	if _, err := s.Register(ctx, "max@example.com", pw, "Max", httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.ForgotPassword(ctx, "max@example.com", httpapi.Meta{}); err != nil {
			t.Fatal(err)
		}
		if err := s.ResetPassword(ctx, jobs.token(t, kr, mail.PasswordReset, "max@example.com"), pw, httpapi.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(*verified) != 3 || (*verified)[2].Email != "max@example.com" || (*verified)[2].Via != event.VerifiedByPasswordReset {
		t.Fatalf("after two resets: EmailVerified events %+v, want one more, max's by the reset", *verified)
	}
}
