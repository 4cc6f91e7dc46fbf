package webhook_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook"
)

// count returns how many times s is in list.
func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func TestSendTestAndRetry(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		// Subscribed to user.created only: a test goes to it all the same.
		ep := e.mustCreate(t, webhook.EndpointInput{Events: []string{"user.created"}})
		other := e.mustCreate(t, webhook.EndpointInput{Events: []string{"*"}})
		e.clock.Advance(time.Minute)
		d, err := e.svc.SendTest(ctx, admin, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := store.WebhookDelivery{
			ID: d.ID, EndpointID: ep.ID, EventID: d.EventID, EventType: "webhook.test", Status: store.DeliveryPending,
			NextAttemptAt: e.clock.Now(), CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now(),
		}
		if diff := gocmp.Diff(want, d); diff != "" {
			t.Errorf("test delivery (-want +got):\n%s", diff)
		}
		ev, err := e.store.GetWebhookEvent(ctx, d.EventID)
		if err != nil {
			t.Fatal(err)
		}
		var data map[string]any
		if err := json.Unmarshal(ev.Data, &data); err != nil || data["endpoint_id"] != ep.ID || ev.Type != "webhook.test" {
			t.Errorf("test event %s %s", ev.Type, ev.Data)
		}
		if len(e.deliveriesOf(t, other.ID)) != 0 {
			t.Error("a test went to another endpoint")
		}
		if jobs := e.deliveryJobs(t); !slices.Equal(jobs, []string{d.ID}) {
			t.Errorf("jobs = %v, want the test delivery's", jobs)
		}
		if _, err := e.svc.SendTest(ctx, admin, "whep_none"); !errors.Is(err, webhook.ErrEndpointNotFound) {
			t.Errorf("test of an unknown endpoint: %v", err)
		}

		// Retry: not while pending.
		if _, err := e.svc.RetryDelivery(ctx, admin, d.ID); !errors.Is(err, webhook.ErrDeliveryPending) {
			t.Errorf("retry of a pending delivery: %v, want ErrDeliveryPending", err)
		}
		// Dead: retried now, its attempts kept, its job enqueued.
		failedAt := e.clock.Now().Add(time.Second)
		if _, err := e.store.RecordWebhookAttempt(ctx, d.ID, store.WebhookAttempt{At: failedAt, StatusCode: 500, Latency: 30 * time.Millisecond, Error: "HTTP 500"}, store.DeliveryFailed, time.Time{}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Hour)
		again, err := e.svc.RetryDelivery(ctx, admin, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if again.Status != store.DeliveryPending || !again.NextAttemptAt.Equal(e.clock.Now()) || len(again.Attempts) != 1 || again.Attempts[0].StatusCode != 500 {
			t.Errorf("retried = %+v", again)
		}
		if n := count(e.deliveryJobs(t), d.ID); n != 2 {
			t.Errorf("%d jobs for the delivery after a retry, want 2", n)
		}
		// Delivered: may be sent again.
		if _, err := e.store.RecordWebhookAttempt(ctx, d.ID, store.WebhookAttempt{At: e.clock.Now(), StatusCode: 204}, store.DeliveryDelivered, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if again, err := e.svc.RetryDelivery(ctx, admin, d.ID); err != nil || again.Status != store.DeliveryPending || len(again.Attempts) != 2 {
			t.Errorf("retry of a delivered delivery = %+v, %v", again, err)
		}
		if _, err := e.svc.RetryDelivery(ctx, admin, "whdl_none"); !errors.Is(err, webhook.ErrDeliveryNotFound) {
			t.Errorf("retry of an unknown delivery: %v", err)
		}

		// A disabled endpoint gets neither tests nor retries.
		if _, err := e.store.RecordWebhookAttempt(ctx, d.ID, store.WebhookAttempt{At: e.clock.Now(), StatusCode: 410}, store.DeliveryFailed, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.UpdateEndpoint(ctx, admin, ep.ID, webhook.EndpointPatch{Enabled: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		jobs := len(e.deliveryJobs(t))
		if _, err := e.svc.SendTest(ctx, admin, ep.ID); !errors.Is(err, webhook.ErrEndpointDisabled) {
			t.Errorf("test of a disabled endpoint: %v", err)
		}
		if _, err := e.svc.RetryDelivery(ctx, admin, d.ID); !errors.Is(err, webhook.ErrEndpointDisabled) {
			t.Errorf("retry to a disabled endpoint: %v", err)
		}
		if got := len(e.deliveryJobs(t)); got != jobs {
			t.Errorf("refused calls enqueued %d jobs", got-jobs)
		}
		want2 := []string{"webhook.endpoint_created", "webhook.test_sent", "webhook.delivery_retried", "webhook.delivery_retried", "webhook.endpoint_updated"}
		if got := e.audit(t, ep.ID); !slices.Equal(got, want2) {
			t.Errorf("audit = %v, want %v", got, want2)
		}
	})
}

func TestReplay(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ep := e.mustCreate(t, webhook.EndpointInput{Events: []string{"user.created"}})
		t0 := e.clock.Now()
		// Four sign-ups an hour apart: failed, failed, delivered, pending.
		var ds []store.WebhookDelivery
		for i, status := range []string{store.DeliveryFailed, store.DeliveryFailed, store.DeliveryDelivered, store.DeliveryPending} {
			e.clock.Set(t0.Add(time.Duration(i) * time.Hour))
			e.publish(t, event.UserRegistered{User: e.mustUser(t, string(rune('a'+i))+"@example.com")})
			list := e.deliveriesOf(t, ep.ID)
			d := list[len(list)-1]
			if status != store.DeliveryPending {
				code := map[string]int{store.DeliveryFailed: 503, store.DeliveryDelivered: 200}[status]
				var err error
				if d, err = e.store.RecordWebhookAttempt(ctx, d.ID, store.WebhookAttempt{At: e.clock.Now(), StatusCode: code}, status, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			ds = append(ds, d)
		}
		e.clock.Set(t0.Add(5 * time.Hour))
		jobsBefore := e.deliveryJobs(t)
		status := func() []string {
			var out []string
			for _, d := range e.deliveriesOf(t, ep.ID) {
				out = append(out, d.Status)
			}
			return out
		}

		for _, in := range []webhook.ReplayInput{
			{},
			{Since: t0, Until: t0},
			{Since: t0, Until: t0.Add(-time.Hour)},
			{Since: t0, Status: store.DeliveryPending},
		} {
			if _, err := e.svc.Replay(ctx, admin, ep.ID, in); err == nil {
				t.Errorf("Replay(%+v) succeeded", in)
			} else {
				fields(t, err)
			}
		}
		if _, err := e.svc.Replay(ctx, admin, "whep_none", webhook.ReplayInput{Since: t0}); !errors.Is(err, webhook.ErrEndpointNotFound) {
			t.Errorf("replay of an unknown endpoint: %v", err)
		}

		// The failed ones of a window: the second delivery only.
		n, err := e.svc.Replay(ctx, admin, ep.ID, webhook.ReplayInput{Since: t0.Add(30 * time.Minute), Until: t0.Add(3*time.Hour + 30*time.Minute), Status: store.DeliveryFailed})
		if err != nil || n != 1 {
			t.Fatalf("Replay(failed in the window) = %d, %v; want 1", n, err)
		}
		if got, want := status(), []string{"failed", "pending", "delivered", "pending"}; !slices.Equal(got, want) {
			t.Errorf("statuses = %v, want %v", got, want)
		}
		jobs := e.deliveryJobs(t)
		if len(jobs) != len(jobsBefore)+1 || jobs[len(jobs)-1] != ds[1].ID {
			t.Errorf("jobs %v after %v: want one more, for %s", jobs, jobsBefore, ds[1].ID)
		}
		got, err := e.store.GetWebhookDelivery(ctx, ds[1].ID)
		if err != nil || !got.NextAttemptAt.Equal(e.clock.Now()) || len(got.Attempts) != 1 {
			t.Errorf("replayed delivery = %+v, %v; want due now with its attempt kept", got, err)
		}

		// Every status, no end: the first (failed) and the third
		// (delivered); the pending ones are left alone.
		n, err = e.svc.Replay(ctx, admin, ep.ID, webhook.ReplayInput{Since: t0})
		if err != nil || n != 2 {
			t.Fatalf("Replay(since t0) = %d, %v; want 2", n, err)
		}
		if got := status(); !slices.Equal(got, []string{"pending", "pending", "pending", "pending"}) {
			t.Errorf("statuses = %v", got)
		}
		if jobs := e.deliveryJobs(t); len(jobs) != len(jobsBefore)+3 || !sameSet(jobs[len(jobs)-2:], []string{ds[0].ID, ds[2].ID}) {
			t.Errorf("jobs = %v", jobs)
		}
		// Nothing matches: zero, audited all the same.
		if n, err := e.svc.Replay(ctx, admin, ep.ID, webhook.ReplayInput{Since: t0, Status: store.DeliveryFailed}); err != nil || n != 0 {
			t.Errorf("empty replay = %d, %v", n, err)
		}
		list, _, err := e.store.ListAuditEvents(ctx, store.AuditFilter{SubjectID: ep.ID, Limit: 3})
		if err != nil || len(list) != 3 {
			t.Fatal(list, err)
		}
		for i, want := range []float64{0, 2, 1} {
			if list[i].Action != "webhook.replayed" || list[i].Data["replayed"] != want {
				t.Errorf("audit %d = %s %v, want webhook.replayed of %v", i, list[i].Action, list[i].Data, want)
			}
		}
		if d := list[2].Data; d["status"] != "failed" || !strings.HasPrefix(d["until"].(string), "2026-12-01T15:30:00") {
			t.Errorf("audit of the windowed replay: %v", d)
		}

		// Disabled: refused.
		if _, err := e.svc.UpdateEndpoint(ctx, admin, ep.ID, webhook.EndpointPatch{Enabled: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Replay(ctx, admin, ep.ID, webhook.ReplayInput{Since: t0}); !errors.Is(err, webhook.ErrEndpointDisabled) {
			t.Errorf("replay to a disabled endpoint: %v", err)
		}
	})
}

// A replay that matches more than MaxReplay deliveries sends none.
func TestReplayIsBounded(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ep := e.mustCreate(t, webhook.EndpointInput{Events: []string{"*"}})
		if err := e.store.CreateWebhookEvent(ctx, store.WebhookEvent{ID: "msg_bulk", Type: "user.created", CreatedAt: start}); err != nil {
			t.Fatal(err)
		}
		var ds []store.WebhookDelivery
		for i := range webhook.MaxReplay + 1 {
			ds = append(ds, store.WebhookDelivery{ID: fmt.Sprintf("whdl_%06d", i), EndpointID: ep.ID, EventID: "msg_bulk", CreatedAt: start})
		}
		if err := e.store.CreateWebhookDeliveries(ctx, ds); err != nil {
			t.Fatal(err)
		}
		e.exec(t, "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL")
		_, err := e.svc.Replay(ctx, admin, ep.ID, webhook.ReplayInput{Since: start.Add(-time.Hour), Status: store.DeliveryFailed})
		if !errors.Is(err, webhook.ErrReplayTooLarge) {
			t.Fatalf("Replay(1001) = %v, want ErrReplayTooLarge", err)
		}
		if n := e.count(t, "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'failed'"); n != webhook.MaxReplay+1 {
			t.Errorf("%d failed after a refused replay, want all %d", n, webhook.MaxReplay+1)
		}
		if jobs := e.deliveryJobs(t); len(jobs) != 0 {
			t.Errorf("a refused replay enqueued %d jobs", len(jobs))
		}
		// A window of exactly MaxReplay: done.
		e.exec(t, "UPDATE webhook_deliveries SET status = 'delivered' WHERE id = 'whdl_000000'")
		n, err := e.svc.Replay(ctx, admin, ep.ID, webhook.ReplayInput{Since: start.Add(-time.Hour), Status: store.DeliveryFailed})
		if err != nil || n != webhook.MaxReplay || len(e.deliveryJobs(t)) != webhook.MaxReplay {
			t.Errorf("Replay(1000) = %d, %v with %d jobs", n, err, len(e.deliveryJobs(t)))
		}
	})
}

func TestStats(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ep := e.mustCreate(t, webhook.EndpointInput{Events: []string{"*"}})
		now := start.Add(10 * 24 * time.Hour)
		e.clock.Set(now)

		empty, err := e.svc.Stats(ctx, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if w := empty.Day; w.Deliveries != 0 || w.SuccessRate != -1 || w.LatencyP50 != -1 || w.LatencyP95 != -1 || len(w.FailuresByStatus) != 0 {
			t.Errorf("no deliveries: %+v", w)
		}

		if err := e.store.CreateWebhookEvent(ctx, store.WebhookEvent{ID: "msg_1", Type: "user.created", CreatedAt: now.Add(-4 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		type attempt struct {
			code    int
			latency time.Duration
		}
		for i, d := range []struct {
			age      time.Duration
			status   string
			attempts []attempt
		}{
			{time.Hour, store.DeliveryDelivered, []attempt{{500, 30 * time.Millisecond}, {200, 40 * time.Millisecond}}},
			{time.Hour, store.DeliveryFailed, []attempt{{0, 12 * time.Second}, {503, 20 * time.Millisecond}}},
			{time.Hour, store.DeliveryPending, nil},
			{time.Hour, store.DeliveryDelivered, []attempt{{204, 3 * time.Millisecond}}},
			{3 * 24 * time.Hour, store.DeliveryDelivered, []attempt{{200, 700 * time.Millisecond}}},
			{3 * 24 * time.Hour, store.DeliveryFailed, []attempt{{410, 90 * time.Millisecond}}},
			{8 * 24 * time.Hour, store.DeliveryFailed, []attempt{{500, time.Millisecond}}}, // older than a week
		} {
			id := fmt.Sprintf("whdl_%d", i)
			created := now.Add(-d.age)
			if err := e.store.CreateWebhookDeliveries(ctx, []store.WebhookDelivery{{ID: id, EndpointID: ep.ID, EventID: "msg_1", CreatedAt: created}}); err != nil {
				t.Fatal(err)
			}
			for j, a := range d.attempts {
				status := store.DeliveryPending
				if j == len(d.attempts)-1 {
					status = d.status
				}
				at := created.Add(time.Duration(j+1) * time.Minute)
				if _, err := e.store.RecordWebhookAttempt(ctx, id, store.WebhookAttempt{At: at, StatusCode: a.code, Latency: a.latency}, status, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		st, err := e.svc.Stats(ctx, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := webhook.Stats{
			// Latencies 3, 20, 30, 40 ms and 12 s: the median (the 3rd)
			// is in the bucket up to 50 ms, the 95th percentile (the
			// 5th) above every bound.
			Day: webhook.WindowStats{
				Since: now.Add(-24 * time.Hour), Deliveries: 4, Delivered: 2, Failed: 1, Pending: 1, SuccessRate: 2.0 / 3,
				Attempts: 5, AttemptsSucceeded: 2, LatencyP50: 50 * time.Millisecond, LatencyP95: 10 * time.Second,
				FailuresByStatus: map[int]int{0: 1, 500: 1, 503: 1},
			},
			// And 90 and 700 ms: the 4th of 7 is 40 ms.
			Week: webhook.WindowStats{
				Since: now.Add(-7 * 24 * time.Hour), Deliveries: 6, Delivered: 3, Failed: 2, Pending: 1, SuccessRate: 3.0 / 5,
				Attempts: 7, AttemptsSucceeded: 3, LatencyP50: 50 * time.Millisecond, LatencyP95: 10 * time.Second,
				FailuresByStatus: map[int]int{0: 1, 410: 1, 500: 1, 503: 1},
			},
		}
		if diff := gocmp.Diff(want, st); diff != "" {
			t.Errorf("Stats (-want +got):\n%s", diff)
		}
		if _, err := e.svc.Stats(ctx, "whep_none"); !errors.Is(err, webhook.ErrEndpointNotFound) {
			t.Errorf("stats of an unknown endpoint: %v", err)
		}
	})
}
