package security_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/security"
	"github.com/gatehouse/gatehouse/internal/store"
)

func user(i int) string { return fmt.Sprintf("0190d5c4-7a6b-7c3e-9f00-%012d", i) }

// stuff records one failed sign-in from ip for each of n accounts
// (first, first+1, …), a second apart, and returns how many events opened
// an incident.
func stuff(t *testing.T, e *env, ip string, first, n int) (opened int) {
	t.Helper()
	for i := range n {
		e.clock.Advance(time.Second)
		out := e.record(t, security.Event{Type: security.TypeLoginFailed, UserID: user(first + i), IP: ip})
		opened += len(out.Opened)
	}
	return opened
}

func TestCredentialStuffing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// Below the threshold (10 accounts): nothing.
		if n := stuff(t, e, "203.0.113.9", 0, 9); n != 0 {
			t.Errorf("9 accounts opened %d incidents", n)
		}
		if got := e.incidents(t, ""); len(got) != 0 {
			t.Fatalf("incidents below the threshold: %+v", got)
		}
		// 20 accounts from one IP: one incident listing them all.
		if n := stuff(t, e, "198.51.100.7", 100, 20); n != 1 {
			t.Errorf("20 accounts opened %d incidents, want 1", n)
		}
		list := e.incidents(t, security.IncidentCredentialStuffing)
		if len(list) != 1 {
			t.Fatalf("credential stuffing incidents = %+v, want one", list)
		}
		inc := list[0]
		var want []string
		for i := range 20 {
			want = append(want, user(100+i))
		}
		got := slices.Sorted(slices.Values(inc.UserIDs))
		if inc.Key != "198.51.100.7" || !slices.Equal(inc.IPs, []string{"198.51.100.7"}) || !slices.Equal(got, want) ||
			inc.EventCount != 20 || inc.Status != store.IncidentOpen || !inc.LastSeen.Equal(e.clock.Now()) {
			t.Errorf("incident = %+v, want the IP, the 20 accounts and 20 events", inc)
		}
		// Every event of that IP is the incident's, the earlier ones
		// attached when it opened.
		_, events, _, err := e.svc.Incident(ctx, inc.ID, "")
		if err != nil || len(events) != 20 {
			t.Fatalf("events of the incident: %d %v", len(events), err)
		}
		for _, ev := range events {
			if ev.IP != "198.51.100.7" || ev.IncidentID != inc.ID {
				t.Errorf("event %+v in the incident", ev)
			}
		}
		// The first IP's events stay out of it.
		page, _, err := e.store.ListSecurityEvents(ctx, store.SecurityEventFilter{IP: "203.0.113.9"})
		if err != nil || len(page) != 9 || page[0].IncidentID != "" {
			t.Errorf("first IP's events: %d %v", len(page), err)
		}
		// A second IP opens another.
		if n := stuff(t, e, "192.0.2.33", 200, 10); n != 1 {
			t.Errorf("second IP opened %d incidents, want 1", n)
		}
		if list := e.incidents(t, security.IncidentCredentialStuffing); len(list) != 2 || list[0].Key != "192.0.2.33" {
			t.Errorf("incidents after a second IP = %+v", list)
		}
		// No other rule fired: each account failed once, from one IP.
		if list := e.incidents(t, ""); len(list) != 2 {
			t.Errorf("every incident = %+v, want the two credential stuffing ones", list)
		}
	})
}

func TestWindow(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		// 10 accounts, but more than an hour apart in total: the window
		// never holds 10.
		for i := range 10 {
			e.clock.Advance(7 * time.Minute)
			if out := e.record(t, security.Event{Type: security.TypeLoginFailed, UserID: user(i), IP: "203.0.113.50"}); len(out.Opened) != 0 {
				t.Fatalf("event %d opened %+v", i, out.Opened)
			}
		}
		// Other types do not count as failures.
		for i := range 12 {
			e.record(t, security.Event{Type: security.TypeRefreshReuse, UserID: user(100 + i), IP: "203.0.113.51"})
		}
		if list := e.incidents(t, ""); len(list) != 0 {
			t.Errorf("incidents = %+v, want none", list)
		}
	})
}

