package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runSecurity(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("EventRoundTrip", func(t *testing.T) { testSecurityEventRoundTrip(t, migrated(t)) })
	t.Run("EventInvalid", func(t *testing.T) { testSecurityEventInvalid(t, migrated(t)) })
	t.Run("EventFiltersAndPages", func(t *testing.T) { testSecurityEventPages(t, migrated(t)) })
	t.Run("DistinctAndAttach", func(t *testing.T) { testSecurityDistinct(t, migrated(t)) })
	t.Run("Incidents", func(t *testing.T) { testSecurityIncidents(t, migrated(t)) })
	t.Run("ParallelOpen", func(t *testing.T) { testSecurityParallelOpen(t, migrated(t)) })
	t.Run("IncidentPages", func(t *testing.T) { testSecurityIncidentPages(t, migrated(t)) })
	t.Run("Escalation", func(t *testing.T) { testSecurityEscalation(t, migrated(t)) })
}

// testSecurityEscalation: an incident keeps its severity, when it was
// notified and its escalations; the ones to escalate are the open ones
// notified before a moment, the longest ago first.
func testSecurityEscalation(t *testing.T, s store.Store) {
	ctx := context.Background()
	open := func(id, key, severity string, notified time.Time) store.SecurityIncident {
		t.Helper()
		inc, created, err := s.OpenSecurityIncident(ctx, store.SecurityIncident{
			ID: id, Type: "credential_stuffing", Key: key, FirstSeen: secAt, LastSeen: secAt, EventCount: 1,
			Severity: severity, NotifiedAt: notified,
		})
		if err != nil || !created {
			t.Fatalf("OpenSecurityIncident(%s) = %v %v", id, created, err)
		}
		return inc
	}
	a := open("sinc_a", "192.0.2.1", store.SeverityHigh, secAt.Add(2*time.Minute))
	if a.Severity != store.SeverityHigh || !a.NotifiedAt.Equal(micro(secAt.Add(2*time.Minute))) || a.Escalations != 0 {
		t.Fatalf("opened = %+v", a)
	}
	open("sinc_b", "192.0.2.2", store.SeverityCritical, secAt.Add(time.Minute))
	open("sinc_never", "192.0.2.3", store.SeverityLow, time.Time{}) // never notified: never escalated
	c := open("sinc_resolved", "192.0.2.4", store.SeverityHigh, secAt)
	c.Status, c.ResolvedAt = store.IncidentResolved, secAt.Add(time.Hour)
	if _, err := s.UpdateSecurityIncident(ctx, c); err != nil {
		t.Fatal(err)
	}
	ids := func(before time.Time, limit int) []string {
		t.Helper()
		list, err := s.ListSecurityIncidentsToEscalate(ctx, before, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, inc := range list {
			out = append(out, inc.ID)
		}
		return out
	}
	if diff := gocmp.Diff([]string{"sinc_b", "sinc_a"}, ids(secAt.Add(time.Hour), 10)); diff != "" {
		t.Errorf("to escalate (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]string{"sinc_b"}, ids(secAt.Add(time.Hour), 1)); diff != "" {
		t.Errorf("to escalate, limit 1 (-want +got):\n%s", diff)
	}
	if got := ids(secAt.Add(time.Minute), 10); len(got) != 0 {
		t.Errorf("notified at or after the moment: %v, want none", got)
	}
	// Escalated: notified again, counted.
	a.NotifiedAt, a.Escalations = secAt.Add(3*time.Hour), 1
	if got, err := s.UpdateSecurityIncident(ctx, a); err != nil || got.Escalations != 1 || !got.NotifiedAt.Equal(micro(secAt.Add(3*time.Hour))) {
		t.Fatalf("escalated = %+v %v", got, err)
	}
	if diff := gocmp.Diff([]string{"sinc_b"}, ids(secAt.Add(time.Hour), 10)); diff != "" {
		t.Errorf("after the escalation (-want +got):\n%s", diff)
	}
	bad := a
	bad.Severity = "urgent"
	if _, err := s.UpdateSecurityIncident(ctx, bad); err == nil {
		t.Error("an unknown severity was stored")
	}
}

// secAt is the suite's security clock.
var secAt = time.Date(2035, 6, 7, 8, 9, 10, 123456789, time.UTC)

func testSecurityEventRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	score := 73
	full := store.SecurityEvent{
		ID: "sev_full", Type: "risk_step_up", Severity: store.SeverityHigh, OccurredAt: secAt,
		UserID: "u1", Account: "u1", ActorID: "admin1", IP: "203.0.113.7", Country: "FR", City: "Paris", ASN: 64500,
		Device: "fp-1", Score: &score, Reasons: []store.SecurityReason{{Code: "new_device", Points: 20}, {Code: "impossible_travel", Points: 53}},
		Data: map[string]any{"n": float64(1), "s": "x"},
	}
	bare := store.SecurityEvent{ID: "sev_bare", Type: "lockout", Severity: store.SeverityLow, OccurredAt: secAt.Add(time.Second)}
	for _, ev := range []store.SecurityEvent{full, bare} {
		if err := s.CreateSecurityEvent(ctx, ev); err != nil {
			t.Fatalf("CreateSecurityEvent(%s): %v", ev.ID, err)
		}
	}
	if err := s.CreateSecurityEvent(ctx, bare); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate ID: %v, want ErrConflict", err)
	}
	got, next, err := s.ListSecurityEvents(ctx, store.SecurityEventFilter{})
	if err != nil || next != "" {
		t.Fatalf("ListSecurityEvents = %v %q", err, next)
	}
	full.OccurredAt = micro(full.OccurredAt)
	bare.OccurredAt = micro(bare.OccurredAt)
	bare.Data = map[string]any{}
	if diff := gocmp.Diff([]store.SecurityEvent{bare, full}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func testSecurityEventInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	bad := 101
	for name, ev := range map[string]store.SecurityEvent{
		"no ID":          {Type: "lockout", Severity: store.SeverityLow},
		"no type":        {ID: "sev_1", Severity: store.SeverityLow},
		"bad severity":   {ID: "sev_1", Type: "lockout", Severity: "urgent"},
		"score too high": {ID: "sev_1", Type: "lockout", Severity: store.SeverityLow, Score: &bad},
		"NUL in IP":      {ID: "sev_1", Type: "lockout", Severity: store.SeverityLow, IP: "1.2.3.4\x00"},
	} {
		if err := s.CreateSecurityEvent(ctx, ev); err == nil {
			t.Errorf("%s: stored", name)
		}
	}
	err := s.CreateSecurityEvent(ctx, store.SecurityEvent{ID: "sev_1", Type: "lockout", Severity: store.SeverityLow, IncidentID: "sinc_none"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown incident: %v, want ErrNotFound", err)
	}
	if _, _, err := s.ListSecurityEvents(ctx, store.SecurityEventFilter{Cursor: "nope"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

// mustSecurityEvents stores events sev_000… one second apart from secAt,
// with the fields each gives.
func mustSecurityEvents(t *testing.T, s store.Store, n int, each func(i int, ev *store.SecurityEvent)) []store.SecurityEvent {
	t.Helper()
	var out []store.SecurityEvent
	for i := range n {
		ev := store.SecurityEvent{ID: fmt.Sprintf("sev_%03d", i), Type: "login_failed", Severity: store.SeverityLow,
			OccurredAt: secAt.Add(time.Duration(i) * time.Second)}
		each(i, &ev)
		if err := s.CreateSecurityEvent(context.Background(), ev); err != nil {
			t.Fatalf("CreateSecurityEvent(%s): %v", ev.ID, err)
		}
		out = append(out, ev)
	}
	return out
}

func ids(events []store.SecurityEvent) []string {
	var out []string
	for _, ev := range events {
		out = append(out, ev.ID)
	}
	return out
}

func testSecurityEventPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	all := mustSecurityEvents(t, s, 25, func(i int, ev *store.SecurityEvent) {
		ev.UserID = fmt.Sprintf("u%d", i%3)
		ev.IP = fmt.Sprintf("198.51.100.%d", i%2)
		if i%5 == 0 {
			ev.Type, ev.Severity = "lockout", store.SeverityHigh
		}
	})
	// Two events at one time: ties are broken by descending ID.
	tie := store.SecurityEvent{ID: "sev_024b", Type: "login_failed", Severity: store.SeverityLow, OccurredAt: all[24].OccurredAt, UserID: "u0", IP: "198.51.100.0"}
	if err := s.CreateSecurityEvent(ctx, tie); err != nil {
		t.Fatal(err)
	}
	all = append(all, tie)
	want := func(keep func(store.SecurityEvent) bool) []string {
		var out []store.SecurityEvent
		for _, ev := range all {
			if keep(ev) {
				out = append(out, ev)
			}
		}
		slices.SortFunc(out, func(a, b store.SecurityEvent) int {
			if c := b.OccurredAt.Compare(a.OccurredAt); c != 0 {
				return c
			}
			return -cmpString(a.ID, b.ID)
		})
		return ids(out)
	}
	for name, c := range map[string]struct {
		f    store.SecurityEventFilter
		keep func(store.SecurityEvent) bool
	}{
		"all":      {store.SecurityEventFilter{}, func(store.SecurityEvent) bool { return true }},
		"type":     {store.SecurityEventFilter{Type: "lockout"}, func(ev store.SecurityEvent) bool { return ev.Type == "lockout" }},
		"severity": {store.SecurityEventFilter{Severity: store.SeverityHigh}, func(ev store.SecurityEvent) bool { return ev.Severity == store.SeverityHigh }},
		"user":     {store.SecurityEventFilter{UserID: "u1"}, func(ev store.SecurityEvent) bool { return ev.UserID == "u1" }},
		"ip and user": {store.SecurityEventFilter{IP: "198.51.100.0", UserID: "u0"}, func(ev store.SecurityEvent) bool {
			return ev.IP == "198.51.100.0" && ev.UserID == "u0"
		}},
		"window": {store.SecurityEventFilter{Since: secAt.Add(5 * time.Second), Until: secAt.Add(12 * time.Second)}, func(ev store.SecurityEvent) bool {
			return !ev.OccurredAt.Before(secAt.Add(5*time.Second)) && ev.OccurredAt.Before(secAt.Add(12*time.Second))
		}},
		"nothing": {store.SecurityEventFilter{UserID: "\xff"}, func(store.SecurityEvent) bool { return false }},
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			f := c.f
			f.Limit = 4
			for range 20 {
				page, next, err := s.ListSecurityEvents(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > 4 {
					t.Fatalf("page of %d, want at most 4", len(page))
				}
				got = append(got, ids(page)...)
				if next == "" {
					break
				}
				f.Cursor = next
			}
			if diff := gocmp.Diff(want(c.keep), got); diff != "" {
				t.Errorf("pages (-want +got):\n%s", diff)
			}
		})
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testSecurityDistinct(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustSecurityEvents(t, s, 12, func(i int, ev *store.SecurityEvent) {
		ev.IP = "192.0.2.1"
		ev.UserID = fmt.Sprintf("u%d", i%6) // u0…u5, twice each
		if i == 11 {
			ev.Type = "mfa_failed"
		}
	})
	m := store.SecurityEventMatch{Types: []string{"login_failed"}, Field: store.SecurityFieldIP, Value: "192.0.2.1", Since: secAt.Add(2 * time.Second)}
	got, err := s.DistinctSecurityEventValues(ctx, m, store.SecurityFieldUserID, 100)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	// Events 2…10 (11 is another type): u2…u5, u0, u1, u2, u3, u4.
	if want := []string{"u0", "u1", "u2", "u3", "u4", "u5"}; !slices.Equal(got, want) {
		t.Errorf("distinct users = %v, want %v", got, want)
	}
	if got, err := s.DistinctSecurityEventValues(ctx, m, store.SecurityFieldUserID, 2); err != nil || len(got) != 2 {
		t.Errorf("limit 2: %v %v", got, err)
	}
	if got, err := s.DistinctSecurityEventValues(ctx, m, store.SecurityFieldDevice, 10); err != nil || len(got) != 0 {
		t.Errorf("no devices: %v %v", got, err)
	}
	if _, err := s.DistinctSecurityEventValues(ctx, m, "email", 10); err == nil {
		t.Error("unknown field accepted")
	}

	inc, created, err := s.OpenSecurityIncident(ctx, store.SecurityIncident{ID: "sinc_1", Type: "credential_stuffing", Key: "192.0.2.1",
		FirstSeen: secAt, LastSeen: secAt, IPs: []string{"192.0.2.1"}, EventCount: 9})
	if err != nil || !created {
		t.Fatalf("OpenSecurityIncident = %v %v", created, err)
	}
	n, err := s.AttachSecurityEvents(ctx, inc.ID, m)
	if err != nil || n != 9 {
		t.Errorf("AttachSecurityEvents = %d %v, want 9", n, err)
	}
	if n, err := s.AttachSecurityEvents(ctx, inc.ID, m); err != nil || n != 0 {
		t.Errorf("again = %d %v, want 0 (already attached)", n, err)
	}
	if _, err := s.AttachSecurityEvents(ctx, "sinc_none", store.SecurityEventMatch{Field: store.SecurityFieldIP, Value: "192.0.2.1"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown incident: %v, want ErrNotFound", err)
	}
	page, _, err := s.ListSecurityEvents(ctx, store.SecurityEventFilter{IncidentID: inc.ID, Limit: 100})
	if err != nil || len(page) != 9 || page[0].ID != "sev_010" || page[8].ID != "sev_002" {
		t.Errorf("events of the incident = %v %v", ids(page), err)
	}
}

func testSecurityIncidents(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := store.SecurityIncident{ID: "sinc_a", Type: "account_under_attack", Key: "u1", FirstSeen: secAt, LastSeen: secAt,
		IPs: []string{"192.0.2.1", "192.0.2.2"}, UserIDs: []string{"u1"}, EventCount: 2}
	inc, created, err := s.OpenSecurityIncident(ctx, in)
	if err != nil || !created {
		t.Fatalf("OpenSecurityIncident = %v %v", created, err)
	}
	want := in
	want.Status, want.FirstSeen, want.LastSeen, want.Severity = store.IncidentOpen, micro(secAt), micro(secAt), store.SeverityMedium
	if diff := gocmp.Diff(want, inc); diff != "" {
		t.Errorf("opened (-want +got):\n%s", diff)
	}
	// Another of the same type and key returns the open one.
	again, created, err := s.OpenSecurityIncident(ctx, store.SecurityIncident{ID: "sinc_b", Type: in.Type, Key: in.Key, FirstSeen: secAt, LastSeen: secAt, EventCount: 1})
	if err != nil || created || again.ID != "sinc_a" {
		t.Errorf("second open = %s %v %v, want sinc_a not created", again.ID, created, err)
	}
	if _, err := s.GetSecurityIncident(ctx, "sinc_b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("sinc_b: %v, want ErrNotFound", err)
	}
	// Extended, then resolved.
	inc.LastSeen, inc.IPs, inc.EventCount = secAt.Add(time.Minute), append(inc.IPs, "192.0.2.3"), 3
	ext, err := s.UpdateSecurityIncident(ctx, inc)
	if err != nil || ext.EventCount != 3 || len(ext.IPs) != 3 || !ext.LastSeen.Equal(micro(secAt.Add(time.Minute))) {
		t.Fatalf("extended = %+v %v", ext, err)
	}
	found, err := s.FindOpenSecurityIncident(ctx, in.Type, in.Key)
	if err != nil || found.ID != "sinc_a" {
		t.Errorf("FindOpenSecurityIncident = %+v %v", found, err)
	}
	ext.Status, ext.ResolvedAt, ext.ResolvedBy, ext.Note = store.IncidentResolved, secAt.Add(time.Hour), "admin1", "blocked upstream"
	res, err := s.UpdateSecurityIncident(ctx, ext)
	if err != nil || res.Status != store.IncidentResolved || res.ResolvedBy != "admin1" || res.Note != "blocked upstream" || !res.ResolvedAt.Equal(micro(secAt.Add(time.Hour))) {
		t.Fatalf("resolved = %+v %v", res, err)
	}
	if got, err := s.GetSecurityIncidentForUpdate(ctx, "sinc_a"); err != nil || gocmp.Diff(res, got) != "" {
		t.Errorf("GetSecurityIncidentForUpdate = %+v %v", got, err)
	}
	if _, err := s.FindOpenSecurityIncident(ctx, in.Type, in.Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("open after resolve: %v, want ErrNotFound", err)
	}
	// Resolved, a new one opens for the same key.
	next, created, err := s.OpenSecurityIncident(ctx, store.SecurityIncident{ID: "sinc_c", Type: in.Type, Key: in.Key, FirstSeen: secAt.Add(2 * time.Hour), LastSeen: secAt.Add(2 * time.Hour), EventCount: 1})
	if err != nil || !created || next.ID != "sinc_c" {
		t.Errorf("open after resolve = %s %v %v", next.ID, created, err)
	}
	// Reopening the resolved one would make two open: ErrConflict.
	res.Status, res.ResolvedAt = store.IncidentOpen, time.Time{}
	if _, err := s.UpdateSecurityIncident(ctx, res); !errors.Is(err, store.ErrConflict) {
		t.Errorf("reopen: %v, want ErrConflict", err)
	}
	for name, bad := range map[string]store.SecurityIncident{
		"resolved without time": {ID: "sinc_c", Status: store.IncidentResolved, FirstSeen: secAt, LastSeen: secAt},
		"unknown status":        {ID: "sinc_c", Status: "closed", FirstSeen: secAt, LastSeen: secAt},
	} {
		if _, err := s.UpdateSecurityIncident(ctx, bad); err == nil {
			t.Errorf("%s: stored", name)
		}
	}
	if _, err := s.UpdateSecurityIncident(ctx, store.SecurityIncident{ID: "sinc_none", Status: store.IncidentOpen, FirstSeen: secAt, LastSeen: secAt}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update unknown: %v, want ErrNotFound", err)
	}
}

func testSecurityParallelOpen(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		seen    = map[string]bool{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inc store.SecurityIncident
			var c bool
			err := s.InTx(ctx, func(tx store.Store) error {
				var err error
				inc, c, err = tx.OpenSecurityIncident(ctx, store.SecurityIncident{ID: fmt.Sprintf("sinc_p%d", i), Type: "shared_device", Key: "fp-9",
					FirstSeen: secAt, LastSeen: secAt, EventCount: 1})
				if err != nil || c {
					return err
				}
				inc.EventCount++
				inc, err = tx.UpdateSecurityIncident(ctx, inc)
				return err
			})
			if err != nil {
				t.Errorf("open #%d: %v", i, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			seen[inc.ID] = true
			if c {
				created++
			}
		}()
	}
	wg.Wait()
	if created != 1 || len(seen) != 1 {
		t.Errorf("%d created, incidents %v; want one", created, seen)
	}
	list, _, err := s.ListSecurityIncidents(ctx, store.SecurityIncidentFilter{})
	if err != nil || len(list) != 1 || list[0].EventCount != n {
		t.Errorf("incidents = %+v %v, want one counting %d (no lost update)", list, err, n)
	}
}

func testSecurityIncidentPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	var all []string
	for i := range 9 {
		typ := "credential_stuffing"
		if i%3 == 0 {
			typ = "shared_device"
		}
		inc, _, err := s.OpenSecurityIncident(ctx, store.SecurityIncident{ID: fmt.Sprintf("sinc_%02d", i), Type: typ, Key: fmt.Sprint(i),
			FirstSeen: secAt.Add(time.Duration(i) * time.Minute), LastSeen: secAt.Add(time.Duration(i) * time.Minute), EventCount: 1})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			inc.Status, inc.ResolvedAt = store.IncidentResolved, secAt.Add(time.Hour)
			if _, err := s.UpdateSecurityIncident(ctx, inc); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, inc.ID)
	}
	slices.Reverse(all)
	for name, c := range map[string]struct {
		f    store.SecurityIncidentFilter
		want []string
	}{
		"all":      {store.SecurityIncidentFilter{}, all},
		"open":     {store.SecurityIncidentFilter{Status: store.IncidentOpen}, []string{"sinc_07", "sinc_05", "sinc_03", "sinc_01"}},
		"type":     {store.SecurityIncidentFilter{Type: "shared_device"}, []string{"sinc_06", "sinc_03", "sinc_00"}},
		"resolved": {store.SecurityIncidentFilter{Status: store.IncidentResolved, Type: "shared_device"}, []string{"sinc_06", "sinc_00"}},
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			f := c.f
			f.Limit = 2
			for range 10 {
				page, next, err := s.ListSecurityIncidents(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, inc := range page {
					got = append(got, inc.ID)
				}
				if next == "" {
					break
				}
				f.Cursor = next
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("pages = %v, want %v", got, c.want)
			}
		})
	}
	// One listing's cursor is not the other's.
	_, next, err := s.ListSecurityIncidents(ctx, store.SecurityIncidentFilter{Limit: 1})
	if err != nil || next == "" {
		t.Fatal(next, err)
	}
	if _, _, err := s.ListSecurityEvents(ctx, store.SecurityEventFilter{Cursor: next}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("incident cursor on events: %v, want ErrInvalidCursor", err)
	}
}
