package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runWebhooks(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("Endpoints", func(t *testing.T) { testWebhookEndpoints(t, migrated(t)) })
	t.Run("EndpointsInvalid", func(t *testing.T) { testWebhookEndpointsInvalid(t, migrated(t)) })
	t.Run("EndpointCascades", func(t *testing.T) { testWebhookEndpointCascades(t, migrated(t)) })
	t.Run("ListEnabled", func(t *testing.T) { testWebhookListEnabled(t, migrated(t)) })
	t.Run("MarkResult", func(t *testing.T) { testWebhookMarkResult(t, migrated(t)) })
	t.Run("Events", func(t *testing.T) { testWebhookEvents(t, migrated(t)) })
	t.Run("Deliveries", func(t *testing.T) { testWebhookDeliveries(t, migrated(t)) })
	t.Run("DeliveriesAllOrNone", func(t *testing.T) { testWebhookDeliveriesAllOrNone(t, migrated(t)) })
	t.Run("Attempts", func(t *testing.T) { testWebhookAttempts(t, migrated(t)) })
	t.Run("AttemptInTx", func(t *testing.T) { testWebhookAttemptInTx(t, migrated(t)) })
	t.Run("ParallelAttempts", func(t *testing.T) { testWebhookParallelAttempts(t, migrated(t)) })
	t.Run("List", func(t *testing.T) { testWebhookList(t, migrated(t)) })
	t.Run("Stats", func(t *testing.T) { testWebhookStats(t, migrated(t)) })
	t.Run("Pending", func(t *testing.T) { testWebhookPending(t, migrated(t)) })
	t.Run("Purge", func(t *testing.T) { testWebhookPurge(t, migrated(t)) })
}

// whAt is the suite's webhook clock: times are given explicitly, so that
// the backends' own clock does not matter.
var whAt = time.Date(2034, 2, 3, 4, 5, 6, 789123456, time.UTC)

func mustWebhookEndpoint(t *testing.T, s store.Store, id string) store.WebhookEndpoint {
	t.Helper()
	e, err := s.CreateWebhookEndpoint(context.Background(), store.WebhookEndpoint{
		ID: id, URL: "https://hooks.example.com/" + id, Events: []string{"*"}, Enabled: true, Secret: "sealed-" + id,
		CreatedAt: whAt,
	})
	if err != nil {
		t.Fatalf("CreateWebhookEndpoint(%s): %v", id, err)
	}
	return e
}

func mustWebhookEvent(t *testing.T, s store.Store, id, typ string, createdAt time.Time) store.WebhookEvent {
	t.Helper()
	ev := store.WebhookEvent{ID: id, Type: typ, Data: []byte(`{"n":1}`), CreatedAt: createdAt}
	if err := s.CreateWebhookEvent(context.Background(), ev); err != nil {
		t.Fatalf("CreateWebhookEvent(%s): %v", id, err)
	}
	got, err := s.GetWebhookEvent(context.Background(), id)
	if err != nil {
		t.Fatalf("GetWebhookEvent(%s): %v", id, err)
	}
	return got
}

func mustDeliveries(t *testing.T, s store.Store, ds ...store.WebhookDelivery) {
	t.Helper()
	if err := s.CreateWebhookDeliveries(context.Background(), ds); err != nil {
		t.Fatalf("CreateWebhookDeliveries(%d): %v", len(ds), err)
	}
}

func mustDelivery(t *testing.T, s store.Store, id string) store.WebhookDelivery {
	t.Helper()
	d, err := s.GetWebhookDelivery(context.Background(), id)
	if err != nil {
		t.Fatalf("GetWebhookDelivery(%s): %v", id, err)
	}
	return d
}

func mustAttempt(t *testing.T, s store.Store, id string, a store.WebhookAttempt, status string, next time.Time) store.WebhookDelivery {
	t.Helper()
	d, err := s.RecordWebhookAttempt(context.Background(), id, a, status, next)
	if err != nil {
		t.Fatalf("RecordWebhookAttempt(%s): %v", id, err)
	}
	return d
}

