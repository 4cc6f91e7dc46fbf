package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook"
	"github.com/gatehouse/gatehouse/internal/webhook/catalog"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

// outbox is what a test sees of the outbox: the event and delivery rows
// and the delivery jobs.
type outbox struct{ events, deliveries, jobs int }

func (e *env) outbox(t *testing.T) outbox {
	t.Helper()
	return outbox{
		events:     e.count(t, "SELECT COUNT(*) FROM webhook_events"),
		deliveries: e.count(t, "SELECT COUNT(*) FROM webhook_deliveries"),
		jobs:       len(e.deliveryJobs(t)),
	}
}

// deliveriesOf returns the deliveries of an endpoint, oldest first.
func (e *env) deliveriesOf(t *testing.T, endpointID string) []store.WebhookDelivery {
	t.Helper()
	list, _, err := e.store.ListWebhookDeliveries(t.Context(), store.WebhookDeliveryFilter{EndpointID: endpointID, Limit: store.MaxDeliveryLimit})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(list)
	return list
}

func TestRecord(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		org1, err := e.store.CreateOrganization(ctx, store.Organization{Name: "One", Slug: "one"})
		if err != nil {
			t.Fatal(err)
		}
		org2, err := e.store.CreateOrganization(ctx, store.Organization{Name: "Two", Slug: "two"})
		if err != nil {
			t.Fatal(err)
		}
		ann, bob := e.mustUser(t, "ann@example.com"), e.mustUser(t, "bob@example.com")
		if err := e.store.SetMembership(ctx, store.OrgMembership{OrgID: org1.ID, UserID: ann.ID, Role: "member"}); err != nil {
			t.Fatal(err)
		}

		// No endpoint: an event writes nothing.
		e.publish(t, event.UserRegistered{User: ann})
		if got := e.outbox(t); got != (outbox{}) {
			t.Fatalf("without endpoints: %+v, want nothing written", got)
		}

		users := e.mustCreate(t, webhook.EndpointInput{Events: []string{"user.*"}})
		sessions := e.mustCreate(t, webhook.EndpointInput{Events: []string{"session.*"}})
		e.mustCreate(t, webhook.EndpointInput{Events: []string{"*"}, Enabled: ptr(false)})
		one := e.mustCreate(t, webhook.EndpointInput{Events: []string{"user.*"}, OrganizationID: org1.ID})
		two := e.mustCreate(t, webhook.EndpointInput{Events: []string{"*"}, OrganizationID: org2.ID})

		// Ann's sign-up: the unscoped user.* endpoint and her
		// organisation's; not the other organisation's, nor the disabled
		// one, nor the session endpoint.
		e.clock.Advance(time.Minute)
		registered := event.UserRegistered{User: ann}
		e.publish(t, registered)
		if got := e.outbox(t); got != (outbox{events: 1, deliveries: 2, jobs: 2}) {
			t.Fatalf("after ann's sign-up: %+v", got)
		}
		d := e.deliveriesOf(t, users.ID)
		if len(d) != 1 {
			t.Fatalf("deliveries of the user.* endpoint: %+v", d)
		}
		want := store.WebhookDelivery{
			ID: d[0].ID, EndpointID: users.ID, EventID: d[0].EventID, EventType: "user.created", Status: store.DeliveryPending,
			NextAttemptAt: e.clock.Now(), CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now(),
		}
		if diff := gocmp.Diff(want, d[0]); diff != "" {
			t.Errorf("delivery (-want +got):\n%s", diff)
		}
		ev, err := e.store.GetWebhookEvent(ctx, d[0].EventID)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(catalog.Messages(registered)[0].Data)
		wantEv := store.WebhookEvent{
			ID: ev.ID, Type: "user.created", OccurredAt: e.clock.Now(), Data: data, UserID: ann.ID,
			OrganizationIDs: []string{org1.ID}, CreatedAt: e.clock.Now(),
		}
		if diff := gocmp.Diff(wantEv, ev); diff != "" {
			t.Errorf("event (-want +got):\n%s", diff)
		}
		if len(ev.ID) != len("msg_")+32 || ev.ID[:4] != "msg_" || d[0].ID[:5] != "whdl_" {
			t.Errorf("IDs %q, %q: want msg_… and whdl_…", ev.ID, d[0].ID)
		}
		d1 := e.deliveriesOf(t, one.ID)
		if len(d1) != 1 || d1[0].EventID != ev.ID || len(e.deliveriesOf(t, two.ID)) != 0 || len(e.deliveriesOf(t, sessions.ID)) != 0 {
			t.Errorf("organisation endpoints: one %+v, two %d", d1, len(e.deliveriesOf(t, two.ID)))
		}
		if jobs := e.deliveryJobs(t); !sameSet(jobs, []string{d[0].ID, d1[0].ID}) {
			t.Errorf("jobs for %v, want the two deliveries", jobs)
		}

		// Bob belongs to no organisation: his second factor matches the
		// other organisation's * endpoint by type only; nothing is written.
		e.publish(t, event.SecondFactorEnrolled{UserID: bob.ID, Method: "totp", DeviceID: "dev-1"})
		// An event with no webhook message writes nothing either.
		e.publish(t, event.SecondFactorVerified{UserID: bob.ID})
		if got := e.outbox(t); got != (outbox{events: 1, deliveries: 2, jobs: 2}) {
			t.Errorf("after events no endpoint takes: %+v", got)
		}

		// Bob joins the other organisation: the event names it, so its
		// endpoint gets it.
		e.clock.Advance(time.Minute)
		e.publish(t, event.OrganizationMemberAdded{OrganizationID: org2.ID, UserID: bob.ID, Role: "member"})
		d2 := e.deliveriesOf(t, two.ID)
		if len(d2) != 1 || d2[0].EventType != "organization.member_added" {
			t.Fatalf("the organisation endpoint got %+v", d2)
		}
		if ev, _ := e.store.GetWebhookEvent(ctx, d2[0].EventID); !slices.Equal(ev.OrganizationIDs, []string{org2.ID}) {
			t.Errorf("member_added organisations = %v", ev.OrganizationIDs)
		}

		// An event of several messages: one event and one delivery each,
		// each with its job.
		e.clock.Advance(time.Minute)
		e.publish(t, event.SessionsRevoked{UserID: ann.ID, SessionIDs: []string{"s-1", "s-2"}, Reason: "signed_out"})
		ds := e.deliveriesOf(t, sessions.ID)
		if len(ds) != 2 || ds[0].EventID == ds[1].EventID || ds[0].EventType != "session.revoked" {
			t.Errorf("session endpoint got %+v, want two session.revoked events", ds)
		}
		if got := e.outbox(t); got != (outbox{events: 4, deliveries: 5, jobs: 5}) {
			t.Errorf("in all: %+v", got)
		}

		// A change that rolls back takes its events with it.
		before := e.outbox(t)
		tables := event.Narrow(e.store, e.bus, func(tx event.Tx) event.Tx { return tx })
		errRollback := errors.New("roll back")
		err = tables.InTx(ctx, func(tx event.Tx) error {
			u, err := tx.CreateUser(ctx, store.User{Email: "cat@example.com", EmailNormalized: "cat@example.com"})
			if err != nil {
				return err
			}
			if err := tx.Publish(ctx, event.UserRegistered{User: u}); err != nil {
				return err
			}
			// (SQLite's one writer connection is this transaction's.)
			if e.store.Dialect() == store.DialectPostgres && len(e.deliveriesOf(t, users.ID)) != 1 {
				t.Errorf("an uncommitted delivery is visible outside its transaction")
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
		if got := e.outbox(t); got != before {
			t.Errorf("after a rollback: %+v, want %+v", got, before)
		}
		// And one that commits keeps them.
		err = tables.InTx(ctx, func(tx event.Tx) error {
			u, err := tx.CreateUser(ctx, store.User{Email: "dan@example.com", EmailNormalized: "dan@example.com"})
			if err != nil {
				return err
			}
			return tx.Publish(ctx, event.UserRegistered{User: u})
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.outbox(t); got != (outbox{events: before.events + 1, deliveries: before.deliveries + 1, jobs: before.jobs + 1}) {
			t.Errorf("after a commit: %+v, want one more event, delivery and job than %+v", got, before)
		}
	})
}

// A failure to write the outbox fails the change: no event is lost
// silently.
func TestRecordFailureRollsBackTheChange(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	e.mustCreate(t, webhook.EndpointInput{Events: []string{"user.*"}})
	failing, err := webhook.New(webhook.Deps{
		Store: store.Narrow(e.store, func(tx store.Store) webhook.Tx { return tx }), Jobs: e.queue, Keyring: e.keys,
		NewSecret: delivery.NewSecret, CheckDestination: checkDestination, Now: e.clock.Now,
		NewID: func(string) (string, error) { return "", errors.New("no randomness") },
	})
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus()
	event.SubscribeAll(bus, func(ctx context.Context, tx event.Tx, ev event.Event) error { return failing.Record(ctx, tx, ev) })
	err = event.Narrow(e.store, bus, func(tx event.Tx) event.Tx { return tx }).InTx(t.Context(), func(tx event.Tx) error {
		u, err := tx.CreateUser(t.Context(), store.User{Email: "eve@example.com", EmailNormalized: "eve@example.com"})
		if err != nil {
			return err
		}
		return tx.Publish(t.Context(), event.UserRegistered{User: u})
	})
	if err == nil {
		t.Fatal("the change committed without its event")
	}
	if _, err := e.store.GetUserByEmail(t.Context(), "eve@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the user exists after the outbox failed: %v", err)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// BenchmarkRecord measures what the outbox adds to the change that causes
// an event: a sign-up's transaction (the account, then its event) without
// the outbox, then with it and no endpoint, with endpoints that do not
// take the event, and with one that does (an event, a delivery and a job
// written in the transaction).
func BenchmarkRecord(b *testing.B) {
	for _, be := range backends {
		for _, c := range []struct {
			name   string
			outbox bool
			subs   [][]string
		}{
			{"without_outbox", false, nil},
			{"no_endpoint", true, nil},
			{"no_match", true, [][]string{{"session.*"}, {"mfa.*"}, {"security.*"}}},
			{"one_match", true, [][]string{{"user.*"}, {"session.*"}, {"mfa.*"}}},
		} {
			b.Run(be.name+"/"+c.name, func(b *testing.B) {
				e := newEnv(b, be.open(b))
				for _, s := range c.subs {
					e.mustCreate(b, webhook.EndpointInput{Events: s})
				}
				bus := e.bus
				if !c.outbox {
					bus = nil
				}
				tables := event.Narrow(e.store, bus, func(tx event.Tx) event.Tx { return tx })
				ctx := b.Context()
				i := 0
				for b.Loop() {
					i++
					email := "user" + strconv.Itoa(i) + "@example.com"
					err := tables.InTx(ctx, func(tx event.Tx) error {
						u, err := tx.CreateUser(ctx, store.User{Email: email, EmailNormalized: email})
						if err != nil {
							return err
						}
						return tx.Publish(ctx, event.UserRegistered{User: u})
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
