package storetest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

// ignoreCreatedAt compares audit events without the database-set CreatedAt.
var ignoreCreatedAt = cmpopts.IgnoreFields(store.AuditEvent{}, "CreatedAt")

// base is a fixed point in time the audit tests count from.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func mustAppend(t *testing.T, s store.Store, e store.AuditEvent) {
	t.Helper()
	if err := s.AppendAuditEvent(context.Background(), e); err != nil {
		t.Fatalf("AppendAuditEvent(%+v): %v", e, err)
	}
}

// listAll pages through every event matching f with the given page size and
// fails on a page that is too big or a repeated cursor.
func listAll(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditEvent {
	t.Helper()
	var all []store.AuditEvent
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
		events, next, err := s.ListAuditEvents(context.Background(), f)
		if err != nil {
			t.Fatalf("ListAuditEvents(%+v) page %d: %v", f, page, err)
		}
		if f.Limit > 0 && len(events) > f.Limit {
			t.Fatalf("page %d has %d events, limit %d", page, len(events), f.Limit)
		}
		all = append(all, events...)
		if next == "" {
			return all
		}
		if len(events) == 0 {
			t.Fatalf("page %d is empty but has a next cursor", page)
		}
		if seen[next] {
			t.Fatalf("cursor %q handed out twice", next)
		}
		seen[next] = true
		f.Cursor = next
	}
}

// newestFirst sorts events the way ListAuditEvents must return them.
func newestFirst(events []store.AuditEvent) []store.AuditEvent {
	out := append([]store.AuditEvent(nil), events...)
	sort.Slice(out, func(i, j int) bool {
		if !out[i].OccurredAt.Equal(out[j].OccurredAt) {
			return out[i].OccurredAt.After(out[j].OccurredAt)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

func testAuditRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	india := time.FixedZone("IST", 5*3600+30*60)
	in := store.AuditEvent{
		ID:         uuid.NewString(),
		OccurredAt: time.Date(2024, 2, 29, 23, 59, 59, 123456789, india),
		ActorID:    "user-1",
		SubjectID:  "user-2",
		Action:     "user.email_changed",
		IP:         "2001:db8::1",
		UserAgent:  "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" ünïcødé",
		RequestID:  "req-42",
		Data: map[string]any{
			"string": "x'; DROP TABLE audit_events; --",
			"number": 3.5,
			"int":    float64(1 << 40),
			"bool":   true,
			"null":   nil,
			"list":   []any{"a", 1.0, false},
			"nested": map[string]any{"k": "v", "deeper": map[string]any{"empty": map[string]any{}}},
		},
	}
	old := store.AuditEvent{
		ID:         uuid.NewString(),
		OccurredAt: time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC),
		Action:     "moon.landed",
	}
	before := time.Now()
	mustAppend(t, s, in)
	mustAppend(t, s, old)

	got, next, err := s.ListAuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	if next != "" {
		t.Errorf("next cursor = %q with two events, want none", next)
	}
	want := []store.AuditEvent{in, old}
	want[0].OccurredAt = time.Date(2024, 2, 29, 18, 29, 59, 123456000, time.UTC)
	want[1].OccurredAt = time.Date(1969, 7, 20, 20, 17, 40, 999999000, time.UTC)
	want[1].Data = map[string]any{}
	if diff := cmp.Diff(want, got, ignoreCreatedAt); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	for i, e := range got {
		if e.OccurredAt.Location() != time.UTC || e.CreatedAt.Location() != time.UTC {
			t.Errorf("event %d: OccurredAt in %v, CreatedAt in %v; want UTC", i, e.OccurredAt.Location(), e.CreatedAt.Location())
		}
		// The database clock sets CreatedAt; allow for clock skew but catch
		// unit mix-ups (seconds, milliseconds, microseconds).
		if d := e.CreatedAt.Sub(before); d < -time.Hour || d > time.Hour {
			t.Errorf("event %d: CreatedAt = %v, want close to %v", i, e.CreatedAt, before)
		}
	}
}

func testAuditDefaults(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Second)
	mustAppend(t, s, store.AuditEvent{Action: "session.created"})
	after := time.Now().Add(time.Second)

	got, _, err := s.ListAuditEvents(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d events, want 1", len(got))
	}
	e := got[0]
	id, err := uuid.Parse(e.ID)
	if err != nil || id.Version() != 7 || id.String() != e.ID {
		t.Errorf("generated ID = %q, want a canonical UUIDv7", e.ID)
	}
	if e.OccurredAt.Before(before) || e.OccurredAt.After(after) || e.OccurredAt.Location() != time.UTC {
		t.Errorf("default OccurredAt = %v, want now in UTC", e.OccurredAt)
	}
	if e.OccurredAt.Nanosecond()%1000 != 0 {
		t.Errorf("OccurredAt = %v has sub-microsecond digits", e.OccurredAt)
	}
	if e.Data == nil || len(e.Data) != 0 {
		t.Errorf("Data = %#v, want an empty non-nil map", e.Data)
	}
	if e.ActorID != "" || e.SubjectID != "" || e.IP != "" || e.UserAgent != "" || e.RequestID != "" {
		t.Errorf("optional fields = %+v, want empty", e)
	}
}

func testAuditInvalid(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		name string
		e    store.AuditEvent
	}{
		{"no action", store.AuditEvent{SubjectID: "u"}},
		{"id not a UUID", store.AuditEvent{ID: "not-a-uuid", Action: "a.b"}},
		{"data not JSON-encodable", store.AuditEvent{Action: "a.b", Data: map[string]any{"f": func() {}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AppendAuditEvent(context.Background(), tc.e)
			if err == nil || errors.Is(err, store.ErrConflict) {
				t.Errorf("AppendAuditEvent: err = %v, want a validation error", err)
			}
		})
	}
	got, _, err := s.ListAuditEvents(context.Background(), store.AuditFilter{})
	if err != nil || len(got) != 0 {
		t.Errorf("after invalid appends ListAuditEvents = %d events, %v; want none", len(got), err)
	}
}

func testAuditDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	id := uuid.New()
	mustAppend(t, s, store.AuditEvent{ID: id.String(), Action: "first"})
	for _, dup := range []string{id.String(), strings.ToUpper(id.String())} {
		err := s.AppendAuditEvent(ctx, store.AuditEvent{ID: dup, Action: "second"})
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("append with duplicate ID %s: err = %v, want ErrConflict", dup, err)
		}
	}
	got, _, err := s.ListAuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	if len(got) != 1 || got[0].Action != "first" {
		t.Errorf("after duplicates: %+v, want only the first event", got)
	}
}

func testAuditPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	// 23 events on 8 distinct instants, so most share their OccurredAt with
	// others and the ID decides; random (v4) IDs make that order differ from
	// the insertion order.
	var events []store.AuditEvent
	for i := range 23 {
		e := store.AuditEvent{
			ID:         uuid.NewString(),
			OccurredAt: base.Add(time.Duration((i*5)%8) * time.Microsecond),
			SubjectID:  fmt.Sprintf("subject-%d", i%3),
			Action:     fmt.Sprintf("test.event_%d", i),
			Data:       map[string]any{},
		}
		mustAppend(t, s, e)
		events = append(events, e)
	}
	want := newestFirst(events)

	for _, limit := range []int{1, 5, 23, 0} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			got := listAll(t, s, store.AuditFilter{Limit: limit})
			if diff := cmp.Diff(want, got, ignoreCreatedAt); diff != "" {
				t.Errorf("pages concatenated (-want +got):\n%s", diff)
			}
		})
	}

	// A page that ends exactly on the last event has no next cursor.
	page, next, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 23})
	if err != nil || len(page) != 23 || next != "" {
		t.Errorf("limit 23 of 23: %d events, next %q, err %v; want 23, no cursor", len(page), next, err)
	}

	// Keyset pages stay stable when newer events arrive between requests.
	first, next, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 10})
	if err != nil || next == "" {
		t.Fatalf("first page: next %q, err %v", next, err)
	}
	mustAppend(t, s, store.AuditEvent{OccurredAt: base.Add(time.Hour), Action: "test.newer"})
	rest := listAll(t, s, store.AuditFilter{Limit: 10, Cursor: next})
	if diff := cmp.Diff(want, append(first, rest...), ignoreCreatedAt); diff != "" {
		t.Errorf("pages with an append in between (-want +got):\n%s", diff)
	}
}

