package delivery_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gatehouse/gatehouse/internal/jobs"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

// waitTimeout bounds every wait; reaching it is a failure, not a
// performance measurement.
const waitTimeout = 30 * time.Second

// backend is a migrated store and how to make a job queue and read a
// job's state on its database.
type backend struct {
	store    store.Store
	newQueue func(*river.Workers, jobs.Config) (*jobs.Queue, error)
	jobState func(t testing.TB, id int64) string
}

var backends = []struct {
	name string
	open func(t testing.TB) backend
}{
	{"sqlite", func(t testing.TB) backend {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		migrate(t, s)
		return backend{
			store: s,
			newQueue: func(w *river.Workers, c jobs.Config) (*jobs.Queue, error) {
				return jobs.NewSQLite(s.Writer(), w, c)
			},
			jobState: func(t testing.TB, id int64) string {
				var st string
				if err := s.Writer().QueryRowContext(t.Context(), `SELECT state FROM river_job WHERE id = ?`, id).Scan(&st); err != nil {
					t.Fatal(err)
				}
				return st
			},
		}
	}},
	{"postgres", func(t testing.TB) backend {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		migrate(t, s)
		return backend{
			store: s,
			newQueue: func(w *river.Workers, c jobs.Config) (*jobs.Queue, error) {
				return jobs.NewPostgres(s.Pool(), w, c)
			},
			jobState: func(t testing.TB, id int64) string {
				var st string
				if err := s.Pool().QueryRow(t.Context(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&st); err != nil {
					t.Fatal(err)
				}
				return st
			},
		}
	}},
}

func migrate(t testing.TB, s store.Store) {
	t.Helper()
	if _, err := s.Migrator().Up(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// eachBackend runs fn on SQLite and on PostgreSQL.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

// syncBuffer collects logs written from River's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a started River queue working deliveries on a real store.
type env struct {
	b        backend
	st       store.Store
	q        *jobs.Queue
	keys     *secret.Keyring
	reg      *prometheus.Registry
	logs     *syncBuffer
	mu       sync.Mutex
	notified []store.WebhookEndpoint
	now      func() time.Time
}

// options change the worker's dependencies from the tests' defaults
// (private destinations allowed, schedule 10ms,20ms).
type options func(*delivery.Deps)

func newEnv(t testing.TB, b backend, opts ...options) *env {
	t.Helper()
	return newEnvN(t, b, 4, opts...)
}

// newEnvN is newEnv working n deliveries at once.
func newEnvN(t testing.TB, b backend, n int, opts ...options) *env {
	t.Helper()
	ks, err := secret.GenerateKeyString("t1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.ParseKeys(ks)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{b: b, st: b.store, keys: kr, reg: prometheus.NewRegistry(), logs: &syncBuffer{}, now: time.Now}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs)
		}
	})
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	workers := river.NewWorkers()
	q, err := b.newQueue(workers, jobs.Config{
		Queues:            map[string]int{delivery.Queue: n},
		Logger:            log,
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	d := delivery.Deps{
		Store:        store.Narrow(b.store, func(tx store.Store) delivery.Tx { return tx }),
		Jobs:         q,
		Secrets:      kr,
		Destinations: delivery.Destinations{AllowPrivate: true},
		Schedule:     delivery.Schedule{10 * time.Millisecond, 20 * time.Millisecond},
		Timeout:      5 * time.Second,
		Notify: func(_ context.Context, ep store.WebhookEndpoint) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.notified = append(e.notified, ep)
			return nil
		},
		Metrics: delivery.NewMetrics(e.reg, b.store, nil, log),
		Now:     func() time.Time { return e.now() },
		Log:     log,
	}
	for _, o := range opts {
		o(&d)
	}
	w, err := delivery.NewWorker(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := river.AddWorkerSafely(workers, w); err != nil {
		t.Fatal(err)
	}
	if err := q.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Errorf("stop queue: %v", err)
		}
	})
	return e
}

func (e *env) notifications() []store.WebhookEndpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]store.WebhookEndpoint(nil), e.notified...)
}

// endpoint stores an enabled endpoint to url signed with a new secret,
// which it returns.
func (e *env) endpoint(t testing.TB, id, url string, change ...func(*store.WebhookEndpoint)) (store.WebhookEndpoint, string) {
	t.Helper()
	s, err := delivery.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := delivery.SealSecret(e.keys, id, s)
	if err != nil {
		t.Fatal(err)
	}
	ep := store.WebhookEndpoint{ID: id, URL: url, Events: []string{"user.*"}, Enabled: true, Secret: sealed}
	for _, c := range change {
		c(&ep)
	}
	ep, err = e.st.CreateWebhookEndpoint(t.Context(), ep)
	if err != nil {
		t.Fatal(err)
	}
	return ep, s
}