func TestAccountRules(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		// One account failing from 10 IPs.
		for i := range 10 {
			e.clock.Advance(time.Second)
			e.record(t, security.Event{Type: security.TypeMFAFailed, UserID: user(1), IP: fmt.Sprintf("192.0.2.%d", i+1)})
		}
		list := e.incidents(t, security.IncidentAccountUnderAttack)
		if len(list) != 1 || list[0].Key != user(1) || len(list[0].IPs) != 10 || !slices.Equal(list[0].UserIDs, []string{user(1)}) || list[0].EventCount != 10 {
			t.Errorf("account_under_attack = %+v", list)
		}
		// One account from three countries.
		for i, c := range []string{"FR", "AU", "BR"} {
			e.clock.Advance(time.Minute)
			out := e.record(t, security.Event{Type: security.TypeRiskStepUp, UserID: user(2), IP: fmt.Sprintf("198.51.100.%d", i+1), Country: c})
			if (len(out.Opened) == 1) != (i == 2) {
				t.Errorf("country %d opened %+v", i, out.Opened)
			}
		}
		list = e.incidents(t, security.IncidentAccountManyCountries)
		if len(list) != 1 || list[0].Key != user(2) || len(list[0].IPs) != 3 || list[0].EventCount != 3 {
			t.Errorf("account_many_countries = %+v", list)
		}
		// One device fingerprint across five accounts.
		for i := range 5 {
			e.record(t, security.Event{Type: security.TypeRiskStepUp, UserID: user(10 + i), IP: "203.0.113.1", Device: "fp-shared"})
		}
		list = e.incidents(t, security.IncidentSharedDevice)
		if len(list) != 1 || list[0].Key != "fp-shared" || len(list[0].UserIDs) != 5 || !slices.Equal(list[0].IPs, []string{"203.0.113.1"}) {
			t.Errorf("shared_device = %+v", list)
		}
		// A sixth extends it.
		out := e.record(t, security.Event{Type: security.TypeLockout, UserID: user(20), IP: "203.0.113.2", Device: "fp-shared"})
		if len(out.Opened) != 0 || len(out.Extended) != 1 || out.Event.IncidentID != list[0].ID {
			t.Errorf("sixth account: %+v", out)
		}
		if got, _ := e.store.GetSecurityIncident(context.Background(), list[0].ID); got.EventCount != 6 || len(got.UserIDs) != 6 || len(got.IPs) != 2 {
			t.Errorf("extended = %+v", got)
		}
	})
}

func TestRecordInvalid(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	bad := 120
	for _, ev := range []security.Event{{}, {Type: "x", Severity: "urgent"}, {Type: "x", Score: &bad}} {
		err := e.store.InTx(context.Background(), func(tx store.Store) error {
			_, err := e.rec.Record(context.Background(), tx, ev)
			return err
		})
		if !errors.Is(err, security.ErrInvalidEvent) {
			t.Errorf("Record(%+v) = %v, want ErrInvalidEvent", ev, err)
		}
	}
	if _, err := security.NewRecorder(security.Rules{SharedDevice: security.Rule{Threshold: 3}}, nil); err == nil {
		t.Error("a rule without a window accepted")
	}
	out := e.record(t, security.Event{Type: security.TypeRefreshReuse, UserID: user(1)})
	if out.Event.Severity != store.SeverityHigh || !out.Event.OccurredAt.Equal(start) {
		t.Errorf("defaults: %+v", out.Event)
	}
}

func TestConcurrentRecords(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		stuff(t, e, "198.51.100.99", 0, 9)
		// Eleven more accounts at once: one incident, none lost.
		var wg sync.WaitGroup
		for i := range 11 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := e.store.InTx(context.Background(), func(tx store.Store) error {
					_, err := e.rec.Record(context.Background(), tx, security.Event{Type: security.TypeLoginFailed, UserID: user(50 + i), IP: "198.51.100.99"})
					return err
				})
				if err != nil {
					t.Errorf("Record: %v", err)
				}
			}()
		}
		wg.Wait()
		list := e.incidents(t, "")
		if len(list) != 1 || list[0].EventCount != 20 || len(list[0].UserIDs) != 20 {
			t.Errorf("incidents = %+v, want one of 20 events and accounts", list)
		}
	})
}

func TestResolve(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		stuff(t, e, "198.51.100.7", 0, 10)
		inc := e.incidents(t, "")[0]
		e.clock.Advance(time.Hour)
		admin := httpapi.Meta{ActorID: user(999), IP: "10.0.0.1", RequestID: "req-1"}
		res, err := e.svc.Resolve(ctx, inc.ID, "blocked at the edge", admin)
		if err != nil || res.Status != store.IncidentResolved || !res.ResolvedAt.Equal(e.clock.Now()) || res.ResolvedBy != user(999) || res.Note != "blocked at the edge" {
			t.Fatalf("Resolve = %+v %v", res, err)
		}
		audit, _, err := e.store.ListAuditEvents(ctx, store.AuditFilter{SubjectID: inc.ID})
		if err != nil || len(audit) != 1 || audit[0].Action != "security.incident_resolved" || audit[0].ActorID != user(999) || audit[0].Data["note"] != "blocked at the edge" {
			t.Errorf("audit = %+v %v", audit, err)
		}
		if _, err := e.svc.Resolve(ctx, inc.ID, "again", admin); !errors.Is(err, security.ErrAlreadyResolved) {
			t.Errorf("second resolve: %v, want ErrAlreadyResolved", err)
		}
		if _, err := e.svc.Resolve(ctx, "sinc_nope", "", admin); !errors.Is(err, security.ErrIncidentNotFound) {
			t.Errorf("unknown incident: %v, want ErrIncidentNotFound", err)
		}
		if audit, _, _ := e.store.ListAuditEvents(ctx, store.AuditFilter{}); len(audit) != 1 {
			t.Errorf("%d audit events, want the one resolution", len(audit))
		}
		// The IP keeps failing: a new incident opens.
		if n := stuff(t, e, "198.51.100.7", 100, 10); n != 1 {
			t.Errorf("after resolution, %d incidents opened, want 1", n)
		}
		if open, _, _ := e.svc.Incidents(ctx, store.SecurityIncidentFilter{Status: store.IncidentOpen}); len(open) != 1 || open[0].ID == inc.ID {
			t.Errorf("open incidents = %+v", open)
		}
	})
}
