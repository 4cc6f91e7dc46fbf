package authzcheck

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/kv"
	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

func TestCheckThroughCache(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		f := newFixture(t, st)
		u := f.user(t)
		base := f.role(t, store.Role{Name: "reader", Allow: allow("invoices:read")})
		editor := f.role(t, store.Role{Name: "editor", Allow: allow("invoices:write", "invoices:delete"),
			Deny: allow("invoices:delete"), Parents: []string{base.ID}})
		g := f.grant(t, store.RoleGrant{UserID: u.ID, RoleID: editor.ID})

		q := Query{Subject: u.ID, Permission: "invoices:read"}
		d, err := f.c.Check(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || len(d.Matched) != 1 || d.Matched[0].GrantID != g.ID || d.Matched[0].Role != base.ID {
			t.Fatalf("inherited read: %+v", d)
		}
		if got := f.cs.counts(); got != [3]int64{1, 0, 0} {
			t.Fatalf("cold check: store calls (LoadUserAuthz, GetUser, UserOrganizations) = %v, want [1 0 0]", got)
		}
		for _, tc := range []struct {
			perm string
			want bool
		}{{"invoices:read", true}, {"invoices:write", true}, {"invoices:delete", false}, {"payments:read", false}} {
			if got := f.allowed(t, f.c, Query{Subject: u.ID, Permission: tc.perm}); got != tc.want {
				t.Errorf("%s: allowed = %v, want %v", tc.perm, got, tc.want)
			}
		}
		if got := f.cs.counts(); got != [3]int64{1, 0, 0} {
			t.Fatalf("cached checks: store calls = %v, want still [1 0 0]", got)
		}
		// The time of a check defaults to the clock.
		d, _ = f.c.Check(t.Context(), Query{Subject: u.ID, Permission: "invoices:delete", Explain: true})
		if d.Reason != authz.ReasonDeniedByRule || d.DeniedBy == nil || d.DeniedBy.Role != editor.ID || len(d.Explain) == 0 {
			t.Errorf("deny: %+v", d)
		}
	})
}

func TestUnknownSubjectHasNoGrants(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		f := newFixture(t, st)
		for _, subject := range []string{uuid.NewString(), "not-a-uuid", ""} {
			d, err := f.c.Check(t.Context(), Query{Subject: subject, Permission: "invoices:read"})
			if err != nil {
				t.Fatalf("%q: %v", subject, err)
			}
			if d.Allowed || d.Reason != authz.ReasonNoMatchingGrant {
				t.Errorf("%q: %+v, want no_matching_grant", subject, d)
			}
		}
	})
}

func TestGrantExpiresWithoutCacheDelay(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		f := newFixture(t, st)
		u := f.user(t)
		r := f.role(t, store.Role{Name: "temp", Allow: allow("reports:read")})
		f.grant(t, store.RoleGrant{UserID: u.ID, RoleID: r.ID, ValidUntil: t0.Add(2 * time.Second)})
		f.grant(t, store.RoleGrant{UserID: u.ID, RoleID: r.ID, ValidFrom: t0.Add(10 * time.Second), ValidUntil: t0.Add(12 * time.Second)})

		steps := []struct {
			at   time.Duration
			want bool
		}{
			{0, true},
			{1999 * time.Millisecond, true},
			{2 * time.Second, false}, // valid_until excluded
			{9 * time.Second, false},
			{10 * time.Second, true}, // valid_from included
			{12 * time.Second, false},
		}
		for _, s := range steps {
			f.clock.Set(t0.Add(s.at))
			if got := f.allowed(t, f.c, Query{Subject: u.ID, Permission: "reports:read"}); got != s.want {
				t.Errorf("at +%v: allowed = %v, want %v", s.at, got, s.want)
			}
		}
		if n := f.cs.loads.Load(); n != 1 {
			t.Errorf("LoadUserAuthz called %d times, want 1 (the windows are decided from the cache)", n)
		}
	})
}