var seq int

// deliver stores an event and its delivery to ep and enqueues the
// delivery's first job, as the outbox does; it returns the event and the
// delivery's ID.
func (e *env) deliver(t testing.TB, ep store.WebhookEndpoint) (store.WebhookEvent, string) {
	t.Helper()
	seq++
	now := e.now().UTC()
	ev := store.WebhookEvent{
		ID: fmt.Sprintf("msg_%d_%d", seq, now.UnixNano()), Type: "user.created", OccurredAt: now.Truncate(time.Microsecond),
		Data: []byte(`{"user_id":"u1","email":"ann@example.com"}`), UserID: "u1", CreatedAt: now,
	}
	id := fmt.Sprintf("whdl_%d_%d", seq, now.UnixNano())
	err := e.st.InTx(t.Context(), func(tx store.Store) error {
		if err := tx.CreateWebhookEvent(t.Context(), ev); err != nil {
			return err
		}
		if err := tx.CreateWebhookDeliveries(t.Context(), []store.WebhookDelivery{{
			ID: id, EndpointID: ep.ID, EventID: ev.ID, EventType: ev.Type,
			Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now,
		}}); err != nil {
			return err
		}
		_, err := e.q.InsertTx(t.Context(), tx.DriverTx(), delivery.DeliverArgs{DeliveryID: id}, delivery.InsertOpts())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev, id
}

// waitDelivery waits until the delivery is no longer pending, or has at
// least attempts attempts when attempts > 0.
func (e *env) waitDelivery(t testing.TB, id string, attempts int) store.WebhookDelivery {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		d, err := e.st.GetWebhookDelivery(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if attempts > 0 && len(d.Attempts) >= attempts || attempts == 0 && d.Status != store.DeliveryPending {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s still %s with %d attempts after %s", id, d.Status, len(d.Attempts), waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitJob waits until the job has run to completion.
func (e *env) waitJob(t testing.TB, id int64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st := e.b.jobState(t, id)
		if st == "completed" {
			return
		}
		if st == "discarded" || st == "cancelled" || time.Now().After(deadline) {
			t.Fatalf("job %d is %s, want completed", id, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a webhook receiver answering with a script of responses,
// the last one repeated.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []request
}

type answer struct {
	status int
	header map[string]string
	body   string
}

func newReceiver(t testing.TB, script ...answer) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, request{header: req.Header.Clone(), body: body, at: time.Now()})
		r.mu.Unlock()
		a := script[min(n, len(script)-1)]
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// verify checks a request's signature with the official library and the
// given secret.
func verify(t testing.TB, secret string, r request) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh.Verify(r.body, r.header)
}

func statuses(d store.WebhookDelivery) []int {
	var s []int
	for _, a := range d.Attempts {
		s = append(s, a.StatusCode)
	}
	return s
}

// waitCounter waits (a few seconds at most) for the deliveries counter of
// outcome to reach want and returns it: the worker counts an attempt once
// its record committed, a moment after the delivery shows its new status.
func waitCounter(t testing.TB, e *env, outcome string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := counter(t, e, outcome)
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func counter(t testing.TB, e *env, outcome string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gatehouse_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestDelivered(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		big := strings.Repeat("r", 10<<10)
		rcv := newReceiver(t, answer{status: 202, body: big})
		ep, secret := e.endpoint(t, "whep_ok", rcv.srv.URL+"/hook?token=s3cr3t")
		ev, id := e.deliver(t, ep)

		d := e.waitDelivery(t, id, 0)
		if d.Status != store.DeliveryDelivered || len(d.Attempts) != 1 {
			t.Fatalf("delivery %s with %d attempts, want delivered after one", d.Status, len(d.Attempts))
		}
		a := d.Attempts[0]
		if a.StatusCode != 202 || a.Error != "" || !d.NextAttemptAt.IsZero() {
			t.Errorf("attempt %+v, next %v", a, d.NextAttemptAt)
		}
		if a.Response != big[:4096] {
			t.Errorf("recorded response of %d bytes, want the first 4096", len(a.Response))
		}
		reqs := rcv.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		r := reqs[0]
		want, _ := delivery.Envelope(ev)
		if !bytes.Equal(r.body, want) {
			t.Errorf("body %s, want %s", r.body, want)
		}
		if r.header.Get("webhook-id") != ev.ID {
			t.Errorf("webhook-id %q, want the event's ID %q", r.header.Get("webhook-id"), ev.ID)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("content-type %q", ct)
		}
		if ua := r.header.Get("User-Agent"); !strings.Contains(ua, "Gatehouse") {
			t.Errorf("user-agent %q", ua)
		}
		if err := verify(t, secret, r); err != nil {
			t.Errorf("official library: %v", err)
		}
		if n := len(strings.Split(r.header.Get("webhook-signature"), " ")); n != 1 {
			t.Errorf("%d signatures without a rotation, want 1", n)
		}
		if got := waitCounter(t, e, "delivered", 1); got != 1 {
			t.Errorf("delivered counter %v, want 1", got)
		}
		if n := testutil.CollectAndCount(e.reg, "gatehouse_webhook_delivery_seconds"); n != 1 {
			t.Errorf("latency histogram has %d series", n)
		}
		if strings.Contains(e.logs.String(), "s3cr3t") {
			t.Error("the URL's query string was logged")
		}
	})
}

func TestRetriedThenDelivered(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, func(d *delivery.Deps) {
			d.Schedule = delivery.Schedule{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}
		})
		rcv := newReceiver(t, answer{status: 500, body: "oops"}, answer{status: 500}, answer{status: 200, body: "thanks"})
		ep, secret := e.endpoint(t, "whep_flaky", rcv.srv.URL+"/hook?token=s3cr3t")
		_, id := e.deliver(t, ep)

		d := e.waitDelivery(t, id, 0)
		if d.Status != store.DeliveryDelivered || fmt.Sprint(statuses(d)) != "[500 500 200]" {
			t.Fatalf("delivery %s with statuses %v, want delivered after 500, 500, 200", d.Status, statuses(d))
		}
		if d.Attempts[0].Response != "oops" || !strings.Contains(d.Attempts[0].Error, "500") || d.Attempts[2].Error != "" {
			t.Errorf("attempts %+v", d.Attempts)
		}
		reqs := rcv.requests()
		if len(reqs) != 3 {
			t.Fatalf("%d requests, want 3", len(reqs))
		}
		for i, r := range reqs {
			if r.header.Get("webhook-id") != reqs[0].header.Get("webhook-id") || !bytes.Equal(r.body, reqs[0].body) {
				t.Errorf("request %d: webhook-id %q and body differ from the first", i, r.header.Get("webhook-id"))
			}
			if err := verify(t, secret, r); err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}
		if reqs[1].at.Sub(reqs[0].at) < 8*time.Millisecond {
			t.Errorf("second attempt %s after the first, want the schedule's 10ms (±20%%)", reqs[1].at.Sub(reqs[0].at))
		}
		ep, err := e.st.GetWebhookEndpoint(t.Context(), ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !ep.FailingSince.IsZero() || !ep.Enabled {
			t.Errorf("endpoint after recovery: failing since %v, enabled %v", ep.FailingSince, ep.Enabled)
		}
		if got := waitCounter(t, e, "retry", 2); got != 2 {
			t.Errorf("retry counter %v, want 2", got)
		}
		// The failed attempts' log lines name the delivery, never the
		// URL's query string.
		logs := e.logs.String()
		if !strings.Contains(logs, "webhook attempt failed") || !strings.Contains(logs, id) || !strings.Contains(logs, "whep_flaky") {
			t.Errorf("no failed-attempt log line naming the delivery and endpoint:\n%s", logs)
		}
		if strings.Contains(logs, "s3cr3t") || strings.Contains(logs, "/hook") {
			t.Error("the URL's path or query string was logged")
		}
	})
}

func TestFailedAfterSchedule(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		rcv := newReceiver(t, answer{status: 503})
		ep, _ := e.endpoint(t, "whep_down", rcv.srv.URL)
		_, id := e.deliver(t, ep)

		d := e.waitDelivery(t, id, 0)
		if d.Status != store.DeliveryFailed || fmt.Sprint(statuses(d)) != "[503 503 503]" || !d.NextAttemptAt.IsZero() {
			t.Fatalf("delivery %s with statuses %v (next %v), want failed after 3 attempts", d.Status, statuses(d), d.NextAttemptAt)
		}
		time.Sleep(200 * time.Millisecond)
		if n := len(rcv.requests()); n != 3 {
			t.Errorf("%d requests, want 1 + len(schedule) = 3", n)
		}
		ep, err := e.st.GetWebhookEndpoint(t.Context(), ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ep.FailingSince.IsZero() || !ep.Enabled {
			t.Errorf("endpoint: failing since %v, enabled %v; want failing, still enabled", ep.FailingSince, ep.Enabled)
		}
		if got := waitCounter(t, e, "failed", 1); got != 1 {
			t.Errorf("failed counter %v, want 1", got)
		}
		if len(e.notifications()) != 0 {
			t.Error("notified though the endpoint was not disabled")
		}
	})
}

func TestClientErrorFailsAtOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		for _, code := range []int{400, 401, 404, 302} {
			rcv := newReceiver(t, answer{status: code, header: map[string]string{"Location": "http://example.com/"}})
			ep, _ := e.endpoint(t, "whep_"+strconv.Itoa(code), rcv.srv.URL)
			_, id := e.deliver(t, ep)
			d := e.waitDelivery(t, id, 0)
			if d.Status != store.DeliveryFailed || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != code {
				t.Errorf("%d: delivery %s with statuses %v, want failed after one attempt", code, d.Status, statuses(d))
			}
		}
	})
}