func testWebhookEndpoints(t *testing.T, s store.Store) {
	ctx := context.Background()
	org := mustCreateOrg(t, s, "Acme", "acme", nil)
	full := store.WebhookEndpoint{
		ID: "whep_full", URL: "https://hooks.example.com/in", Events: []string{"user.*", "session.created"},
		Description: "CRM sync", OrganizationID: strings.ToUpper(org.ID), Enabled: true,
		Secret: "sealed-new", PreviousSecret: "sealed-old", PreviousSecretExpiresAt: whAt.Add(24 * time.Hour),
		FailingSince: whAt.Add(-time.Hour),
		CreatedAt:    whAt.In(time.FixedZone("X", 3600)), UpdatedAt: whAt.Add(time.Minute),
	}
	got, err := s.CreateWebhookEndpoint(ctx, full)
	if err != nil {
		t.Fatalf("CreateWebhookEndpoint: %v", err)
	}
	want := full
	want.OrganizationID = org.ID // canonical form
	want.PreviousSecretExpiresAt, want.FailingSince = micro(full.PreviousSecretExpiresAt), micro(full.FailingSince)
	want.CreatedAt, want.UpdatedAt = micro(full.CreatedAt), micro(full.UpdatedAt)
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("CreateWebhookEndpoint returned (-want +got):\n%s", diff)
	}
	if g, err := s.GetWebhookEndpoint(ctx, "whep_full"); err != nil {
		t.Errorf("GetWebhookEndpoint: %v", err)
	} else if diff := gocmp.Diff(want, g); diff != "" {
		t.Errorf("GetWebhookEndpoint (-want +got):\n%s", diff)
	}

	// The same, read for update in a transaction; nothing for an unknown id.
	if err := s.InTx(ctx, func(tx store.Store) error {
		g, err := tx.GetWebhookEndpointForUpdate(ctx, "whep_full")
		if err != nil {
			return err
		}
		if diff := gocmp.Diff(want, g); diff != "" {
			t.Errorf("GetWebhookEndpointForUpdate (-want +got):\n%s", diff)
		}
		if _, err := tx.GetWebhookEndpointForUpdate(ctx, "whep_none"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetWebhookEndpointForUpdate(unknown) = %v, want ErrNotFound", err)
		}
		return nil
	}); err != nil {
		t.Fatalf("InTx: %v", err)
	}

	// Defaults: CreatedAt now, UpdatedAt = CreatedAt, nothing optional.
	minimal, err := s.CreateWebhookEndpoint(ctx, store.WebhookEndpoint{
		ID: "whep_min", URL: "https://min.example", Enabled: false, DisabledReason: store.EndpointDisabledByAdmin, Secret: "s",
	})
	if err != nil {
		t.Fatalf("CreateWebhookEndpoint(minimal): %v", err)
	}
	checkNow(t, "CreatedAt", minimal.CreatedAt)
	wantMin := store.WebhookEndpoint{ID: "whep_min", URL: "https://min.example", DisabledReason: store.EndpointDisabledByAdmin,
		Secret: "s", CreatedAt: minimal.CreatedAt, UpdatedAt: minimal.CreatedAt}
	if diff := gocmp.Diff(wantMin, minimal); diff != "" {
		t.Errorf("minimal endpoint (-want +got):\n%s", diff)
	}

	if _, err := s.CreateWebhookEndpoint(ctx, store.WebhookEndpoint{ID: "whep_full", URL: "https://x.example", Enabled: true, Secret: "s"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateWebhookEndpoint(duplicate ID): err = %v, want ErrConflict", err)
	}

	list, err := s.ListWebhookEndpoints(ctx)
	if err != nil {
		t.Fatalf("ListWebhookEndpoints: %v", err)
	}
	// minimal was created now, years before whAt.
	if diff := gocmp.Diff([]store.WebhookEndpoint{minimal, want}, list); diff != "" {
		t.Errorf("ListWebhookEndpoints, oldest first (-want +got):\n%s", diff)
	}

	// Update replaces every field but CreatedAt.
	up := store.WebhookEndpoint{
		ID: "whep_full", URL: "https://hooks.example.com/v2", Events: []string{"user.created"},
		Enabled: false, DisabledReason: store.EndpointGone, Secret: "sealed-newer",
		CreatedAt: whAt.Add(time.Hour), UpdatedAt: whAt.Add(2 * time.Hour),
	}
	updated, err := s.UpdateWebhookEndpoint(ctx, up)
	if err != nil {
		t.Fatalf("UpdateWebhookEndpoint: %v", err)
	}
	wantUp := up
	wantUp.CreatedAt, wantUp.UpdatedAt = want.CreatedAt, micro(up.UpdatedAt)
	if diff := gocmp.Diff(wantUp, updated); diff != "" {
		t.Errorf("UpdateWebhookEndpoint returned (-want +got):\n%s", diff)
	}
	if g, _ := s.GetWebhookEndpoint(ctx, "whep_full"); !gocmp.Equal(wantUp, g) {
		t.Errorf("GetWebhookEndpoint after update = %+v, want %+v", g, wantUp)
	}
	// A zero UpdatedAt is now.
	up.UpdatedAt = time.Time{}
	up.Enabled, up.DisabledReason, up.OrganizationID = true, "", org.ID
	updated, err = s.UpdateWebhookEndpoint(ctx, up)
	if err != nil {
		t.Fatalf("UpdateWebhookEndpoint(enable): %v", err)
	}
	checkNow(t, "UpdatedAt", updated.UpdatedAt)
	if !updated.Enabled || updated.DisabledReason != "" || updated.OrganizationID != org.ID {
		t.Errorf("UpdateWebhookEndpoint(enable) = %+v", updated)
	}
	if _, err := s.UpdateWebhookEndpoint(ctx, store.WebhookEndpoint{ID: "whep_unknown", URL: "https://x.example", Enabled: true, Secret: "s"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateWebhookEndpoint(unknown): err = %v, want ErrNotFound", err)
	}

	if err := s.DeleteWebhookEndpoint(ctx, "whep_full"); err != nil {
		t.Fatalf("DeleteWebhookEndpoint: %v", err)
	}
	for _, id := range []string{"whep_full", "whep_unknown", "", "WHEP_MIN", "\xff"} {
		if _, err := s.GetWebhookEndpoint(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetWebhookEndpoint(%q): err = %v, want ErrNotFound", id, err)
		}
		if err := s.DeleteWebhookEndpoint(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteWebhookEndpoint(%q): err = %v, want ErrNotFound", id, err)
		}
	}
}

func testWebhookEndpointsInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	valid := store.WebhookEndpoint{ID: "whep_x", URL: "https://x.example", Enabled: true, Secret: "s"}
	for name, change := range map[string]func(e *store.WebhookEndpoint){
		"no ID":                          func(e *store.WebhookEndpoint) { e.ID = "" },
		"no URL":                         func(e *store.WebhookEndpoint) { e.URL = "" },
		"no secret":                      func(e *store.WebhookEndpoint) { e.Secret = "" },
		"NUL in URL":                     func(e *store.WebhookEndpoint) { e.URL = "https://x.example/\x00" },
		"empty event":                    func(e *store.WebhookEndpoint) { e.Events = []string{"user.*", ""} },
		"enabled with a reason":          func(e *store.WebhookEndpoint) { e.DisabledReason = store.EndpointGone },
		"disabled without a reason":      func(e *store.WebhookEndpoint) { e.Enabled = false },
		"disabled for an unknown reason": func(e *store.WebhookEndpoint) { e.Enabled, e.DisabledReason = false, "bored" },
		"previous secret without expiry": func(e *store.WebhookEndpoint) { e.PreviousSecret = "old" },
		"expiry without previous secret": func(e *store.WebhookEndpoint) { e.PreviousSecretExpiresAt = whAt },
		"organization not a UUID":        func(e *store.WebhookEndpoint) { e.OrganizationID = "acme" },
	} {
		e := valid
		change(&e)
		if _, err := s.CreateWebhookEndpoint(ctx, e); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateWebhookEndpoint(%s): err = %v, want a validation error", name, err)
		}
	}
	e := valid
	e.OrganizationID = "0190d5c4-7a6b-7c3e-9f00-000000000001"
	if _, err := s.CreateWebhookEndpoint(ctx, e); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateWebhookEndpoint(unknown organization): err = %v, want ErrNotFound", err)
	}
	if list, err := s.ListWebhookEndpoints(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListWebhookEndpoints after invalid creates = %v, %v; want none", list, err)
	}
	mustWebhookEndpoint(t, s, "whep_x")
	e = valid
	e.Enabled = false
	if _, err := s.UpdateWebhookEndpoint(ctx, e); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateWebhookEndpoint(disabled without a reason): err = %v, want a validation error", err)
	}
}

// Deleting an endpoint deletes its deliveries and their attempts, not the
// events; deleting its organisation deletes it.
func testWebhookEndpointCascades(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustWebhookEndpoint(t, s, "whep_a")
	mustWebhookEndpoint(t, s, "whep_b")
	mustWebhookEvent(t, s, "msg_1", "user.created", whAt)
	mustDeliveries(t, s,
		store.WebhookDelivery{ID: "whdl_a", EndpointID: "whep_a", EventID: "msg_1"},
		store.WebhookDelivery{ID: "whdl_b", EndpointID: "whep_b", EventID: "msg_1"})
	mustAttempt(t, s, "whdl_a", store.WebhookAttempt{At: whAt, StatusCode: 500}, store.DeliveryPending, whAt.Add(time.Minute))
	mustAttempt(t, s, "whdl_b", store.WebhookAttempt{At: whAt, StatusCode: 200}, store.DeliveryDelivered, time.Time{})

	if err := s.DeleteWebhookEndpoint(ctx, "whep_a"); err != nil {
		t.Fatalf("DeleteWebhookEndpoint: %v", err)
	}
	if _, err := s.GetWebhookDelivery(ctx, "whdl_a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetWebhookDelivery of the deleted endpoint's delivery: err = %v, want ErrNotFound", err)
	}
	if n := count(t, s, "SELECT count(*) FROM webhook_attempts WHERE delivery_id = 'whdl_a'"); n != 0 {
		t.Errorf("%d attempts of the deleted endpoint's delivery left", n)
	}
	if d := mustDelivery(t, s, "whdl_b"); len(d.Attempts) != 1 {
		t.Errorf("the other endpoint's delivery = %+v, want it with its attempt", d)
	}
	if _, err := s.GetWebhookEvent(ctx, "msg_1"); err != nil {
		t.Errorf("GetWebhookEvent after deleting an endpoint: %v", err)
	}

	org := mustCreateOrg(t, s, "Acme", "acme", nil)
	if _, err := s.CreateWebhookEndpoint(ctx, store.WebhookEndpoint{ID: "whep_org", URL: "https://x.example", Enabled: true, Secret: "s", OrganizationID: org.ID}); err != nil {
		t.Fatalf("CreateWebhookEndpoint(org): %v", err)
	}
	if err := s.DeleteOrganization(ctx, org.ID); err != nil {
		t.Fatalf("DeleteOrganization: %v", err)
	}
	if _, err := s.GetWebhookEndpoint(ctx, "whep_org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetWebhookEndpoint after deleting its organisation: err = %v, want ErrNotFound", err)
	}
}