func testAuditFilters(t *testing.T, s store.Store) {
	var events []store.AuditEvent
	for i := range 12 {
		e := store.AuditEvent{
			ID:         uuid.NewString(),
			OccurredAt: base.Add(time.Duration(i) * time.Second),
			ActorID:    fmt.Sprintf("actor-%d", i%2),
			SubjectID:  fmt.Sprintf("subject-%d", i%3),
			Action:     "test.filter",
			Data:       map[string]any{"i": float64(i)},
		}
		if i == 11 {
			e.ActorID, e.SubjectID = "", "" // a system event about nothing in particular
		}
		mustAppend(t, s, e)
		events = append(events, e)
	}
	match := func(f store.AuditFilter) []store.AuditEvent {
		var out []store.AuditEvent
		for _, e := range events {
			if (f.SubjectID == "" || e.SubjectID == f.SubjectID) && (f.ActorID == "" || e.ActorID == f.ActorID) {
				out = append(out, e)
			}
		}
		return newestFirst(out)
	}
	for _, tc := range []struct {
		name string
		f    store.AuditFilter
	}{
		{"subject", store.AuditFilter{SubjectID: "subject-1"}},
		{"actor", store.AuditFilter{ActorID: "actor-0"}},
		{"subject and actor", store.AuditFilter{SubjectID: "subject-2", ActorID: "actor-1"}},
		{"subject and actor paged", store.AuditFilter{SubjectID: "subject-2", ActorID: "actor-1", Limit: 1}},
		{"no match", store.AuditFilter{SubjectID: "nobody"}},
		{"none", store.AuditFilter{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			got := listAll(t, s, f)
			if diff := cmp.Diff(match(f), got, ignoreCreatedAt, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func testAuditMalformedCursor(t *testing.T, s store.Store) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	id := uuid.NewString()
	for _, c := range []string{
		"!!!",
		"not a cursor",
		b64("garbage"),
		b64("1.12345"),
		b64("1.abc." + id),
		b64("1.12345.not-a-uuid"),
		b64("1.12345." + strings.ToUpper(id)),
		b64("2.12345." + id),
		b64("1.99999999999999999999." + id),
		b64("1.-99999999999999999." + id),
		b64("1.12345." + id + ".extra"),
		base64.StdEncoding.EncodeToString([]byte("1.12345."+id)) + "==",
	} {
		_, _, err := s.ListAuditEvents(context.Background(), store.AuditFilter{Cursor: c})
		if !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("cursor %q: err = %v, want ErrInvalidCursor", c, err)
		}
	}
}

func testAuditAppendOnly(t *testing.T, s store.Store) {
	ctx := context.Background()
	e := store.AuditEvent{ID: uuid.NewString(), OccurredAt: base, SubjectID: "u", Action: "test.original", Data: map[string]any{}}
	mustAppend(t, s, e)
	raw := rawExec(t, s)
	for _, q := range []string{
		"UPDATE audit_events SET action = 'test.tampered'",
		"UPDATE audit_events SET data = '{}' WHERE id = '" + e.ID + "'",
		"DELETE FROM audit_events WHERE id = '" + e.ID + "'",
		"DELETE FROM audit_events",
	} {
		if err := raw.RawExec(ctx, q); err == nil {
			t.Errorf("%s: succeeded, want the append-only trigger to reject it", q)
		}
	}
	got, _, err := s.ListAuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	if diff := cmp.Diff([]store.AuditEvent{e}, got, ignoreCreatedAt); diff != "" {
		t.Errorf("event changed (-want +got):\n%s", diff)
	}
}

func testAuditConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, each = 50, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- s.AppendAuditEvent(ctx, store.AuditEvent{
					SubjectID: fmt.Sprintf("subject-%d", w),
					Action:    "test.concurrent",
					Data:      map[string]any{"writer": float64(w), "i": float64(i)},
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent append: %v", err)
		}
	}

	all := listAll(t, s, store.AuditFilter{Limit: store.MaxAuditLimit})
	if len(all) != writers*each {
		t.Fatalf("listed %d events, want %d", len(all), writers*each)
	}
	seen := map[[2]float64]bool{}
	for _, e := range all {
		k := [2]float64{e.Data["writer"].(float64), e.Data["i"].(float64)}
		if seen[k] {
			t.Errorf("event writer=%v i=%v listed twice", k[0], k[1])
		}
		seen[k] = true
	}
	if diff := cmp.Diff(newestFirst(all), all, ignoreCreatedAt); diff != "" {
		t.Errorf("not newest first (-want +got):\n%s", diff)
	}

	for _, tc := range []struct{ limit, want int }{
		{0, store.DefaultAuditLimit},
		{-1, store.DefaultAuditLimit},
		{7, 7},
		{1000, store.MaxAuditLimit},
	} {
		page, next, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: tc.limit})
		if err != nil || len(page) != tc.want || next == "" {
			t.Errorf("Limit %d: %d events, next %q, err %v; want %d and a cursor", tc.limit, len(page), next, err, tc.want)
		}
	}
}
