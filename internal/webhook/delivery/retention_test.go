package delivery_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

func TestPurgeWorker(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		st := b.store
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		if _, err := st.CreateWebhookEndpoint(ctx, store.WebhookEndpoint{ID: "whep_r", URL: "https://hooks.example.com/", Events: []string{"*"}, Enabled: true, Secret: "sealed"}); err != nil {
			t.Fatal(err)
		}
		add := func(id, status string, age time.Duration) {
			at := now.Add(-age)
			ev := store.WebhookEvent{ID: "msg_" + id, Type: "user.created", OccurredAt: at, Data: []byte(`{}`), CreatedAt: at}
			if err := st.CreateWebhookEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
			d := store.WebhookDelivery{ID: id, EndpointID: "whep_r", EventID: ev.ID, EventType: ev.Type, Status: status, CreatedAt: at, UpdatedAt: at}
			if status == store.DeliveryPending {
				d.NextAttemptAt = now
			}
			if err := st.CreateWebhookDeliveries(ctx, []store.WebhookDelivery{d}); err != nil {
				t.Fatal(err)
			}
		}
		const day = 24 * time.Hour
		add("whdl_old_delivered", store.DeliveryDelivered, 31*day)
		add("whdl_old_failed", store.DeliveryFailed, 31*day)
		add("whdl_old_pending", store.DeliveryPending, 31*day)
		add("whdl_recent", store.DeliveryFailed, 29*day)

		w, err := delivery.NewPurgeWorker(delivery.PurgeDeps{Store: st, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Work(ctx, &river.Job[delivery.PurgeArgs]{}); err != nil {
			t.Fatal(err)
		}
		for id, kept := range map[string]bool{
			"whdl_old_delivered": false, "whdl_old_failed": false, "whdl_old_pending": true, "whdl_recent": true,
		} {
			_, err := st.GetWebhookDelivery(ctx, id)
			if kept && err != nil || !kept && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: %v, want kept %v", id, err, kept)
			}
		}
		// A shorter retention reaches the recent one.
		w, _ = delivery.NewPurgeWorker(delivery.PurgeDeps{Store: st, Retention: 7 * day, Now: func() time.Time { return now }})
		if err := w.Work(ctx, &river.Job[delivery.PurgeArgs]{}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetWebhookDelivery(ctx, "whdl_recent"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("recent delivery with a 7-day retention: %v", err)
		}
	})
}

func TestConstructorsCheckDeps(t *testing.T) {
	_, err := delivery.NewWorker(delivery.Deps{})
	if err == nil || !strings.Contains(err.Error(), "Jobs, Notify, Secrets, Store") {
		t.Errorf("NewWorker without deps: %v", err)
	}
	if _, err := delivery.NewPurgeWorker(delivery.PurgeDeps{}); err == nil || !strings.Contains(err.Error(), "Store") {
		t.Errorf("NewPurgeWorker without a store: %v", err)
	}
	if delivery.PeriodicPurge() == nil {
		t.Error("no periodic purge")
	}
}
