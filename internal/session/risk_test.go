package session

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// newScoringService is newTestService with risk scoring on settings s:
// profiles in its database, failure counters in st, and every address
// placed in Paris on a network in list (if any).
func newScoringService(t *testing.T, st kv.Store, s risk.Settings, list string, emails ...string) *Service {
	t.Helper()
	lk := DefaultLockout()
	lk.IPFailures = 0
	base, _ := newTestService(t, st, lk, emails...)
	d := base.Deps
	var err error
	if d.Risk, err = risk.New(s); err != nil {
		t.Fatal(err)
	}
	if d.RiskCounters, err = risk.NewCounters(st, risk.DefaultWindow, d.Now); err != nil {
		t.Fatal(err)
	}
	d.RiskProfiles = d.Store.(RiskProfiles)
	d.Locate = func(string) Location {
		l := Location{Country: "FR", City: "Paris", ASN: 3215, Latitude: 48.85, Longitude: 2.35, HasLocation: true}
		if list != "" {
			l.Lists = []string{list}
		}
		return l
	}
	svc, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestRiskFailuresFeedTheCounters: wrong passwords for many accounts from
// one address make the next correct sign-in from it credential_stuffing;
// at or above the step-up threshold, without a second factor service to
// step up with, it is refused.
func TestRiskFailuresFeedTheCounters(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, st kv.Store) {
		ctx := context.Background()
		s := risk.DefaultSettings()
		s.StuffingAccounts, s.StepUp = 5, 60
		svc := newScoringService(t, st, s, "", "user@example.com")
		m := httpapi.Meta{IP: "192.0.2.7", UserAgent: "test"}
		for i := range 5 {
			if _, err := svc.Login(ctx, fmt.Sprintf("guess-%d@example.com", i), "wrong password", m); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("wrong password: %v", err)
			}
		}
		res, err := svc.Login(ctx, "user@example.com", goodPassword, m)
		if err != nil {
			t.Fatal(err)
		}
		if r := res.Session.Risk; r == nil || r.Score != 40 || len(r.Reasons) != 1 || r.Reasons[0] != "credential_stuffing" {
			t.Fatalf("session risk = %+v, want credential_stuffing (40)", r)
		}
		// The profile learnt the sign-in.
		sp, err := svc.RiskProfiles.GetRiskProfile(ctx, res.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		p, err := risk.DecodeProfile(sp.Profile)
		if err != nil || p.SignIns != 1 || p.Located == nil || p.Located.City != "Paris" {
			t.Fatalf("profile = %+v, %v; want one sign-in from Paris", p, err)
		}

		// From another address the failures do not count.
		if res, err := svc.Login(ctx, "user@example.com", goodPassword, httpapi.Meta{IP: "192.0.2.8", UserAgent: "test"}); err != nil || res.Session.Risk == nil || res.Session.Risk.Score != 0 {
			t.Fatalf("sign-in from a clean address = %+v, %v", res.Session.Risk, err)
		}
	})
}

// TestRiskStepUpWithoutSecondFactorIsRefused: a step-up needs a second
// factor; a service without one refuses the sign-in rather than allow it,
// and starts no session.
func TestRiskStepUpWithoutSecondFactorIsRefused(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, st kv.Store) {
		ctx := context.Background()
		svc := newScoringService(t, st, risk.DefaultSettings(), risk.ListTor, "user@example.com")
		_, err := svc.Login(ctx, "user@example.com", goodPassword, httpapi.Meta{IP: "192.0.2.7", UserAgent: "test"})
		if !errors.Is(err, ErrRiskBlocked) {
			t.Fatalf("tor sign-in without a second factor = %v, want ErrRiskBlocked", err)
		}
		u, err := svc.Store.GetUserByEmail(ctx, "user@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if live, err := svc.Store.ListUserSessions(ctx, u.ID, svc.now()); err != nil || len(live) != 0 {
			t.Fatalf("sessions = %v, %v; want none", live, err)
		}
		if _, err := svc.RiskProfiles.GetRiskProfile(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("profile after a refused sign-in: %v, want none learnt", err)
		}
	})
}

// TestRiskAllowlistIsNeverBlocked: a blocklisted address that is also
// allowlisted signs in.
func TestRiskAllowlistIsNeverBlocked(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, st kv.Store) {
		ctx := context.Background()
		base := newScoringService(t, st, risk.DefaultSettings(), "", "user@example.com")
		d := base.Deps
		d.Locate = func(string) Location { return Location{Lists: []string{risk.ListAllowlist, risk.ListBlocklist}} }
		svc, err := New(d)
		if err != nil {
			t.Fatal(err)
		}
		res, err := svc.Login(ctx, "user@example.com", goodPassword, httpapi.Meta{IP: "203.0.113.9", UserAgent: "test"})
		if err != nil || res.Session.Risk == nil || res.Session.Risk.Score != 0 {
			t.Fatalf("allowlisted sign-in = %+v, %v", res.Session.Risk, err)
		}
	})
}
