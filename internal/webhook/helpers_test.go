package webhook_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/jobs"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/internal/webhook"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

// backend is a migrated store (Gatehouse's tables and River's) with an
// insert-only job queue on it, and raw SQL to see what the typed methods
// do not show.
type backend struct {
	store store.Store
	queue *jobs.Queue
	// count returns the single integer a query selects.
	count func(t testing.TB, query string, args ...any) int
	// exec runs a statement.
	exec func(t testing.TB, query string, args ...any)
	// jobArgs returns the args and queue of every job of a kind, in
	// insertion order.
	jobArgs func(t testing.TB, kind string) []jobRow
}

type jobRow struct {
	args  []byte
	queue string
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
		if _, err := s.Migrator().Up(t.Context()); err != nil {
			t.Fatal(err)
		}
		q, err := jobs.NewSQLite(s.Writer(), nil, jobs.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		db := s.Writer()
		return backend{
			store: s, queue: q,
			count: func(t testing.TB, query string, args ...any) int {
				t.Helper()
				var n int
				if err := db.QueryRowContext(t.Context(), sqliteParams(query), args...).Scan(&n); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
				return n
			},
			exec: func(t testing.TB, query string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(t.Context(), sqliteParams(query), args...); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
			},
			jobArgs: func(t testing.TB, kind string) []jobRow {
				t.Helper()
				// River's SQLite driver keeps args as JSONB; json() gives the text.
				rows, err := db.QueryContext(t.Context(), "SELECT json(args), queue FROM river_job WHERE kind = ? ORDER BY id", kind)
				if err != nil {
					t.Fatal(err)
				}
				return scanJobs(t, rows)
			},
		}
	}},
	{"postgres", func(t testing.TB) backend {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		q, err := jobs.NewPostgres(s.Pool(), nil, jobs.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		pool := s.Pool()
		return backend{
			store: s, queue: q,
			count: func(t testing.TB, query string, args ...any) int {
				t.Helper()
				var n int
				if err := pool.QueryRow(t.Context(), query, args...).Scan(&n); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
				return n
			},
			exec: func(t testing.TB, query string, args ...any) {
				t.Helper()
				if _, err := pool.Exec(t.Context(), query, args...); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
			},
			jobArgs: func(t testing.TB, kind string) []jobRow {
				t.Helper()
				rows, err := pool.Query(t.Context(), "SELECT args::text, queue FROM river_job WHERE kind = $1 ORDER BY id", kind)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var out []jobRow
				for rows.Next() {
					var args string
					var j jobRow
					if err := rows.Scan(&args, &j.queue); err != nil {
						t.Fatal(err)
					}
					j.args = []byte(args)
					out = append(out, j)
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				return out
			},
		}
	}},
}

// sqliteParams turns $1, $2 … into ?: the tests write their queries once.
func sqliteParams(q string) string {
	for i := 9; i >= 1; i-- {
		q = strings.ReplaceAll(q, "$"+string(rune('0'+i)), "?")
	}
	return q
}

func scanJobs(t testing.TB, rows *sql.Rows) []jobRow {
	t.Helper()
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		var j jobRow
		if err := rows.Scan(&j.args, &j.queue); err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// eachBackend runs fn on every backend (PostgreSQL when
// GATEHOUSE_TEST_DATABASE_URL is set).
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, newEnv(t, b.open(t))) })
	}
}

// env is a webhook service on a backend, with its clock, keys and the
// secrets it was given.
type env struct {
	backend
	svc   *webhook.Service
	clock *clocktest.Clock
	keys  *secret.Keyring
	bus   *event.Bus
}

const overlap = 24 * time.Hour