func TestInvalidate(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		f := newFixture(t, st)
		r := f.role(t, store.Role{Name: "viewer", Allow: allow("docs:read")})
		a, b := f.user(t), f.user(t)
		ga := f.grant(t, store.RoleGrant{UserID: a.ID, RoleID: r.ID})
		gb := f.grant(t, store.RoleGrant{UserID: b.ID, RoleID: r.ID})
		q := func(u store.User) Query { return Query{Subject: u.ID, Permission: "docs:read"} }
		if !f.allowed(t, f.c, q(a)) || !f.allowed(t, f.c, q(b)) {
			t.Fatal("granted users denied")
		}
		for _, g := range []store.RoleGrant{ga, gb} {
			if _, err := st.DeleteGrant(t.Context(), g.ID); err != nil {
				t.Fatal(err)
			}
		}
		// Without an invalidation the cache still answers (this is what
		// the invalidations are for).
		if !f.allowed(t, f.c, q(a)) {
			t.Fatal("the cache was not used")
		}
		if err := f.c.Invalidate(t.Context(), a.ID); err != nil {
			t.Fatal(err)
		}
		if f.allowed(t, f.c, q(a)) {
			t.Error("a: allowed after its grant was revoked and it was invalidated")
		}
		if !f.allowed(t, f.c, q(b)) {
			t.Error("b: invalidating a dropped b's entry")
		}
		if err := f.c.InvalidateAll(t.Context()); err != nil {
			t.Fatal(err)
		}
		if f.allowed(t, f.c, q(b)) {
			t.Error("b: allowed after InvalidateAll")
		}
	})
}

func TestTTLBoundsAnEntry(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		f := newFixture(t, st)
		u := f.user(t)
		q := Query{Subject: u.ID, Permission: "docs:read"}
		f.allowed(t, f.c, q)
		f.clock.Advance(DefaultTTL - time.Second)
		f.allowed(t, f.c, q)
		if n := f.cs.loads.Load(); n != 1 {
			t.Fatalf("loads = %d before the TTL, want 1", n)
		}
		f.clock.Advance(time.Second)
		f.allowed(t, f.c, q)
		if n := f.cs.loads.Load(); n != 2 {
			t.Fatalf("loads = %d at the TTL, want 2", n)
		}
	})
}

func TestUserAttributesLoadedOnlyWhenNeeded(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		f := newFixture(t, st)
		owner := f.role(t, store.Role{Name: "owner", Allow: []store.RolePermission{{Permission: "notes:write", Condition: "resource.owner_id == user.id"}}})
		verified := f.role(t, store.Role{Name: "verified", Allow: allow("notes:read")})
		org, err := st.CreateOrganization(t.Context(), store.Organization{Name: "Acme", Slug: "acme-" + uuid.NewString()[:8]})
		if err != nil {
			t.Fatal(err)
		}

		plain := f.user(t)
		f.grant(t, store.RoleGrant{UserID: plain.ID, RoleID: owner.ID})
		if !f.allowed(t, f.c, Query{Subject: plain.ID, Permission: "notes:write", Resource: authz.Resource{OwnerID: plain.ID}}) {
			t.Error("owner denied on their own note")
		}
		if f.allowed(t, f.c, Query{Subject: plain.ID, Permission: "notes:write", Resource: authz.Resource{OwnerID: "someone"}}) {
			t.Error("owner allowed on another's note")
		}
		if got := f.cs.counts(); got != [3]int64{1, 0, 0} {
			t.Fatalf("user.id only: store calls = %v, want [1 0 0]", got)
		}

		u := f.user(t)
		f.grant(t, store.RoleGrant{UserID: u.ID, RoleID: verified.ID,
			Condition: "user.email_verified && resource.organization_id in user.organizations"})
		q := Query{Subject: u.ID, Permission: "notes:read", Resource: authz.Resource{OrganizationID: org.ID}}
		if f.allowed(t, f.c, q) {
			t.Error("allowed before the email is verified")
		}
		if got := f.cs.counts(); got != [3]int64{2, 1, 1} {
			t.Fatalf("with user attributes: store calls = %v, want [2 1 1]", got)
		}
		f.allowed(t, f.c, q)
		if got := f.cs.counts(); got != [3]int64{2, 1, 1} {
			t.Fatalf("cached: store calls = %v, want still [2 1 1]", got)
		}
		u.EmailVerifiedAt = t0
		if _, err := st.UpdateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		if err := st.SetMembership(t.Context(), store.OrgMembership{OrgID: org.ID, UserID: u.ID, Role: store.OrgMember}); err != nil {
			t.Fatal(err)
		}
		if err := f.c.Invalidate(t.Context(), u.ID); err != nil {
			t.Fatal(err)
		}
		if !f.allowed(t, f.c, q) {
			t.Error("denied once verified and a member")
		}
	})
}