func testWebhookListEnabled(t *testing.T, s store.Store) {
	ctx := context.Background()
	if list, err := s.ListEnabledWebhookEndpoints(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListEnabledWebhookEndpoints on an empty store = %v, %v", list, err)
	}
	var want []store.WebhookEndpoint
	for i, reason := range []string{"", store.EndpointDisabledByAdmin, "", store.EndpointGone, store.EndpointFailing, ""} {
		e, err := s.CreateWebhookEndpoint(ctx, store.WebhookEndpoint{
			// IDs sort against creation order; two share a creation time.
			ID: fmt.Sprintf("whep_%d", 9-i), URL: "https://x.example", Enabled: reason == "", DisabledReason: reason,
			Secret: "s", CreatedAt: whAt.Add(time.Duration(i/2*2) * time.Second),
		})
		if err != nil {
			t.Fatal(err)
		}
		if reason == "" {
			want = append(want, e)
		}
	}
	slices.SortFunc(want, func(a, b store.WebhookEndpoint) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	got, err := s.ListEnabledWebhookEndpoints(ctx)
	if err != nil {
		t.Fatalf("ListEnabledWebhookEndpoints: %v", err)
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("ListEnabledWebhookEndpoints (-want +got):\n%s", diff)
	}
	all, err := s.ListWebhookEndpoints(ctx)
	if err != nil || len(all) != 6 {
		t.Errorf("ListWebhookEndpoints = %d endpoints, %v; want 6", len(all), err)
	}
}

func testWebhookMarkResult(t *testing.T, s store.Store) {
	ctx := context.Background()
	created := mustWebhookEndpoint(t, s, "whep_m")
	steps := []struct {
		ok   bool
		at   time.Time
		want time.Time
	}{
		{ok: true, at: whAt, want: time.Time{}},                                   // ok on a healthy endpoint
		{ok: false, at: whAt.Add(time.Minute), want: whAt.Add(time.Minute)},       // first failure sets it
		{ok: false, at: whAt.Add(time.Hour), want: whAt.Add(time.Minute)},         // later failures keep it
		{ok: true, at: whAt.Add(2 * time.Hour), want: time.Time{}},                // a success clears it
		{ok: false, at: whAt.Add(3 * time.Hour), want: whAt.Add(3 * time.Hour)},   // set once more
		{ok: false, at: whAt.Add(-3 * time.Hour), want: whAt.Add(3 * time.Hour)},  // even an earlier time keeps it
		{ok: true, at: time.Time{}, want: time.Time{}},                            // a success needs no time
		{ok: false, at: whAt.Add(10 * time.Hour), want: whAt.Add(10 * time.Hour)}, // and again
	}
	for i, step := range steps {
		got, err := s.MarkWebhookEndpointResult(ctx, "whep_m", step.ok, step.at)
		if err != nil {
			t.Fatalf("step %d: MarkWebhookEndpointResult(%v, %v): %v", i, step.ok, step.at, err)
		}
		want := created
		want.FailingSince = micro(step.want)
		if step.want.IsZero() {
			want.FailingSince = time.Time{}
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("step %d: MarkWebhookEndpointResult(%v, %v) (-want +got):\n%s", i, step.ok, step.at, diff)
		}
		if g, _ := s.GetWebhookEndpoint(ctx, "whep_m"); !gocmp.Equal(want, g) {
			t.Errorf("step %d: GetWebhookEndpoint = %+v, want %+v", i, g, want)
		}
	}
	for _, ok := range []bool{true, false} {
		if _, err := s.MarkWebhookEndpointResult(ctx, "whep_unknown", ok, whAt); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("MarkWebhookEndpointResult(unknown, %v): err = %v, want ErrNotFound", ok, err)
		}
	}
}

func testWebhookEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Data comes back byte for byte: spacing and key order included.
	data := []byte(" {\"z\": 1,  \"a\":[true, null], \"s\":\"\\u00e9\\u0000\"}\n")
	full := store.WebhookEvent{
		ID: "msg_full", Type: "user.created", OccurredAt: whAt.In(time.FixedZone("Y", -7200)), Data: data,
		UserID: "0190d5c4-7a6b-7c3e-9f00-0000000000aa", OrganizationIDs: []string{"org-1", "org-2"},
		CreatedAt: whAt.Add(time.Second),
	}
	if err := s.CreateWebhookEvent(ctx, full); err != nil {
		t.Fatalf("CreateWebhookEvent: %v", err)
	}
	want := full
	want.OccurredAt, want.CreatedAt = micro(full.OccurredAt), micro(full.CreatedAt)
	got, err := s.GetWebhookEvent(ctx, "msg_full")
	if err != nil {
		t.Fatalf("GetWebhookEvent: %v", err)
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("GetWebhookEvent (-want +got):\n%s", diff)
	}

	// Defaults: Data {}, CreatedAt now, OccurredAt CreatedAt.
	if err := s.CreateWebhookEvent(ctx, store.WebhookEvent{ID: "msg_min", Type: "webhook.test"}); err != nil {
		t.Fatalf("CreateWebhookEvent(minimal): %v", err)
	}
	got, err = s.GetWebhookEvent(ctx, "msg_min")
	if err != nil {
		t.Fatalf("GetWebhookEvent(minimal): %v", err)
	}
	checkNow(t, "CreatedAt", got.CreatedAt)
	wantMin := store.WebhookEvent{ID: "msg_min", Type: "webhook.test", Data: []byte("{}"), OccurredAt: got.CreatedAt, CreatedAt: got.CreatedAt}
	if diff := gocmp.Diff(wantMin, got); diff != "" {
		t.Errorf("minimal event (-want +got):\n%s", diff)
	}

	if err := s.CreateWebhookEvent(ctx, store.WebhookEvent{ID: "msg_full", Type: "user.deleted"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateWebhookEvent(duplicate): err = %v, want ErrConflict", err)
	}
	for name, ev := range map[string]store.WebhookEvent{
		"no ID":         {Type: "user.created"},
		"no type":       {ID: "msg_x"},
		"array":         {ID: "msg_x", Type: "t", Data: []byte(`[1]`)},
		"string":        {ID: "msg_x", Type: "t", Data: []byte(`"s"`)},
		"not JSON":      {ID: "msg_x", Type: "t", Data: []byte(`{"a":`)},
		"two values":    {ID: "msg_x", Type: "t", Data: []byte(`{} {}`)},
		"invalid UTF-8": {ID: "msg_x", Type: "t", Data: []byte("{\"a\":\"\xff\"}")},
		"empty org":     {ID: "msg_x", Type: "t", OrganizationIDs: []string{""}},
	} {
		if err := s.CreateWebhookEvent(ctx, ev); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateWebhookEvent(%s): err = %v, want a validation error", name, err)
		}
	}
	for _, id := range []string{"msg_x", "", "MSG_FULL", "\xff"} {
		if _, err := s.GetWebhookEvent(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetWebhookEvent(%q): err = %v, want ErrNotFound", id, err)
		}
	}
}

