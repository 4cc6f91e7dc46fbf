package social

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
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
	"github.com/gatehouse/gatehouse/internal/token"
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

// namedProvider is a provider the tests sign in with: only its name and
// whether it links automatically are asked for.
type namedProvider struct {
	provider.Provider
	id string
}

func (p namedProvider) ID() string     { return p.id }
func (p namedProvider) AutoLink() bool { return false }
func (p namedProvider) Type() string   { return "oidc" }

// keepTokens issues nothing and denies every session it is asked to.
type keepTokens struct{}

func (keepTokens) Issue(context.Context, token.AccessClaims) (string, time.Time, error) {
	return "at", time.Now().Add(time.Minute), nil
}
func (keepTokens) DenySession(context.Context, string, time.Time) error { return nil }
func (keepTokens) RevokeIssuedBefore(context.Context, time.Time) error  { return nil }

// seen subscribes to E on bus and returns what it saw.
func seen[E event.Event](bus *event.Bus) *[]E {
	var got []E
	event.Subscribe(bus, func(_ context.Context, _ event.Tx, e E) error {
		got = append(got, e)
		return nil
	})
	return &got
}

// TestSocialChangesPublishTheirEvents checks the events of social sign-in,
// each in the transaction of its change: a sign-up creates an account and
// links its identity; an unlink; and the claim of an unverified account
// by the owner of its address, which verifies it and removes what was set
// up on it (identities, confirmed second factors, sessions, profile
// fields).
func TestSocialChangesPublishTheirEvents(t *testing.T) {
	ctx := context.Background()
	bus := event.NewBus()
	created := seen[event.UserCreated](bus)
	linked := seen[event.IdentityLinked](bus)
	unlinked := seen[event.IdentityUnlinked](bus)
	verified := seen[event.EmailVerified](bus)
	updated := seen[event.UserUpdated](bus)
	removed := seen[event.SecondFactorRemoved](bus)
	revoked := seen[event.SessionsRevoked](bus)
	s, db := newEventService(t, bus)
	sessions, err := session.New(session.Deps{
		Store: event.Narrow(db, bus, func(tx event.Tx) session.Tx { return tx }), Tokens: keepTokens{}, Keys: s.Keys, KV: s.KV,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := s.Deps
	d.Sessions = sessions
	if s, err = New(d); err != nil {
		t.Fatal(err)
	}
	m := httpapi.Meta{IP: "192.0.2.8", UserAgent: "test-agent"}

	// Sign-up.
	google := namedProvider{id: "google"}
	out, outcome, err := s.resolve(ctx, google, provider.Profile{Subject: "g-1", Email: "kai@example.com", EmailVerified: true, Name: "Kai"}, flow{Provider: "google"}, m)
	if err != nil || outcome != "signed_up" {
		t.Fatalf("sign-up = %+v, %q, %v", out, outcome, err)
	}
	kai, err := db.GetUserByEmail(ctx, "kai@example.com")
	if err != nil {
		t.Fatal(err)
	}
	gi, err := db.GetIdentity(ctx, "google", "g-1")
	if err != nil {
		t.Fatal(err)
	}
	if c := *created; len(c) != 1 || c[0].User.ID != kai.ID || c[0].Via != event.CreatedBySocial || c[0].Provider != "google" || c[0].Meta.IP != m.IP {
		t.Fatalf("UserCreated events %+v, want kai's social sign-up", c)
	}
	if l := *linked; len(l) != 1 || l[0].UserID != kai.ID || l[0].IdentityID != gi.ID || l[0].Provider != "google" {
		t.Fatalf("IdentityLinked events %+v, want kai's google identity %s", l, gi.ID)
	}

	// A second identity, then the first unlinked.
	if err := s.link(ctx, kai.ID, "github", provider.Profile{Subject: "h-1"}, m); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(ctx, kai.ID, gi.ID, m); err != nil {
		t.Fatal(err)
	}
	if u := *unlinked; len(u) != 1 || u[0].UserID != kai.ID || u[0].IdentityID != gi.ID || u[0].Provider != "google" {
		t.Fatalf("IdentityUnlinked events %+v, want kai's google identity", u)
	}

	// The claim of an account someone else set up with the address.
	pat, err := db.CreateUser(ctx, store.User{Email: "pat@example.com", EmailNormalized: "pat@example.com", PasswordHash: "x", Name: "Squatter", PendingEmail: "sq@example.net", Status: store.UserActive})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := db.CreateIdentity(ctx, store.Identity{UserID: pat.ID, Provider: "github", Subject: "h-2"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	confirmed, err := db.CreateMFADevice(ctx, store.MFADevice{UserID: pat.ID, Type: "email", Email: "pat@example.com", ConfirmedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateMFADevice(ctx, store.MFADevice{UserID: pat.ID, Type: "email", Email: "pat@example.com"}); err != nil {
		t.Fatal(err)
	}
	sess, err := db.CreateSession(ctx, store.Session{UserID: pat.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour), AuthTime: now},
		store.RefreshToken{UserID: pat.ID, TokenHash: "h", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	n := len(*unlinked)
	err = s.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, pat.ID)
		if err != nil {
			return err
		}
		_, err = s.claimUnverified(ctx, tx, u, viaMagicLink, "", m)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := *verified; len(v) != 1 || v[0].UserID != pat.ID || v[0].Email != "pat@example.com" || v[0].Via != event.VerifiedByMagicLink {
		t.Errorf("EmailVerified events %+v, want pat's by the magic link", v)
	}
	if u := (*unlinked)[n:]; len(u) != 1 || u[0].IdentityID != pi.ID {
		t.Errorf("IdentityUnlinked events of the claim %+v, want pat's github identity", u)
	}
	if r := *removed; len(r) != 1 || r[0] != (event.SecondFactorRemoved{UserID: pat.ID, Method: "email", DeviceID: confirmed.ID}) {
		t.Errorf("SecondFactorRemoved events %+v, want the confirmed device only", r)
	}
	if r := *revoked; len(r) != 1 || !slices.Equal(r[0].SessionIDs, []string{sess.ID}) || r[0].Reason != "unverified_credentials_cleared" {
		t.Errorf("SessionsRevoked events %+v, want pat's session", r)
	}
	if u := *updated; len(u) != 1 || !slices.Equal(u[0].Fields, []string{"name", "pending_email"}) || u[0].User.Name != "" {
		t.Errorf("UserUpdated events %+v, want pat's name and pending address cleared", u)
	}
}