func TestMentionsUserAttributes(t *testing.T) {
	for expr, want := range map[string]bool{
		"":                                               false,
		"request.mfa":                                    false,
		"resource.owner_id == user.id":                   false,
		"user . id == resource.owner_id":                 false,
		"resource.attributes['username'] == ''":          false,
		"users_count > 1 || superuser":                   false,
		"resource.user.email_verified":                   false,
		"user.email_verified":                            true,
		"user.id == 'x' && user.metadata.a == 1":         true,
		"resource.organization_id in user.organizations": true,
		"has(user.metadata.tier)":                        true,
		"user":                                           true,
		"'user' == resource.type":                        true, // a literal counts: harmless
		"user.identity == ''":                            true,
	} {
		if got := mentionsUserAttributes(expr); got != want {
			t.Errorf("mentionsUserAttributes(%q) = %v, want %v", expr, got, want)
		}
	}
}

func TestConcurrentColdChecksShareOneLoad(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		f := newFixture(t, st)
		u := f.user(t)
		r := f.role(t, store.Role{Name: "viewer", Allow: allow("docs:read")})
		f.grant(t, store.RoleGrant{UserID: u.ID, RoleID: r.ID})
		hold, entered := f.holdLoads()

		var wg sync.WaitGroup
		results := make([]bool, 8)
		for i := range results {
			wg.Go(func() {
				d, err := f.c.Check(context.Background(), Query{Subject: u.ID, Permission: "docs:read"})
				results[i] = err == nil && d.Allowed
			})
		}
		<-entered
		time.Sleep(50 * time.Millisecond) // let the others queue behind the load
		close(hold)
		wg.Wait()
		for i, ok := range results {
			if !ok {
				t.Errorf("check %d denied or failed", i)
			}
		}
		if n := f.cs.loads.Load(); n != 1 {
			t.Errorf("LoadUserAuthz called %d times for 8 concurrent cold checks, want 1", n)
		}
	})
}

// holdLoads makes LoadUserAuthz wait, after reading, until hold is closed;
// entered receives once per load that has read.
func (f *fixture) holdLoads() (hold chan struct{}, entered chan struct{}) {
	hold, entered = make(chan struct{}), make(chan struct{}, 16)
	f.cs.mu.Lock()
	f.cs.hold, f.cs.entered = hold, entered
	f.cs.mu.Unlock()
	return hold, entered
}

func (f *fixture) releaseLoads() {
	f.cs.mu.Lock()
	f.cs.hold, f.cs.entered = nil, nil
	f.cs.mu.Unlock()
}

