package security_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/security"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// backends open a migrated store of each kind.
var backends = []struct {
	name string
	open func(t testing.TB) store.Store
}{
	{"sqlite", func(t testing.TB) store.Store {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrator().Up(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t testing.TB) store.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// eachBackend runs fn on a fresh store of each backend.
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, newEnv(t, b.open(t))) })
	}
}

var start = time.Date(2036, 3, 4, 5, 6, 7, 0, time.UTC)

type env struct {
	store store.Store
	bus   *event.Bus
	clock *clocktest.Clock
	rec   *security.Recorder
	svc   *security.Service

	mu        sync.Mutex
	published []event.Event // what transactions that committed published
}

// events returns what was published so far.
func (e *env) events() []event.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.published)
}

func newEnv(t *testing.T, s store.Store) *env {
	t.Helper()
	clock := clocktest.New(start)
	// The tests' thresholds: credential stuffing at 10 accounts.
	rules := security.DefaultRules()
	rules.CredentialStuffing.Threshold = 10
	rec, err := security.NewRecorder(rules, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: s, bus: event.NewBus(), clock: clock, rec: rec}
	event.SubscribeAll(e.bus, func(ctx context.Context, tx event.Tx, ev event.Event) error {
		tx.AfterCommit(func(context.Context) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.published = append(e.published, ev)
		})
		return nil
	})
	svc, err := security.New(security.Deps{Store: event.Narrow(s, e.bus, func(tx event.Tx) security.AdminTx { return tx }), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

// record records ev in a transaction of its own.
func (e *env) record(t *testing.T, ev security.Event) security.Outcome {
	t.Helper()
	var out security.Outcome
	err := e.store.InTx(context.Background(), func(tx store.Store) error {
		var err error
		out, err = e.rec.Record(context.Background(), tx, ev)
		return err
	})
	if err != nil {
		t.Fatalf("Record(%+v): %v", ev, err)
	}
	return out
}

// incidents returns every incident of a type, newest first.
func (e *env) incidents(t *testing.T, typ string) []store.SecurityIncident {
	t.Helper()
	list, _, err := e.store.ListSecurityIncidents(context.Background(), store.SecurityIncidentFilter{Type: typ, Limit: store.MaxSecurityLimit})
	if err != nil {
		t.Fatal(err)
	}
	return list
}