func TestGoneDisablesEndpoint(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		rcv := newReceiver(t, answer{status: 410})
		ep, _ := e.endpoint(t, "whep_gone", rcv.srv.URL)
		_, id := e.deliver(t, ep)

		d := e.waitDelivery(t, id, 0)
		if d.Status != store.DeliveryFailed || fmt.Sprint(statuses(d)) != "[410]" {
			t.Fatalf("delivery %s with statuses %v, want failed after one 410", d.Status, statuses(d))
		}
		got, err := e.st.GetWebhookEndpoint(t.Context(), ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Enabled || got.DisabledReason != store.EndpointGone {
			t.Errorf("endpoint enabled %v, reason %q; want disabled as gone", got.Enabled, got.DisabledReason)
		}
		n := e.notifications()
		if len(n) != 1 || n[0].ID != ep.ID || n[0].Enabled || n[0].DisabledReason != store.EndpointGone {
			t.Errorf("notifications %+v, want one of the disabled endpoint", n)
		}
		if got := waitCounter(t, e, "gone", 1); got != 1 {
			t.Errorf("gone counter %v", got)
		}

		// Later deliveries to the disabled endpoint send nothing.
		_, id2 := e.deliver(t, ep)
		d2 := e.waitDelivery(t, id2, 0)
		if d2.Status != store.DeliveryFailed || len(d2.Attempts) != 1 || d2.Attempts[0].Error != "endpoint disabled" || d2.Attempts[0].StatusCode != 0 {
			t.Errorf("delivery to a disabled endpoint: %s %+v", d2.Status, d2.Attempts)
		}
		if len(rcv.requests()) != 1 {
			t.Errorf("%d requests, want only the first", len(rcv.requests()))
		}
		if len(e.notifications()) != 1 {
			t.Error("notified again")
		}
	})
}

