package authzcheck

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/store"
)

// countingStore counts the calls a Checker makes, and can hold
// LoadUserAuthz until released (for races).
type countingStore struct {
	Store
	loads, users, orgs atomic.Int64

	mu sync.Mutex
	// hold, when set, is waited on by LoadUserAuthz after it has read the
	// store; entered is told when a load has read.
	hold    chan struct{}
	entered chan struct{}
}

func (s *countingStore) LoadUserAuthz(ctx context.Context, userID string) (store.UserAuthz, error) {
	s.loads.Add(1)
	ua, err := s.Store.LoadUserAuthz(ctx, userID)
	s.mu.Lock()
	hold, entered := s.hold, s.entered
	s.mu.Unlock()
	if hold != nil {
		entered <- struct{}{}
		<-hold
	}
	return ua, err
}

func (s *countingStore) GetUser(ctx context.Context, id string) (store.User, error) {
	s.users.Add(1)
	return s.Store.GetUser(ctx, id)
}

func (s *countingStore) UserOrganizations(ctx context.Context, userID string) ([]store.Organization, error) {
	s.orgs.Add(1)
	return s.Store.UserOrganizations(ctx, userID)
}

func (s *countingStore) counts() [3]int64 {
	return [3]int64{s.loads.Load(), s.users.Load(), s.orgs.Load()}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newEngine(t testing.TB) *authz.Engine {
	t.Helper()
	c, err := authz.NewCompiler(authz.CompilerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.NewEngine(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fixture is a Checker over a real store, on a clock that stands still.
type fixture struct {
	st    store.Store
	cs    *countingStore
	clock *clocktest.Clock
	kv    kv.Store
	c     *Checker
}

func newFixture(t *testing.T, st store.Store) *fixture {
	t.Helper()
	clock := clocktest.New(t0)
	mem := memory.New(clock.Now)
	t.Cleanup(func() { mem.Close() })
	f := &fixture{st: st, cs: &countingStore{Store: st}, clock: clock, kv: mem}
	f.c = f.checker(t, mem)
	return f
}

// checker returns another Checker over the fixture's store, on kv, started
// until the test ends.
func (f *fixture) checker(t *testing.T, kvs kv.Store) *Checker {
	t.Helper()
	c, err := New(Deps{Store: f.cs, Engine: newEngine(t), KV: kvs, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) user(t *testing.T) store.User {
	t.Helper()
	email := uuid.NewString() + "@example.com"
	u, err := f.st.CreateUser(t.Context(), store.User{Email: email, EmailNormalized: email})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) permission(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := f.st.CreatePermission(t.Context(), store.Permission{Name: n}); err != nil && !errors.Is(err, store.ErrConflict) {
			t.Fatal(err)
		}
	}
}

func (f *fixture) role(t *testing.T, r store.Role) store.Role {
	t.Helper()
	for _, rs := range [][]store.RolePermission{r.Allow, r.Deny} {
		for _, p := range rs {
			f.permission(t, p.Permission)
		}
	}
	r, err := f.st.CreateRole(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) grant(t *testing.T, g store.RoleGrant) store.RoleGrant {
	t.Helper()
	g, err := f.st.CreateGrant(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func allow(perms ...string) []store.RolePermission {
	out := make([]store.RolePermission, len(perms))
	for i, p := range perms {
		out[i] = store.RolePermission{Permission: p}
	}
	return out
}

func (f *fixture) allowed(t *testing.T, c *Checker, q Query) bool {
	t.Helper()
	d, err := c.Check(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	return d.Allowed
}
