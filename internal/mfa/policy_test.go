package mfa

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
)

func TestRecentAuthentication(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := &Service{Now: func() time.Time { return now }, Config: DefaultConfig("Test")}
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
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrReauthRequired)) {
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
	amr := amrWith([]string{"pwd"}, MethodBackup)
	if len(amr) != 3 || amr[1] != "mfa" || amr[2] != "backup_code" {
		t.Errorf("amr = %v", amr)
	}
}