func TestFailingEndpointDisabled(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, func(d *delivery.Deps) {
			d.DisableAfter = 48 * time.Hour
			d.Schedule = delivery.Schedule{time.Hour}
			d.Rand = func() float64 { return 0.5 } // no jitter: the wait is the hour
		})
		rcv := newReceiver(t, answer{status: 500})
		// Failing for a day: one more failure keeps it enabled.
		recent, _ := e.endpoint(t, "whep_recent", rcv.srv.URL, func(ep *store.WebhookEndpoint) {
			ep.FailingSince = time.Now().Add(-24 * time.Hour)
		})
		_, id := e.deliver(t, recent)
		d := e.waitDelivery(t, id, 1)
		if d.Status != store.DeliveryPending || d.NextAttemptAt.Before(time.Now().Add(50*time.Minute)) {
			t.Errorf("delivery %s next at %v, want pending for about an hour", d.Status, d.NextAttemptAt)
		}
		if got, _ := e.st.GetWebhookEndpoint(t.Context(), recent.ID); !got.Enabled {
			t.Error("endpoint failing for a day was disabled")
		}

		// Failing for three days: disabled, its delivery failed, notified.
		old, _ := e.endpoint(t, "whep_old", rcv.srv.URL, func(ep *store.WebhookEndpoint) {
			ep.FailingSince = time.Now().Add(-72 * time.Hour)
		})
		_, id = e.deliver(t, old)
		d = e.waitDelivery(t, id, 0)
		if d.Status != store.DeliveryFailed || len(d.Attempts) != 1 {
			t.Errorf("delivery %s with %d attempts, want failed at once", d.Status, len(d.Attempts))
		}
		got, err := e.st.GetWebhookEndpoint(t.Context(), old.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Enabled || got.DisabledReason != store.EndpointFailing {
			t.Errorf("endpoint enabled %v, reason %q; want disabled as failing", got.Enabled, got.DisabledReason)
		}
		if n := e.notifications(); len(n) != 1 || n[0].ID != old.ID {
			t.Errorf("notifications %+v, want the old endpoint's", n)
		}

		// A success clears the failing mark.
		ok := newReceiver(t, answer{status: 200})
		healed, _ := e.endpoint(t, "whep_healed", ok.srv.URL, func(ep *store.WebhookEndpoint) {
			ep.FailingSince = time.Now().Add(-72 * time.Hour)
		})
		_, id = e.deliver(t, healed)
		e.waitDelivery(t, id, 0)
		if got, _ := e.st.GetWebhookEndpoint(t.Context(), healed.ID); !got.FailingSince.IsZero() || !got.Enabled {
			t.Errorf("after a success: failing since %v, enabled %v", got.FailingSince, got.Enabled)
		}
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		rcv := newReceiver(t, answer{status: 429, header: map[string]string{"Retry-After": "1"}}, answer{status: 200})
		ep, _ := e.endpoint(t, "whep_busy", rcv.srv.URL)
		_, id := e.deliver(t, ep)

		first := e.waitDelivery(t, id, 1)
		if len(first.Attempts) == 1 {
			if wait := first.NextAttemptAt.Sub(first.Attempts[0].At); wait < time.Second {
				t.Errorf("next attempt %s after the 429, want Retry-After's 1s", wait)
			}
		}
		d := e.waitDelivery(t, id, 0)
		if d.Status != store.DeliveryDelivered || fmt.Sprint(statuses(d)) != "[429 200]" {
			t.Fatalf("delivery %s with statuses %v", d.Status, statuses(d))
		}
		reqs := rcv.requests()
		if gap := reqs[1].at.Sub(reqs[0].at); gap < time.Second {
			t.Errorf("retried %s after a Retry-After of 1s", gap)
		}
	})
}