func TestLoadRacingAnInvalidationIsNotCached(t *testing.T) {
	for _, all := range []bool{false, true} {
		name := map[bool]string{false: "user", true: "all"}[all]
		t.Run(name, func(t *testing.T) {
			testenv.EachStore(t, func(t *testing.T, st store.Store) {
				f := newFixture(t, st)
				u := f.user(t)
				r := f.role(t, store.Role{Name: "viewer", Allow: allow("docs:read")})
				g := f.grant(t, store.RoleGrant{UserID: u.ID, RoleID: r.ID})
				hold, entered := f.holdLoads()

				done := make(chan bool)
				go func() {
					done <- f.allowed(t, f.c, Query{Subject: u.ID, Permission: "docs:read"})
				}()
				<-entered // the load has read the grant
				if _, err := st.DeleteGrant(t.Context(), g.ID); err != nil {
					t.Fatal(err)
				}
				var err error
				if all {
					err = f.c.InvalidateAll(t.Context())
				} else {
					err = f.c.Invalidate(t.Context(), u.ID)
				}
				if err != nil {
					t.Fatal(err)
				}
				f.releaseLoads()
				close(hold)
				<-done // it may answer with what it read: it began before the change
				if f.c.Cached(u.ID) {
					t.Fatal("a load that raced an invalidation was cached")
				}
				if f.allowed(t, f.c, Query{Subject: u.ID, Permission: "docs:read"}) {
					t.Error("allowed after the revocation")
				}
			})
		})
	}
}

// closingKV lets a test end the Checker's subscriptions.
type closingKV struct {
	kv.Store
	mu   sync.Mutex
	subs []kv.Subscription
}

func (c *closingKV) Subscribe(ctx context.Context, channel string) (kv.Subscription, error) {
	s, err := c.Store.Subscribe(ctx, channel)
	if err == nil {
		c.mu.Lock()
		c.subs = append(c.subs, s)
		c.mu.Unlock()
	}
	return s, err
}

func (c *closingKV) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

func TestLostSubscriptionFlushesAndResubscribes(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		f := newFixture(t, st)
		ck := &closingKV{Store: f.kv}
		c := f.checker(t, ck)
		u := f.user(t)
		f.allowed(t, c, Query{Subject: u.ID, Permission: "docs:read"})
		if !c.Cached(u.ID) {
			t.Fatal("not cached")
		}
		ck.mu.Lock()
		_ = ck.subs[0].Close()
		ck.mu.Unlock()
		waitFor(t, "the cache to be emptied and a new subscription", func() bool { return !c.Cached(u.ID) && ck.count() == 2 })
		// The new subscription works.
		f.allowed(t, c, Query{Subject: u.ID, Permission: "docs:read"})
		if err := f.c.Invalidate(t.Context(), u.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the invalidation through the new subscription", func() bool { return !c.Cached(u.ID) })
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 1 s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInvalidationReachesAnotherNodeOverRedis(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		url, prefix := testenv.Redis(t)
		client, err := rediskv.NewClient(rediskv.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		f := newFixture(t, st)
		nodeA := f.checker(t, rediskv.New(client, prefix))
		nodeB := f.checker(t, rediskv.New(client, prefix))

		r := f.role(t, store.Role{Name: "viewer", Allow: allow("docs:read")})
		a, b := f.user(t), f.user(t)
		ga := f.grant(t, store.RoleGrant{UserID: a.ID, RoleID: r.ID})
		f.grant(t, store.RoleGrant{UserID: b.ID, RoleID: r.ID})
		q := func(u store.User) Query { return Query{Subject: u.ID, Permission: "docs:read"} }
		for _, c := range []*Checker{nodeA, nodeB} {
			if !f.allowed(t, c, q(a)) || !f.allowed(t, c, q(b)) {
				t.Fatal("granted users denied")
			}
		}
		// Revoke on node A: node B answers accordingly within a second.
		if _, err := st.DeleteGrant(t.Context(), ga.ID); err != nil {
			t.Fatal(err)
		}
		if err := nodeA.Invalidate(t.Context(), a.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "node B to drop user a", func() bool { return !nodeB.Cached(a.ID) })
		if f.allowed(t, nodeB, q(a)) {
			t.Error("node B allows a revoked grant")
		}
		if !nodeB.Cached(b.ID) {
			t.Error("node B dropped user b too")
		}
		if err := nodeA.InvalidateAll(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "node B to empty its cache", func() bool { return nodeB.Len() == 0 })
	})
}
