package social

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/social/provider"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

// dropJobs accepts jobs and drops them.
type dropJobs struct{}

func (dropJobs) Insert(context.Context, river.JobArgs, *river.InsertOpts) (int64, error) {
	return 1, nil
}
func (dropJobs) InsertTx(context.Context, any, river.JobArgs, *river.InsertOpts) (int64, error) {
	return 1, nil
}

// noSessions is a Sessions these tests never call.
type noSessions struct{ Sessions }

// newEventService is a Service on a fresh SQLite database whose
// transactions publish on bus.
func newEventService(t *testing.T, bus *event.Bus) (*Service, store.Store) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	ks, _ := secret.GenerateKeyString("t1")
	kr, _ := secret.ParseKeys(ks)
	reg, err := provider.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{
		Store: event.Narrow(db, bus, func(tx event.Tx) Tx { return tx }), Providers: reg, KV: memory.New(time.Now),
		Limiter: ratelimit.NewMemory(time.Now), Keys: kr, Jobs: dropJobs{}, Sessions: noSessions{},
		Config: DefaultConfig("https://auth.example.com", "https://app.example.com", nil), Metrics: NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

// TestDeferredLinkPublishesIdentityLinked checks the deferred link, made
// in the transaction of event.SecondFactorVerified, and that linking
// publishes event.IdentityLinked in its transaction: a subscriber's error
// leaves no identity.
func TestDeferredLinkPublishesIdentityLinked(t *testing.T) {
	ctx := context.Background()
	bus := event.NewBus()
	var linked []event.IdentityLinked
	refuse := false
	event.Subscribe(bus, func(_ context.Context, _ event.Tx, e event.IdentityLinked) error {
		if refuse {
			return errors.New("refused")
		}
		linked = append(linked, e)
		return nil
	})
	s, db := newEventService(t, bus)
	u, err := db.CreateUser(ctx, store.User{Email: "noa@example.com", EmailNormalized: "noa@example.com", Status: store.UserActive})
	if err != nil {
		t.Fatal(err)
	}
	link := func(tok, subject string) error {
		t.Helper()
		pl := pendingLink{Provider: "google", Subject: subject, Email: "noa@example.com", UserID: u.ID}
		if err := s.deferLink(ctx, &session.Challenge{MFAToken: tok}, pl); err != nil {
			t.Fatal(err)
		}
		return s.Store.InTx(ctx, func(tx Tx) error {
			return s.CompleteDeferredLink(ctx, tx, tok, u.ID, httpapi.Meta{RequestID: "req-" + tok})
		})
	}

	if err := link("tok-1", "sub-1"); err != nil {
		t.Fatal(err)
	}
	if len(linked) != 1 || linked[0].UserID != u.ID || linked[0].Provider != "google" || linked[0].Meta.RequestID != "req-tok-1" {
		t.Fatalf("IdentityLinked events %+v, want noa's google identity", linked)
	}
	if _, err := db.GetIdentity(ctx, "google", "sub-1"); err != nil {
		t.Errorf("the deferred link: %v", err)
	}
	// The link is taken once; an identity linked already is left alone.
	if err := link("tok-2", "sub-1"); err != nil || len(linked) != 1 {
		t.Errorf("linking a linked identity again: err = %v, %d events", err, len(linked))
	}
	if err := s.Store.InTx(ctx, func(tx Tx) error { return s.CompleteDeferredLink(ctx, tx, "tok-1", u.ID, httpapi.Meta{}) }); err != nil {
		t.Errorf("a token whose link was taken: %v", err)
	}

	refuse = true
	if err := link("tok-3", "sub-3"); err == nil {
		t.Fatal("a refused link succeeded")
	}
	if _, err := db.GetIdentity(ctx, "google", "sub-3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused link was kept: err = %v", err)
	}
}