func TestRotationOverlapSignsTwice(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		rcv := newReceiver(t, answer{status: 200})
		oldSecret, _ := delivery.NewSecret()
		var sealedOld string
		ep, current := e.endpoint(t, "whep_rot", rcv.srv.URL, func(ep *store.WebhookEndpoint) {
			var err error
			sealedOld, err = delivery.SealSecret(e.keys, ep.ID, oldSecret)
			if err != nil {
				t.Fatal(err)
			}
			ep.PreviousSecret, ep.PreviousSecretExpiresAt = sealedOld, time.Now().Add(24*time.Hour)
		})
		_, id := e.deliver(t, ep)
		e.waitDelivery(t, id, 0)
		r := rcv.requests()[0]
		if n := len(strings.Split(r.header.Get("webhook-signature"), " ")); n != 2 {
			t.Fatalf("%d signatures during the overlap, want 2", n)
		}
		for name, s := range map[string]string{"current": current, "previous": oldSecret} {
			if err := verify(t, s, r); err != nil {
				t.Errorf("%s secret: %v", name, err)
			}
		}

		// Once the overlap is over, the previous secret no longer signs.
		ep.PreviousSecretExpiresAt = time.Now().Add(-time.Minute)
		if _, err := e.st.UpdateWebhookEndpoint(t.Context(), ep); err != nil {
			t.Fatal(err)
		}
		_, id = e.deliver(t, ep)
		e.waitDelivery(t, id, 0)
		r = rcv.requests()[1]
		if n := len(strings.Split(r.header.Get("webhook-signature"), " ")); n != 1 {
			t.Errorf("%d signatures after the overlap, want 1", n)
		}
		if err := verify(t, oldSecret, r); err == nil {
			t.Error("the expired secret still verifies")
		}
		if err := verify(t, current, r); err != nil {
			t.Errorf("current secret: %v", err)
		}
	})
}