func testWebhookDeliveries(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustWebhookEndpoint(t, s, "whep_d")
	mustWebhookEvent(t, s, "msg_1", "user.created", whAt)
	mustWebhookEvent(t, s, "msg_2", "session.revoked", whAt)

	in := []store.WebhookDelivery{
		// Defaults: pending, CreatedAt now, due at once.
		{ID: "whdl_min", EndpointID: "whep_d", EventID: "msg_1"},
		// The event's type wins over the caller's; attempts are ignored.
		{ID: "whdl_typed", EndpointID: "whep_d", EventID: "msg_2", EventType: "user.created",
			Attempts:  []store.WebhookAttempt{{At: whAt, StatusCode: 200}},
			CreatedAt: whAt, NextAttemptAt: whAt.Add(time.Minute)},
		// Not pending: no next attempt.
		{ID: "whdl_failed", EndpointID: "whep_d", EventID: "msg_1", Status: store.DeliveryFailed,
			CreatedAt: whAt.In(time.FixedZone("Z", 1800)), UpdatedAt: whAt.Add(time.Hour), NextAttemptAt: whAt.Add(time.Minute)},
	}
	mustDeliveries(t, s, in...)

	minimal := mustDelivery(t, s, "whdl_min")
	checkNow(t, "CreatedAt", minimal.CreatedAt)
	wants := []store.WebhookDelivery{
		{ID: "whdl_min", EndpointID: "whep_d", EventID: "msg_1", EventType: "user.created", Status: store.DeliveryPending,
			NextAttemptAt: minimal.CreatedAt, CreatedAt: minimal.CreatedAt, UpdatedAt: minimal.CreatedAt},
		{ID: "whdl_typed", EndpointID: "whep_d", EventID: "msg_2", EventType: "session.revoked", Status: store.DeliveryPending,
			NextAttemptAt: micro(whAt.Add(time.Minute)), CreatedAt: micro(whAt), UpdatedAt: micro(whAt)},
		{ID: "whdl_failed", EndpointID: "whep_d", EventID: "msg_1", EventType: "user.created", Status: store.DeliveryFailed,
			CreatedAt: micro(whAt), UpdatedAt: micro(whAt.Add(time.Hour))},
	}
	for _, want := range wants {
		if diff := gocmp.Diff(want, mustDelivery(t, s, want.ID)); diff != "" {
			t.Errorf("GetWebhookDelivery(%s) (-want +got):\n%s", want.ID, diff)
		}
	}
	for _, id := range []string{"whdl_unknown", "", "WHDL_MIN", "\xff"} {
		if _, err := s.GetWebhookDelivery(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetWebhookDelivery(%q): err = %v, want ErrNotFound", id, err)
		}
	}
	if err := s.CreateWebhookDeliveries(ctx, nil); err != nil {
		t.Errorf("CreateWebhookDeliveries(none): %v", err)
	}

	// Requeue: pending again, attempts kept.
	mustAttempt(t, s, "whdl_failed", store.WebhookAttempt{At: whAt.Add(time.Second), StatusCode: 502}, store.DeliveryFailed, time.Time{})
	next := whAt.Add(5 * time.Minute)
	requeued, err := s.RequeueWebhookDelivery(ctx, "whdl_failed", next)
	if err != nil {
		t.Fatalf("RequeueWebhookDelivery: %v", err)
	}
	checkNow(t, "UpdatedAt", requeued.UpdatedAt)
	if requeued.Status != store.DeliveryPending || !requeued.NextAttemptAt.Equal(micro(next)) || len(requeued.Attempts) != 1 ||
		requeued.Attempts[0].StatusCode != 502 {
		t.Errorf("RequeueWebhookDelivery = %+v, want pending at %v with its one attempt", requeued, micro(next))
	}
	if g := mustDelivery(t, s, "whdl_failed"); !gocmp.Equal(requeued, g) {
		t.Errorf("GetWebhookDelivery after requeue = %+v, want %+v", g, requeued)
	}
	// A zero time is now.
	requeued, err = s.RequeueWebhookDelivery(ctx, "whdl_typed", time.Time{})
	if err != nil {
		t.Fatalf("RequeueWebhookDelivery(now): %v", err)
	}
	checkNow(t, "NextAttemptAt", requeued.NextAttemptAt)
	if _, err := s.RequeueWebhookDelivery(ctx, "whdl_unknown", next); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RequeueWebhookDelivery(unknown): err = %v, want ErrNotFound", err)
	}
}

// A batch with a conflict or a dangling reference stores nothing, however
// many statements it takes.
func testWebhookDeliveriesAllOrNone(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustWebhookEndpoint(t, s, "whep_many")
	mustWebhookEvent(t, s, "msg_many", "user.created", whAt)
	mustDeliveries(t, s, store.WebhookDelivery{ID: "whdl_taken", EndpointID: "whep_many", EventID: "msg_many", CreatedAt: whAt})

	const n = 1201 // three statements of 500 at most
	batch := func() []store.WebhookDelivery {
		ds := make([]store.WebhookDelivery, n)
		for i := range ds {
			ds[i] = store.WebhookDelivery{ID: fmt.Sprintf("whdl_%04d", i), EndpointID: "whep_many", EventID: "msg_many",
				CreatedAt: whAt.Add(time.Duration(i) * time.Millisecond)}
		}
		return ds
	}
	for _, c := range []struct {
		name   string
		change func(ds []store.WebhookDelivery)
		want   error
	}{
		{"duplicate in the batch", func(ds []store.WebhookDelivery) { ds[n-1].ID = ds[0].ID }, store.ErrConflict},
		{"duplicate of a stored one", func(ds []store.WebhookDelivery) { ds[n-1].ID = "whdl_taken" }, store.ErrConflict},
		{"unknown endpoint", func(ds []store.WebhookDelivery) { ds[n-1].EndpointID = "whep_unknown" }, store.ErrNotFound},
		{"unknown event", func(ds []store.WebhookDelivery) { ds[n-1].EventID = "msg_unknown" }, store.ErrNotFound},
		{"unknown event, one statement", func(ds []store.WebhookDelivery) { ds[1].EventID = "msg_unknown" }, store.ErrNotFound},
		{"invalid status", func(ds []store.WebhookDelivery) { ds[n-1].Status = "lost" }, nil},
	} {
		ds := batch()
		c.change(ds)
		if c.name == "unknown event, one statement" {
			ds = ds[:3]
		}
		err := s.CreateWebhookDeliveries(ctx, ds)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("CreateWebhookDeliveries(%s): err = %v, want %v", c.name, err, c.want)
		}
		if got := count(t, s, "SELECT count(*) FROM webhook_deliveries"); got != 1 {
			t.Errorf("after CreateWebhookDeliveries(%s): %d deliveries stored, want only the one from before", c.name, got)
		}
	}

	mustDeliveries(t, s, batch()...)
	if got := count(t, s, "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = 'whep_many'"); got != n+1 {
		t.Errorf("%d deliveries stored, want %d", got, n+1)
	}
	last := mustDelivery(t, s, fmt.Sprintf("whdl_%04d", n-1))
	if last.EventType != "user.created" || !last.CreatedAt.Equal(micro(whAt.Add((n-1)*time.Millisecond))) {
		t.Errorf("the batch's last delivery = %+v", last)
	}

	// Page sizes: the default, and the maximum for more.
	for limit, want := range map[int]int{0: store.DefaultDeliveryLimit, -1: store.DefaultDeliveryLimit, 7: 7, 1000: store.MaxDeliveryLimit} {
		page, next, err := s.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{EndpointID: "whep_many", Limit: limit})
		if err != nil || len(page) != want || next == "" {
			t.Errorf("ListWebhookDeliveries(limit %d) = %d deliveries, cursor %q, %v; want %d and a cursor", limit, len(page), next, err, want)
		}
	}
}

