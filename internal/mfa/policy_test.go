package mfa

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/store"
)

func TestRecentAuthentication(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := &Service{Deps{Now: func() time.Time { return now }, Config: DefaultConfig("Test")}}
	for _, c := range []struct {
		authTime time.Time
		ok       bool
	}{
		{now.Add(-time.Minute), true},
		{now.Add(-5 * time.Minute), true},
		{now.Add(-5*time.Minute - time.Second), false},
		{time.Time{}, false},
	} {
		err := s.requireRecent(auth.Principal{AuthTime: c.authTime})
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, auth.ErrReauthRequired)) {
			t.Errorf("auth_time %v: err = %v, want ok=%v", c.authTime, err, c.ok)
		}
	}
}

func TestPolicyDocuments(t *testing.T) {
	p := parseOrgPolicy(map[string]any{"mfa_required": true, "allowed_methods": []any{"totp", "email"}, "enrollment_grace_period": "72h"})
	if !p.Required || len(p.Methods) != 2 || p.Grace != 72*time.Hour {
		t.Errorf("parsed policy = %+v", p)
	}
	bad := ValidatePolicyDocument(map[string]any{"mfa_required": "yes", "allowed_methods": []any{"carrier-pigeon"}, "enrollment_grace_period": "soon", "colour": "red"})
	if len(bad) != 4 {
		t.Errorf("validation errors = %v, want 4", bad)
	}
	if errs := ValidatePolicyDocument(map[string]any{"mfa_required": false}); len(errs) != 0 {
		t.Errorf("valid policy refused: %v", errs)
	}
	if !allowed(Policy{}, MethodSMS) || allowed(Policy{Methods: []string{MethodTOTP}}, MethodSMS) {
		t.Error("allowed() is wrong")
	}
	amr := amrWith([]string{"pwd"}, amrOf[MethodBackup])
	if len(amr) != 3 || amr[1] != "mfa" || amr[2] != "backup_code" {
		t.Errorf("amr = %v", amr)
	}
}

// TestPoliciesWithNoCommonMethod checks that organisations whose allowed
// methods have nothing in common allow no method (not, as an empty list
// would say, every method), and that a further organisation does not
// widen that again.
func TestPoliciesWithNoCommonMethod(t *testing.T) {
	org := func(methods ...any) store.Organization {
		return store.Organization{Policy: map[string]any{"mfa_required": true, "allowed_methods": methods}}
	}
	for _, c := range []struct {
		name   string
		global Policy
		orgs   []store.Organization
		want   []string // allowed methods
	}{
		{"no restriction", Policy{}, nil, []string{MethodTOTP, MethodSMS, MethodEmail, MethodBackup}},
		{"one organisation", Policy{}, []store.Organization{org("totp", "backup_code")}, []string{MethodTOTP, MethodBackup}},
		{"common method", Policy{}, []store.Organization{org("totp", "sms"), org("sms", "email")}, []string{MethodSMS}},
		{"nothing in common", Policy{}, []store.Organization{org("totp"), org("sms")}, nil},
		{"nothing in common, then anything", Policy{}, []store.Organization{org("totp"), org("sms"), org("totp", "sms", "email", "backup_code")}, nil},
		{"global and organisation disjoint", Policy{Methods: []string{MethodEmail}}, []store.Organization{org("totp")}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &Service{Deps{Config: Config{Policy: c.global}}}
			p := s.policyOf(c.orgs)
			var got []string
			for _, m := range []string{MethodTOTP, MethodSMS, MethodEmail, MethodBackup} {
				if allowed(p, m) {
					got = append(got, m)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("allowed methods = %v, want %v (policy %+v)", got, c.want, p)
			}
			if len(c.want) == 0 && len(enrollable(p)) != 0 {
				t.Errorf("enrollable = %v, want none", enrollable(p))
			}
		})
	}
}