func TestRefusedDestinationRecorded(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, func(d *delivery.Deps) {
			d.Destinations = delivery.Destinations{}
			d.Schedule = delivery.Schedule{10 * time.Millisecond}
		})
		rcv := newReceiver(t, answer{status: 200})
		ep, _ := e.endpoint(t, "whep_private", rcv.srv.URL+"/in?token=s3cr3t")
		_, id := e.deliver(t, ep)

		d := e.waitDelivery(t, id, 0)
		if d.Status != store.DeliveryFailed || len(d.Attempts) != 2 {
			t.Fatalf("delivery %s with %d attempts, want failed after the schedule", d.Status, len(d.Attempts))
		}
		for _, a := range d.Attempts {
			if a.StatusCode != 0 || !strings.Contains(a.Error, "refused") || !strings.Contains(a.Error, "loopback") {
				t.Errorf("attempt %+v, want refused as loopback", a)
			}
			if strings.Contains(a.Error, "s3cr3t") {
				t.Errorf("attempt error %q quotes the URL", a.Error)
			}
		}
		if n := len(rcv.requests()); n != 0 {
			t.Errorf("%d requests reached the private receiver", n)
		}
		if got := waitCounter(t, e, "refused", 2); got != 2 {
			t.Errorf("refused counter %v, want 2", got)
		}
		if got, _ := e.st.GetWebhookEndpoint(t.Context(), ep.ID); got.FailingSince.IsZero() {
			t.Error("refused attempts did not mark the endpoint failing")
		}
	})
}

func TestSecondRunSendsNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, func(d *delivery.Deps) { d.Schedule = delivery.Schedule{time.Hour} })
		rcv := newReceiver(t, answer{status: 200})
		ep, _ := e.endpoint(t, "whep_once", rcv.srv.URL)
		_, id := e.deliver(t, ep)
		e.waitDelivery(t, id, 0)

		// The same job again (River rescued it after a crash): delivered
		// already, nothing is sent.
		job, err := e.q.Insert(t.Context(), delivery.DeliverArgs{DeliveryID: id}, delivery.InsertOpts())
		if err != nil {
			t.Fatal(err)
		}
		e.waitJob(t, job)
		if n := len(rcv.requests()); n != 1 {
			t.Errorf("%d requests after a second run, want 1", n)
		}
		if d, _ := e.st.GetWebhookDelivery(t.Context(), id); len(d.Attempts) != 1 {
			t.Errorf("%d attempts recorded, want 1", len(d.Attempts))
		}

		// A pending delivery: the job of an attempt already made does
		// nothing (no second chain of retries), while the next is
		// scheduled an hour later.
		down := newReceiver(t, answer{status: 500})
		ep2, _ := e.endpoint(t, "whep_retrying", down.srv.URL)
		_, id2 := e.deliver(t, ep2)
		d := e.waitDelivery(t, id2, 1)
		if d.Status != store.DeliveryPending {
			t.Fatalf("delivery %s, want pending", d.Status)
		}
		job, err = e.q.Insert(t.Context(), delivery.DeliverArgs{DeliveryID: id2, Attempt: 1}, delivery.InsertOpts())
		if err != nil {
			t.Fatal(err)
		}
		e.waitJob(t, job)
		if n := len(down.requests()); n != 1 {
			t.Errorf("%d requests after a stale job, want 1", n)
		}
		if d, _ := e.st.GetWebhookDelivery(t.Context(), id2); len(d.Attempts) != 1 || d.Status != store.DeliveryPending {
			t.Errorf("after a stale job: %s with %d attempts", d.Status, len(d.Attempts))
		}

		// A job for no delivery (purged, or deleted with its endpoint)
		// completes quietly.
		job, err = e.q.Insert(t.Context(), delivery.DeliverArgs{DeliveryID: "whdl_missing"}, delivery.InsertOpts())
		if err != nil {
			t.Fatal(err)
		}
		e.waitJob(t, job)
	})
}

func TestQueueGauges(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newEnv(t, b, func(d *delivery.Deps) { d.Schedule = delivery.Schedule{time.Hour} })
		rcv := newReceiver(t, answer{status: 500})
		ep, _ := e.endpoint(t, "whep_q", rcv.srv.URL)
		for range 3 {
			_, id := e.deliver(t, ep)
			e.waitDelivery(t, id, 1)
		}
		if got := gauge(t, e.reg, "gatehouse_webhook_queue_depth"); got != 3 {
			t.Errorf("queue depth %v, want 3", got)
		}
		if got := gauge(t, e.reg, "gatehouse_webhook_oldest_pending_seconds"); got < 0 || got > 60 {
			t.Errorf("oldest pending %vs", got)
		}
	})
}

// gauge reads the value of the one series named name gathered from reg.
func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s series", name)
	return 0
}