func testWebhookAttempts(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustWebhookEndpoint(t, s, "whep_a")
	mustWebhookEvent(t, s, "msg_a", "user.created", whAt)
	mustDeliveries(t, s, store.WebhookDelivery{ID: "whdl_a", EndpointID: "whep_a", EventID: "msg_a", CreatedAt: whAt})
	base := mustDelivery(t, s, "whdl_a")

	first := store.WebhookAttempt{At: whAt.Add(time.Second).In(time.FixedZone("W", 600)), StatusCode: 0,
		Latency: 10*time.Second + 700*time.Microsecond, Error: "dial tcp: connection refused \xfe"}
	next := whAt.Add(time.Minute)
	d := mustAttempt(t, s, "whdl_a", first, store.DeliveryPending, next)
	checkNow(t, "UpdatedAt", d.UpdatedAt)
	want := base
	want.Status, want.NextAttemptAt, want.UpdatedAt = store.DeliveryPending, micro(next), d.UpdatedAt
	want.Attempts = []store.WebhookAttempt{{At: micro(first.At), Latency: 10 * time.Second, Error: "dial tcp: connection refused \uFFFD"}}
	if diff := gocmp.Diff(want, d); diff != "" {
		t.Errorf("RecordWebhookAttempt #1 (-want +got):\n%s", diff)
	}

	// A receiver's answer is kept as text, cut to the limit on a
	// character boundary: "ok" NUL (dropped) \xff (U+FFFD, 3 bytes), then
	// 2-byte characters, of which the one across the limit goes.
	response := "ok\x00\xff" + strings.Repeat("é", 3000)
	second := store.WebhookAttempt{At: whAt.Add(time.Minute), StatusCode: 500, Latency: 12700 * time.Microsecond, Response: response}
	// A pending delivery without a next time is due now.
	d = mustAttempt(t, s, "whdl_a", second, store.DeliveryPending, time.Time{})
	checkNow(t, "NextAttemptAt", d.NextAttemptAt)
	wantResponse := "ok\uFFFD" + strings.Repeat("é", (store.WebhookResponseLimit-5)/2)
	if len(wantResponse) > store.WebhookResponseLimit || len(wantResponse) < store.WebhookResponseLimit-1 {
		t.Fatalf("test bug: wantResponse is %d bytes", len(wantResponse))
	}
	want.Attempts = append(want.Attempts, store.WebhookAttempt{At: micro(second.At), StatusCode: 500, Latency: 12 * time.Millisecond, Response: wantResponse})
	want.NextAttemptAt, want.UpdatedAt = d.NextAttemptAt, d.UpdatedAt
	if diff := gocmp.Diff(want, d); diff != "" {
		t.Errorf("RecordWebhookAttempt #2 (-want +got):\n%s", diff)
	}

	// Delivered: no next attempt, even if one is given. An attempt
	// recorded with an earlier time sorts before the others.
	third := store.WebhookAttempt{At: whAt, StatusCode: 204, Latency: 3 * time.Millisecond, Response: "accepted"}
	d = mustAttempt(t, s, "whdl_a", third, store.DeliveryDelivered, whAt.Add(time.Hour))
	want.Status, want.NextAttemptAt, want.UpdatedAt = store.DeliveryDelivered, time.Time{}, d.UpdatedAt
	want.Attempts = append([]store.WebhookAttempt{{At: micro(whAt), StatusCode: 204, Latency: 3 * time.Millisecond, Response: "accepted"}}, want.Attempts...)
	if diff := gocmp.Diff(want, d); diff != "" {
		t.Errorf("RecordWebhookAttempt #3 (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(want, mustDelivery(t, s, "whdl_a")); diff != "" {
		t.Errorf("GetWebhookDelivery after three attempts (-want +got):\n%s", diff)
	}

	for name, c := range map[string]struct {
		id     string
		a      store.WebhookAttempt
		status string
		want   error
	}{
		"unknown delivery":  {"whdl_unknown", store.WebhookAttempt{At: whAt}, store.DeliveryFailed, store.ErrNotFound},
		"unstorable ID":     {"\xff", store.WebhookAttempt{At: whAt}, store.DeliveryFailed, store.ErrNotFound},
		"unknown status":    {"whdl_a", store.WebhookAttempt{At: whAt}, "lost", nil},
		"no time":           {"whdl_a", store.WebhookAttempt{}, store.DeliveryFailed, nil},
		"negative latency":  {"whdl_a", store.WebhookAttempt{At: whAt, Latency: -time.Millisecond}, store.DeliveryFailed, nil},
		"status code range": {"whdl_a", store.WebhookAttempt{At: whAt, StatusCode: 1000}, store.DeliveryFailed, nil},
	} {
		_, err := s.RecordWebhookAttempt(ctx, c.id, c.a, c.status, time.Time{})
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || (c.want == nil && errors.Is(err, store.ErrNotFound)) {
			t.Errorf("RecordWebhookAttempt(%s): err = %v, want %v", name, err, c.want)
		}
	}
	if diff := gocmp.Diff(want, mustDelivery(t, s, "whdl_a")); diff != "" {
		t.Errorf("GetWebhookDelivery after refused attempts (-want +got):\n%s", diff)
	}
}

// Inside InTx the attempt is part of the caller's transaction: rolled
// back with it, committed with it.
func testWebhookAttemptInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustWebhookEndpoint(t, s, "whep_tx")
	mustWebhookEvent(t, s, "msg_tx", "user.created", whAt)
	mustDeliveries(t, s, store.WebhookDelivery{ID: "whdl_tx", EndpointID: "whep_tx", EventID: "msg_tx", CreatedAt: whAt})
	before := mustDelivery(t, s, "whdl_tx")

	rollback := errors.New("roll back")
	err := s.InTx(ctx, func(tx store.Store) error {
		d, err := tx.RecordWebhookAttempt(ctx, "whdl_tx", store.WebhookAttempt{At: whAt, StatusCode: 200}, store.DeliveryDelivered, time.Time{})
		if err != nil {
			return err
		}
		if d.Status != store.DeliveryDelivered || len(d.Attempts) != 1 {
			t.Errorf("RecordWebhookAttempt in InTx = %+v", d)
		}
		if _, err := tx.MarkWebhookEndpointResult(ctx, "whep_tx", true, whAt); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("InTx = %v, want the rollback error", err)
	}
	if diff := gocmp.Diff(before, mustDelivery(t, s, "whdl_tx")); diff != "" {
		t.Errorf("delivery after a rolled-back attempt (-before +after):\n%s", diff)
	}

	err = s.InTx(ctx, func(tx store.Store) error {
		_, err := tx.RecordWebhookAttempt(ctx, "whdl_tx", store.WebhookAttempt{At: whAt, StatusCode: 503}, store.DeliveryPending, whAt.Add(time.Minute))
		if err != nil {
			return err
		}
		_, err = tx.RecordWebhookAttempt(ctx, "whdl_tx", store.WebhookAttempt{At: whAt.Add(time.Minute), StatusCode: 200}, store.DeliveryDelivered, time.Time{})
		return err
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if d := mustDelivery(t, s, "whdl_tx"); d.Status != store.DeliveryDelivered || len(d.Attempts) != 2 ||
		d.Attempts[0].StatusCode != 503 || d.Attempts[1].StatusCode != 200 {
		t.Errorf("delivery after a committed transaction = %+v, want delivered after 503 then 200", d)
	}
}

// Attempts recorded at once on one delivery all land, each with its own
// number.
func testWebhookParallelAttempts(t *testing.T, s store.Store) {
	const workers = 20
	ctx := context.Background()
	mustWebhookEndpoint(t, s, "whep_p")
	mustWebhookEvent(t, s, "msg_p", "user.created", whAt)
	mustDeliveries(t, s, store.WebhookDelivery{ID: "whdl_p", EndpointID: "whep_p", EventID: "msg_p", CreatedAt: whAt})

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			a := store.WebhookAttempt{At: whAt.Add(time.Duration(i) * time.Second), StatusCode: 500 + i, Latency: time.Duration(i) * time.Millisecond}
			if _, err := s.RecordWebhookAttempt(ctx, "whdl_p", a, store.DeliveryPending, whAt.Add(time.Hour)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("RecordWebhookAttempt: %v", err)
	}
	d := mustDelivery(t, s, "whdl_p")
	if len(d.Attempts) != workers {
		t.Fatalf("%d attempts after %d concurrent calls, want every one", len(d.Attempts), workers)
	}
	for i, a := range d.Attempts {
		if !a.At.Equal(micro(whAt.Add(time.Duration(i)*time.Second))) || a.StatusCode != 500+i {
			t.Errorf("attempt %d = %+v, want the one made at second %d", i, a, i)
		}
	}
	var distinct, lowest, highest int64
	err := s.InTx(ctx, func(tx store.Store) error {
		return driverQueryRow(ctx, tx, "SELECT count(DISTINCT attempt), min(attempt), max(attempt) FROM webhook_attempts WHERE delivery_id = 'whdl_p'",
			&distinct, &lowest, &highest)
	})
	if err != nil || distinct != workers || lowest != 1 || highest != workers {
		t.Errorf("attempt numbers: %d distinct from %d to %d (%v), want 1 to %d", distinct, lowest, highest, err, workers)
	}
}

func testWebhookList(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustWebhookEndpoint(t, s, "whep_l")
	mustWebhookEndpoint(t, s, "whep_other")
	mustWebhookEvent(t, s, "msg_user", "user.created", whAt)
	mustWebhookEvent(t, s, "msg_session", "session.revoked", whAt)

	// 13 deliveries, created in pairs at the same microsecond, with IDs
	// that do not sort in creation order.
	var in []store.WebhookDelivery
	statuses := []string{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed}
	for i := range 13 {
		event := "msg_user"
		if i%4 == 0 {
			event = "msg_session"
		}
		in = append(in, store.WebhookDelivery{
			ID: fmt.Sprintf("whdl_%02d", (i*7)%13), EndpointID: "whep_l", EventID: event, Status: statuses[i%len(statuses)],
			CreatedAt: whAt.Add(time.Duration(i/2) * time.Minute),
		})
	}
	in = append(in, store.WebhookDelivery{ID: "whdl_other", EndpointID: "whep_other", EventID: "msg_user", CreatedAt: whAt})
	mustDeliveries(t, s, in...)
	mustAttempt(t, s, "whdl_00", store.WebhookAttempt{At: whAt, StatusCode: 500, Response: "oops"}, store.DeliveryPending, whAt.Add(time.Minute))
	mustAttempt(t, s, "whdl_00", store.WebhookAttempt{At: whAt.Add(time.Second), StatusCode: 200}, store.DeliveryDelivered, time.Time{})
	mustAttempt(t, s, "whdl_07", store.WebhookAttempt{At: whAt, StatusCode: 410}, store.DeliveryFailed, time.Time{})
	mustAttempt(t, s, "whdl_other", store.WebhookAttempt{At: whAt, StatusCode: 200}, store.DeliveryDelivered, time.Time{})

	var all []store.WebhookDelivery
	for _, d := range in[:13] {
		all = append(all, mustDelivery(t, s, d.ID))
	}
	slices.SortFunc(all, func(a, b store.WebhookDelivery) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	filter := func(keep func(d store.WebhookDelivery) bool) []store.WebhookDelivery {
		var out []store.WebhookDelivery
		for _, d := range all {
			if keep(d) {
				out = append(out, d)
			}
		}
		return out
	}
	mid := whAt.Add(2 * time.Minute)
	for name, c := range map[string]struct {
		f    store.WebhookDeliveryFilter
		want []store.WebhookDelivery
	}{
		"everything": {store.WebhookDeliveryFilter{}, all},
		"pending":    {store.WebhookDeliveryFilter{Status: store.DeliveryPending}, filter(func(d store.WebhookDelivery) bool { return d.Status == store.DeliveryPending })},
		"delivered":  {store.WebhookDeliveryFilter{Status: store.DeliveryDelivered}, filter(func(d store.WebhookDelivery) bool { return d.Status == store.DeliveryDelivered })},
		"failed":     {store.WebhookDeliveryFilter{Status: store.DeliveryFailed}, filter(func(d store.WebhookDelivery) bool { return d.Status == store.DeliveryFailed })},
		"event type": {store.WebhookDeliveryFilter{EventType: "session.revoked"}, filter(func(d store.WebhookDelivery) bool { return d.EventType == "session.revoked" })},
		"since":      {store.WebhookDeliveryFilter{Since: mid}, filter(func(d store.WebhookDelivery) bool { return !d.CreatedAt.Before(micro(mid)) })},
		"until":      {store.WebhookDeliveryFilter{Until: mid}, filter(func(d store.WebhookDelivery) bool { return d.CreatedAt.Before(micro(mid)) })},
		"everything at once": {store.WebhookDeliveryFilter{Status: store.DeliveryPending, EventType: "user.created", Since: whAt.Add(time.Minute), Until: whAt.Add(5 * time.Minute)},
			filter(func(d store.WebhookDelivery) bool {
				return d.Status == store.DeliveryPending && d.EventType == "user.created" &&
					!d.CreatedAt.Before(micro(whAt.Add(time.Minute))) && d.CreatedAt.Before(micro(whAt.Add(5*time.Minute)))
			})},
		"unknown status": {store.WebhookDeliveryFilter{Status: "lost"}, nil},
		"unknown type":   {store.WebhookDeliveryFilter{EventType: "user.\xff"}, nil},
	} {
		if len(c.want) == 0 && !strings.HasPrefix(name, "unknown") {
			t.Fatalf("test bug: filter %s matches nothing", name)
		}
		for _, size := range []int{2, 5, store.MaxDeliveryLimit} {
			f := c.f
			f.EndpointID, f.Limit = "whep_l", size
			got := listDeliveries(t, s, f)
			if diff := gocmp.Diff(c.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListWebhookDeliveries(%s, pages of %d) (-want +got):\n%s", name, size, diff)
			}
		}
	}
	// The pages carry the attempts (all holds them, as GetWebhookDelivery
	// returns them): check that the test has some to compare.
	if d := all[slices.IndexFunc(all, func(d store.WebhookDelivery) bool { return d.ID == "whdl_00" })]; len(d.Attempts) != 2 {
		t.Fatalf("whdl_00 = %+v, want two attempts", d)
	}
	if got := listDeliveries(t, s, store.WebhookDeliveryFilter{EndpointID: "whep_other"}); len(got) != 1 || got[0].ID != "whdl_other" || len(got[0].Attempts) != 1 {
		t.Errorf("the other endpoint's deliveries = %+v, want whdl_other with its attempt", got)
	}
	if got := listDeliveries(t, s, store.WebhookDeliveryFilter{EndpointID: "whep_unknown"}); len(got) != 0 {
		t.Errorf("an unknown endpoint's deliveries = %+v, want none", got)
	}
	if _, _, err := s.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{}); err == nil {
		t.Error("ListWebhookDeliveries without an endpoint succeeded")
	}

	// Cursors the listing did not hand out: garbage, and the audit log's.
	mustAppend(t, s, store.AuditEvent{Action: "test.one"})
	mustAppend(t, s, store.AuditEvent{Action: "test.two"})
	_, auditCursor, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 1})
	if err != nil || auditCursor == "" {
		t.Fatalf("ListAuditEvents: cursor %q, %v", auditCursor, err)
	}
	for _, cursor := range []string{"garbage!", "ZDEuMTIzLg", auditCursor} {
		_, _, err := s.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{EndpointID: "whep_l", Cursor: cursor})
		if !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ListWebhookDeliveries(cursor %q): err = %v, want ErrInvalidCursor", cursor, err)
		}
	}
}

