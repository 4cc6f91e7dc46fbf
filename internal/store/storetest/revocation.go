package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runRevocation(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("Epoch", func(t *testing.T) { testRevocationEpoch(t, migrated(t), migrated(t)) })
	t.Run("KillSwitchOnlyMovesForward", func(t *testing.T) { testKillSwitchForward(t, migrated(t)) })
	t.Run("KillSwitchParallel", func(t *testing.T) { testKillSwitchParallel(t, migrated(t)) })
	t.Run("Denials", func(t *testing.T) { testDenials(t, migrated(t)) })
	t.Run("DenialsInvalid", func(t *testing.T) { testDenialsInvalid(t, migrated(t)) })
	t.Run("DenialsIncludeRevokedSessions", func(t *testing.T) { testDenialsRevokedSessions(t, migrated(t)) })
}

func testRevocationEpoch(t *testing.T, s, other store.Store) {
	ctx := context.Background()
	e1, err := s.RevocationEpoch(ctx)
	if err != nil || len(e1) < 16 {
		t.Fatalf("RevocationEpoch = %q, %v; want a random value of at least 16 characters", e1, err)
	}
	e2, err := s.RevocationEpoch(ctx)
	if err != nil || e2 != e1 {
		t.Fatalf("RevocationEpoch again = %q, %v; want %q (fixed)", e2, err, e1)
	}
	e3, err := other.RevocationEpoch(ctx)
	if err != nil || e3 == e1 {
		t.Fatalf("RevocationEpoch of another database = %q, %v; want another value than %q", e3, err, e1)
	}
}

func testKillSwitchForward(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got, err := s.RevokeBefore(ctx); err != nil || !got.IsZero() {
		t.Fatalf("RevokeBefore on a new database = %v, %v; want zero", got, err)
	}
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	got, err := s.RaiseRevokeBefore(ctx, t1)
	if err != nil || !got.Equal(micro(t1)) || got.Location() != time.UTC {
		t.Fatalf("RaiseRevokeBefore(t1) = %v, %v; want %v in UTC", got, err, micro(t1))
	}
	// An earlier time changes nothing.
	got, err = s.RaiseRevokeBefore(ctx, t1.Add(-time.Hour))
	if err != nil || !got.Equal(micro(t1)) {
		t.Fatalf("RaiseRevokeBefore(earlier) = %v, %v; want %v kept", got, err, micro(t1))
	}
	if got, err := s.RevokeBefore(ctx); err != nil || !got.Equal(micro(t1)) || got.Location() != time.UTC {
		t.Fatalf("RevokeBefore = %v, %v; want %v", got, err, micro(t1))
	}
	t2 := t1.Add(time.Minute)
	if got, err := s.RaiseRevokeBefore(ctx, t2); err != nil || !got.Equal(micro(t2)) {
		t.Fatalf("RaiseRevokeBefore(later) = %v, %v; want %v", got, err, micro(t2))
	}
	if _, err := s.RaiseRevokeBefore(ctx, time.Time{}); err == nil {
		t.Error("RaiseRevokeBefore(zero) succeeded")
	}
}

func testKillSwitchParallel(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.RaiseRevokeBefore(ctx, base.Add(time.Duration(i)*time.Second))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("RaiseRevokeBefore #%d: %v", i, err)
		}
	}
	want := base.Add((n - 1) * time.Second)
	if got, err := s.RevokeBefore(ctx); err != nil || !got.Equal(want) {
		t.Fatalf("after %d parallel raises RevokeBefore = %v, %v; want the latest, %v", n, got, err, want)
	}
}

var sortDenials = cmpopts.SortSlices(func(a, b store.Denial) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.ID < b.ID
})