// start is where the tests' clock starts: a round time in the past, so
// that the store's own "now" and the service's clock do not mix.
var start = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, b backend) *env {
	t.Helper()
	keys, err := secret.GenerateKeyString("t1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.ParseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{backend: b, clock: clocktest.New(start), keys: kr, bus: event.NewBus()}
	e.svc, err = webhook.New(webhook.Deps{
		Store:            store.Narrow(b.store, func(tx store.Store) webhook.Tx { return tx }),
		Jobs:             b.queue,
		Keyring:          kr,
		NewSecret:        delivery.NewSecret,
		CheckDestination: checkDestination,
		SecretOverlap:    overlap,
		Now:              e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The outbox, subscribed as the wiring subscribes it.
	event.SubscribeAll(e.bus, func(ctx context.Context, tx event.Tx, ev event.Event) error {
		return e.svc.Record(ctx, tx, ev)
	})
	return e
}

// names is the DNS of the tests: the destination checks are
// delivery.Destinations' own, resolving with it.
type names map[string]string

func (n names) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := n[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

var destinations = delivery.Destinations{Resolver: names{
	"hooks.example.com":    "203.0.113.10",
	"x.example":            "203.0.113.11",
	"internal.example.com": "10.1.2.3",
	"localhost":            "127.0.0.1",
}}

// checkDestination is the production check, on the tests' DNS.
var checkDestination = destinations.Check

var admin = httpapi.Meta{ActorID: "0190d5c4-7a6b-7c3e-9f00-00000000ad01", IP: "192.0.2.7", UserAgent: "test", RequestID: "req-1"}

func ptr[T any](v T) *T { return &v }

// mustCreate creates an endpoint or fails the test.
func (e *env) mustCreate(t testing.TB, in webhook.EndpointInput) store.WebhookEndpoint {
	t.Helper()
	if in.URL == "" {
		in.URL = "https://hooks.example.com/in"
	}
	ep, _, err := e.svc.CreateEndpoint(t.Context(), admin, in)
	if err != nil {
		t.Fatalf("CreateEndpoint(%+v): %v", in, err)
	}
	return ep
}

// mustUser creates an account.
func (e *env) mustUser(t testing.TB, email string) store.User {
	t.Helper()
	u, err := e.store.CreateUser(t.Context(), store.User{Email: email, EmailNormalized: email, CreatedAt: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// publish publishes ev in a transaction of its own, as a change does.
func (e *env) publish(t testing.TB, ev event.Event) {
	t.Helper()
	if err := e.bus.PublishInTx(t.Context(), e.store, ev); err != nil {
		t.Fatalf("publish %s: %v", ev.EventName(), err)
	}
}

// deliveryJobs returns the delivery IDs of the webhook delivery jobs,
// checking each is on the webhooks queue.
func (e *env) deliveryJobs(t testing.TB) []string {
	t.Helper()
	var ids []string
	for _, j := range e.jobArgs(t, delivery.DeliverArgs{}.Kind()) {
		var a delivery.DeliverArgs
		if err := json.Unmarshal(j.args, &a); err != nil {
			t.Fatal(err)
		}
		if j.queue != delivery.Queue {
			t.Errorf("job of %s on queue %q, want %q", a.DeliveryID, j.queue, delivery.Queue)
		}
		ids = append(ids, a.DeliveryID)
	}
	return ids
}

// audit returns the actions of the audit events about subject, oldest
// first, and checks that none holds a secret.
func (e *env) audit(t testing.TB, subject string, secrets ...string) []string {
	t.Helper()
	list, _, err := e.store.ListAuditEvents(t.Context(), store.AuditFilter{SubjectID: subject, Limit: store.MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(list) - 1; i >= 0; i-- {
		a := list[i]
		out = append(out, a.Action)
		b, _ := json.Marshal(a.Data)
		for _, s := range append(secrets, "whsec_") {
			if s != "" && strings.Contains(string(b), s) {
				t.Errorf("audit event %s holds a secret: %s", a.Action, b)
			}
		}
		if a.ActorID != admin.ActorID {
			t.Errorf("audit event %s by %q, want the administrator", a.Action, a.ActorID)
		}
	}
	return out
}