// listDeliveries pages through every delivery matching f and fails on a
// page that is too big or a cursor that comes back.
func listDeliveries(t *testing.T, s store.Store, f store.WebhookDeliveryFilter) []store.WebhookDelivery {
	t.Helper()
	var all []store.WebhookDelivery
	seen := map[string]bool{}
	for {
		page, next, err := s.ListWebhookDeliveries(context.Background(), f)
		if err != nil {
			t.Fatalf("ListWebhookDeliveries(%+v): %v", f, err)
		}
		if f.Limit > 0 && len(page) > f.Limit {
			t.Fatalf("page of %d deliveries, limit %d", len(page), f.Limit)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		if seen[next] || len(page) == 0 {
			t.Fatalf("cursor %q repeated or after an empty page", next)
		}
		seen[next] = true
		f.Cursor = next
	}
}

func testWebhookStats(t *testing.T, s store.Store) {
	ctx := context.Background()
	since := whAt
	mustWebhookEndpoint(t, s, "whep_s")
	mustWebhookEndpoint(t, s, "whep_other")
	mustWebhookEvent(t, s, "msg_s", "user.created", whAt)
	at := func(d time.Duration) time.Time { return since.Add(d) }
	mustDeliveries(t, s,
		store.WebhookDelivery{ID: "d_old", EndpointID: "whep_s", EventID: "msg_s", CreatedAt: at(-time.Hour)},
		store.WebhookDelivery{ID: "d_edge", EndpointID: "whep_s", EventID: "msg_s", CreatedAt: at(0)},
		store.WebhookDelivery{ID: "d_1", EndpointID: "whep_s", EventID: "msg_s", CreatedAt: at(time.Minute)},
		store.WebhookDelivery{ID: "d_2", EndpointID: "whep_s", EventID: "msg_s", CreatedAt: at(2 * time.Minute)},
		store.WebhookDelivery{ID: "d_3", EndpointID: "whep_s", EventID: "msg_s", CreatedAt: at(3 * time.Minute)},
		store.WebhookDelivery{ID: "d_other", EndpointID: "whep_other", EventID: "msg_s", CreatedAt: at(time.Minute)},
	)
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	for _, a := range []struct {
		id      string
		at      time.Duration
		code    int
		latency time.Duration
		status  string
	}{
		{"d_old", -time.Hour, 200, ms(3), store.DeliveryDelivered}, // before since: not counted
		{"d_old", time.Minute, 500, ms(7), store.DeliveryFailed},   // an old delivery's new attempt counts
		{"d_edge", 0, 200, ms(5.9), store.DeliveryDelivered},       // at since; 5.9 ms is stored as 5
		{"d_1", time.Minute, 500, ms(12), store.DeliveryPending},
		{"d_1", 2 * time.Minute, 503, ms(30), store.DeliveryPending},
		{"d_1", 3 * time.Minute, 201, ms(4), store.DeliveryDelivered},
		{"d_2", 2 * time.Minute, 0, 10 * time.Second, store.DeliveryPending},
		{"d_2", 3 * time.Minute, 0, ms(10500), store.DeliveryPending},
		{"d_2", 4 * time.Minute, 429, ms(2500), store.DeliveryFailed},
		{"d_other", time.Minute, 500, ms(1), store.DeliveryFailed}, // another endpoint
	} {
		mustAttempt(t, s, a.id, store.WebhookAttempt{At: at(a.at), StatusCode: a.code, Latency: a.latency}, a.status, at(time.Hour))
	}

	got, err := s.WebhookDeliveryStats(ctx, "whep_s", since)
	if err != nil {
		t.Fatalf("WebhookDeliveryStats: %v", err)
	}
	want := store.WebhookStats{
		Deliveries: 4, Delivered: 2, Failed: 1, // d_edge, d_1, d_2, d_3
		Attempts: 8, Succeeded: 2,
		ByStatus: map[int]int{500: 2, 503: 1, 0: 2, 429: 1},
		// Bounds 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 ms:
		// 5 and 4; 7; 12; 30; 2500; 10000; 10500.
		LatencyBuckets: []int{2, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1},
	}
	if len(want.LatencyBuckets) != len(store.WebhookLatencyBounds)+1 {
		t.Fatalf("test bug: the bounds changed to %v", store.WebhookLatencyBounds)
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("WebhookDeliveryStats (-want +got):\n%s", diff)
	}

	// Since later: only d_3 was created, and three attempts made.
	got, err = s.WebhookDeliveryStats(ctx, "whep_s", at(3*time.Minute))
	if err != nil {
		t.Fatalf("WebhookDeliveryStats(later): %v", err)
	}
	want = store.WebhookStats{Deliveries: 1, Attempts: 3, Succeeded: 1, ByStatus: map[int]int{0: 1, 429: 1},
		LatencyBuckets: []int{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1}}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("WebhookDeliveryStats(later) (-want +got):\n%s", diff)
	}

	// A zero since counts everything: d_old and its first attempt too.
	got, err = s.WebhookDeliveryStats(ctx, "whep_s", time.Time{})
	if err != nil {
		t.Fatalf("WebhookDeliveryStats(zero since): %v", err)
	}
	want = store.WebhookStats{Deliveries: 5, Delivered: 2, Failed: 2, Attempts: 9, Succeeded: 3,
		ByStatus: map[int]int{500: 2, 503: 1, 0: 2, 429: 1}, LatencyBuckets: []int{3, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1}}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("WebhookDeliveryStats(zero since) (-want +got):\n%s", diff)
	}

	for _, id := range []string{"whep_unknown", "\xff"} {
		got, err = s.WebhookDeliveryStats(ctx, id, since)
		want = store.WebhookStats{ByStatus: map[int]int{}, LatencyBuckets: make([]int, len(store.WebhookLatencyBounds)+1)}
		if err != nil {
			t.Errorf("WebhookDeliveryStats(%q): %v", id, err)
		} else if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("WebhookDeliveryStats(%q) (-want +got):\n%s", id, diff)
		}
	}
}