func testDenials(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	add := func(d store.Denial) {
		t.Helper()
		if err := s.AddDenial(ctx, d); err != nil {
			t.Fatalf("AddDenial(%+v): %v", d, err)
		}
	}
	add(store.Denial{Kind: store.DenySession, ID: "s1", Until: now.Add(10 * time.Minute)})
	add(store.Denial{Kind: store.DenyToken, ID: "s1", Until: now.Add(5 * time.Minute)}) // same ID, other kind
	add(store.Denial{Kind: store.DenyToken, ID: "jti-old", Until: now.Add(-time.Second)})
	add(store.Denial{Kind: store.DenySession, ID: "s2", Until: now.Add(time.Minute)})
	// A later end wins, an earlier one changes nothing.
	add(store.Denial{Kind: store.DenySession, ID: "s2", Until: now.Add(20*time.Minute + 123*time.Nanosecond)})
	add(store.Denial{Kind: store.DenySession, ID: "s1", Until: now.Add(time.Minute)})

	got, err := s.ListDenials(ctx, now, 15*time.Minute)
	if err != nil {
		t.Fatalf("ListDenials: %v", err)
	}
	want := []store.Denial{
		{Kind: store.DenySession, ID: "s1", Until: now.Add(10 * time.Minute)},
		{Kind: store.DenyToken, ID: "s1", Until: now.Add(5 * time.Minute)},
		{Kind: store.DenySession, ID: "s2", Until: now.Add(20 * time.Minute)},
	}
	if diff := cmp.Diff(want, got, sortDenials); diff != "" {
		t.Errorf("ListDenials (-want +got):\n%s", diff)
	}
	for _, d := range got {
		if d.Until.Location() != time.UTC {
			t.Errorf("denial %s/%s Until in %v, want UTC", d.Kind, d.ID, d.Until.Location())
		}
	}

	n, err := s.PurgeDenials(ctx, now.Add(6*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("PurgeDenials = %d, %v; want 2 (the ended one and the token)", n, err)
	}
	got, err = s.ListDenials(ctx, now, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want = []store.Denial{want[0], want[2]}
	if diff := cmp.Diff(want, got, sortDenials); diff != "" {
		t.Errorf("ListDenials after the purge (-want +got):\n%s", diff)
	}
}

func testDenialsInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	for _, d := range []store.Denial{
		{Kind: "user", ID: "x", Until: now},
		{Kind: store.DenySession, ID: "", Until: now},
		{Kind: store.DenyToken, ID: "x"},
	} {
		if err := s.AddDenial(ctx, d); err == nil {
			t.Errorf("AddDenial(%+v) succeeded", d)
		}
	}
}

func testDenialsRevokedSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("denials@example.com"))
	now := sessAt.Add(time.Hour)
	window := 15 * time.Minute
	recent, _ := newSession(t, s, user.ID, sessAt, 24*time.Hour)
	old, _ := newSession(t, s, user.ID, sessAt, 24*time.Hour)
	live, _ := newSession(t, s, user.ID, sessAt, 24*time.Hour)
	both, _ := newSession(t, s, user.ID, sessAt, 24*time.Hour)
	revoke := func(id string, at time.Time) {
		t.Helper()
		if _, err := s.RevokeSession(ctx, id, "logout", at); err != nil {
			t.Fatalf("RevokeSession: %v", err)
		}
	}
	revoke(recent.ID, now.Add(-5*time.Minute))
	revoke(old.ID, now.Add(-20*time.Minute))
	revoke(both.ID, now.Add(-time.Minute))
	// Recorded with a later end than its revocation gives.
	if err := s.AddDenial(ctx, store.Denial{Kind: store.DenySession, ID: both.ID, Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListDenials(ctx, now, window)
	if err != nil {
		t.Fatalf("ListDenials: %v", err)
	}
	want := []store.Denial{
		{Kind: store.DenySession, ID: recent.ID, Until: micro(now.Add(-5 * time.Minute).Add(window))},
		{Kind: store.DenySession, ID: both.ID, Until: micro(now.Add(time.Hour))},
	}
	if diff := cmp.Diff(want, got, sortDenials); diff != "" {
		t.Errorf("ListDenials (-want +got):\n%s", diff)
	}
	_ = live
}