func testWebhookPending(t *testing.T, s store.Store) {
	ctx := context.Background()
	check := func(what string, wantN int, wantOldest time.Time) {
		t.Helper()
		n, oldest, err := s.PendingWebhookDeliveries(ctx)
		if err != nil || n != wantN || !oldest.Equal(wantOldest) || (!oldest.IsZero() && oldest.Location() != time.UTC) {
			t.Errorf("%s: PendingWebhookDeliveries = %d, %v, %v; want %d, %v", what, n, oldest, err, wantN, wantOldest)
		}
	}
	check("empty", 0, time.Time{})
	mustWebhookEndpoint(t, s, "whep_q")
	mustWebhookEvent(t, s, "msg_q", "user.created", whAt)
	mustDeliveries(t, s,
		store.WebhookDelivery{ID: "whdl_done", EndpointID: "whep_q", EventID: "msg_q", Status: store.DeliveryDelivered, CreatedAt: whAt.Add(-time.Hour)},
		store.WebhookDelivery{ID: "whdl_dead", EndpointID: "whep_q", EventID: "msg_q", Status: store.DeliveryFailed, CreatedAt: whAt.Add(-time.Hour)},
		store.WebhookDelivery{ID: "whdl_old", EndpointID: "whep_q", EventID: "msg_q", CreatedAt: whAt},
		store.WebhookDelivery{ID: "whdl_new", EndpointID: "whep_q", EventID: "msg_q", CreatedAt: whAt.Add(time.Minute)},
	)
	check("two pending", 2, micro(whAt))
	mustAttempt(t, s, "whdl_old", store.WebhookAttempt{At: whAt.Add(time.Hour), StatusCode: 200}, store.DeliveryDelivered, time.Time{})
	check("the oldest delivered", 1, micro(whAt.Add(time.Minute)))
	if _, err := s.RequeueWebhookDelivery(ctx, "whdl_dead", whAt); err != nil {
		t.Fatal(err)
	}
	check("a dead letter requeued", 2, micro(whAt.Add(-time.Hour)))
}

func testWebhookPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	before := whAt
	mustWebhookEndpoint(t, s, "whep_r")
	mustWebhookEvent(t, s, "msg_kept", "user.created", before.Add(-24*time.Hour))  // old, still referenced
	mustWebhookEvent(t, s, "msg_orphaned", "user.created", before.Add(-time.Hour)) // old, its only delivery goes
	mustWebhookEvent(t, s, "msg_never", "user.created", before.Add(-24*time.Hour)) // old, never delivered
	mustWebhookEvent(t, s, "msg_recent", "user.created", before.Add(time.Minute))  // recent, never delivered
	mustWebhookEvent(t, s, "msg_edge", "user.created", before)                     // created at before: not before it
	mustDeliveries(t, s,
		store.WebhookDelivery{ID: "whdl_old_done", EndpointID: "whep_r", EventID: "msg_kept", Status: store.DeliveryDelivered, CreatedAt: before.Add(-time.Hour)},
		store.WebhookDelivery{ID: "whdl_old_pending", EndpointID: "whep_r", EventID: "msg_kept", CreatedAt: before.Add(-2 * time.Hour)},
		store.WebhookDelivery{ID: "whdl_new_failed", EndpointID: "whep_r", EventID: "msg_kept", Status: store.DeliveryFailed, CreatedAt: before.Add(time.Hour)},
		store.WebhookDelivery{ID: "whdl_old_failed", EndpointID: "whep_r", EventID: "msg_orphaned", Status: store.DeliveryFailed, CreatedAt: before.Add(-time.Microsecond)},
		store.WebhookDelivery{ID: "whdl_edge", EndpointID: "whep_r", EventID: "msg_kept", Status: store.DeliveryDelivered, CreatedAt: before},
	)
	mustAttempt(t, s, "whdl_old_done", store.WebhookAttempt{At: before.Add(-time.Hour), StatusCode: 200}, store.DeliveryDelivered, time.Time{})
	mustAttempt(t, s, "whdl_old_failed", store.WebhookAttempt{At: before.Add(-time.Hour), StatusCode: 500}, store.DeliveryFailed, time.Time{})
	mustAttempt(t, s, "whdl_old_pending", store.WebhookAttempt{At: before.Add(-time.Hour), StatusCode: 500}, store.DeliveryPending, before)

	n, err := s.PurgeWebhookDeliveries(ctx, before)
	if err != nil || n != 2 {
		t.Fatalf("PurgeWebhookDeliveries = %d, %v; want 2", n, err)
	}
	for id, kept := range map[string]bool{"whdl_old_done": false, "whdl_old_failed": false, "whdl_old_pending": true, "whdl_new_failed": true, "whdl_edge": true} {
		if _, err := s.GetWebhookDelivery(ctx, id); kept != (err == nil) || (!kept && !errors.Is(err, store.ErrNotFound)) {
			t.Errorf("delivery %s after purge: err = %v, want kept %v", id, err, kept)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM webhook_attempts WHERE delivery_id IN ('whdl_old_done', 'whdl_old_failed')"); n != 0 {
		t.Errorf("%d attempts of purged deliveries left", n)
	}
	if d := mustDelivery(t, s, "whdl_old_pending"); len(d.Attempts) != 1 {
		t.Errorf("the pending delivery's attempts = %+v, want its one attempt", d.Attempts)
	}
	for id, kept := range map[string]bool{"msg_kept": true, "msg_orphaned": false, "msg_never": false, "msg_recent": true, "msg_edge": true} {
		if _, err := s.GetWebhookEvent(ctx, id); kept != (err == nil) || (!kept && !errors.Is(err, store.ErrNotFound)) {
			t.Errorf("event %s after purge: err = %v, want kept %v", id, err, kept)
		}
	}
	if n, err := s.PurgeWebhookDeliveries(ctx, before); err != nil || n != 0 {
		t.Errorf("second PurgeWebhookDeliveries = %d, %v; want 0", n, err)
	}
}
