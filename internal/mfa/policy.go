package mfa

import (
	"context"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Policy says whether MFA is required and how.
type Policy struct {
	Required bool
	// Methods allowed; empty means all, unless NoneAllowed.
	Methods []string
	// NoneAllowed is set when the policies combined allow no method at
	// all (organisations whose allowed methods have nothing in common):
	// then no method is allowed, whatever Methods says.
	NoneAllowed bool
	// Grace lets a user sign in without a factor for this long after the
	// account was created before enrolment is forced.
	Grace time.Duration
}

// policyFor combines the global policy with those of the user's
// organisations (see policyOf).
func (s *Service) policyFor(ctx context.Context, u store.User) (Policy, error) {
	orgs, err := s.Store.UserOrganizations(ctx, u.ID)
	if err != nil {
		return s.Config.Policy, err
	}
	return s.policyOf(orgs), nil
}

// policyOf combines the global policy with those of orgs: required if any
// requires it, methods intersected, the shortest grace. An empty
// intersection allows nothing (NoneAllowed), not everything.
func (s *Service) policyOf(orgs []store.Organization) Policy {
	p := s.Config.Policy
	graceSet := p.Required
	for _, o := range orgs {
		op := parseOrgPolicy(o.Policy)
		if !op.Required {
			continue
		}
		if !p.Required || !graceSet || op.Grace < p.Grace {
			p.Grace = op.Grace
		}
		p.Required, graceSet = true, true
		if len(op.Methods) > 0 && !p.NoneAllowed {
			if len(p.Methods) == 0 {
				p.Methods = op.Methods
			} else {
				var both []string
				for _, m := range p.Methods {
					if slices.Contains(op.Methods, m) {
						both = append(both, m)
					}
				}
				p.Methods, p.NoneAllowed = both, len(both) == 0
			}
		}
	}
	return p
}

// parseOrgPolicy reads an organisation's policy document:
// {"mfa_required": true, "allowed_methods": ["totp"], "enrollment_grace_period": "72h"}.
func parseOrgPolicy(doc map[string]any) Policy {
	var p Policy
	p.Required, _ = doc["mfa_required"].(bool)
	if ms, ok := doc["allowed_methods"].([]any); ok {
		for _, m := range ms {
			if s, ok := m.(string); ok {
				p.Methods = append(p.Methods, s)
			}
		}
	}
	if g, ok := doc["enrollment_grace_period"].(string); ok {
		p.Grace, _ = time.ParseDuration(g)
	}
	return p
}

// ValidatePolicyDocument checks an organisation policy document.
func ValidatePolicyDocument(doc map[string]any) []httpapi.FieldError {
	var errs []httpapi.FieldError
	for k, v := range doc {
		switch k {
		case "mfa_required":
			if _, ok := v.(bool); !ok {
				errs = append(errs, httpapi.FieldError{Field: "policy.mfa_required", Rule: "type", Message: "Must be a boolean."})
			}
		case "allowed_methods":
			ms, ok := v.([]any)
			if !ok {
				errs = append(errs, httpapi.FieldError{Field: "policy.allowed_methods", Rule: "type", Message: "Must be a list of methods."})
				continue
			}
			for _, m := range ms {
				if s, _ := m.(string); amrOf[s] == "" {
					errs = append(errs, httpapi.FieldError{Field: "policy.allowed_methods", Rule: "enum", Message: "Methods are totp, sms, email, backup_code and webauthn (passkeys: the phishing-resistant one)."})
					break
				}
			}
		case "enrollment_grace_period":
			g, ok := v.(string)
			if d, err := time.ParseDuration(g); !ok || err != nil || d < 0 {
				errs = append(errs, httpapi.FieldError{Field: "policy.enrollment_grace_period", Rule: "format", Message: "Must be a duration such as 72h."})
			}
		default:
			errs = append(errs, httpapi.FieldError{Field: "policy." + k, Rule: "unknown", Message: "Unknown policy setting."})
		}
	}
	return errs
}

func allowed(p Policy, method string) bool {
	return !p.NoneAllowed && (len(p.Methods) == 0 || slices.Contains(p.Methods, method))
}

// enrollable lists the methods a user may enrol under the policy (backup
// codes come with a device, they are not one), passkeys included when
// the service has them.
func (s *Service) enrollable(p Policy) []string {
	out := enrollable(p)
	if s.Passkeys != nil && allowed(p, MethodWebAuthn) {
		out = append(out, MethodWebAuthn)
	}
	return out
}

// enrollable lists the one-time-code methods a user may enrol under the
// policy.
func enrollable(p Policy) []string {
	var out []string
	for _, m := range []string{MethodTOTP, MethodSMS, MethodEmail} {
		if allowed(p, m) {
			out = append(out, m)
		}
	}
	return out
}

// factorSet is what decides a user's second step: the policy that
// applies, the user's confirmed devices, and the methods they make.
type factorSet struct {
	pol    Policy
	active []store.MFADevice
	// held are the methods the user has, whatever the policy; allowed
	// those of them the policy allows.
	held, allowed []string
	// passkeys are the user's usable passkeys (with Passkeys set); each is
	// in active as an MFADevice of type webauthn.
	passkeys []store.Passkey
}

// methodsFor returns the methods the pending login p may pass its second
// step with: those the policy allows, or, for a login that must enrol
// because the policy allows none of the user's factors, any of them.
//
// A login stepped up by its risk score whose user has no factor at all
// passes a code emailed to the account's address.
//
// A login whose first step was an emailed link (amr "email") cannot use an
// email code as its second factor: both prove the same mailbox.
func (f factorSet) methodsFor(p pending) []string {
	methods := f.allowed
	if p.EnrollAfter {
		methods = f.held
	}
	if p.StepUp && len(f.held) == 0 {
		methods = []string{MethodEmail}
	}
	if slices.Contains(p.AMR, amrOf[MethodEmail]) {
		methods = slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return m == MethodEmail })
	}
	if slices.Contains(p.AMR, "hwk") || slices.Contains(p.AMR, "swk") {
		// A passkey without user verification was the first step: it
		// cannot be the second too.
		methods = slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return m == MethodWebAuthn })
	}
	return methods
}

// passkeysOf are the passkeys among a user's active factors (each stands
// as an MFADevice of type webauthn with the passkey's ID).
func (f factorSet) passkeysOf(active []store.MFADevice) []store.Passkey {
	var out []store.Passkey
	for _, d := range active {
		if d.Type != MethodWebAuthn {
			continue
		}
		for _, p := range f.passkeys {
			if p.ID == d.ID {
				out = append(out, p)
			}
		}
	}
	return out
}

// factors reads the user's organisations, devices and backup codes in one
// store call.
func (s *Service) factors(ctx context.Context, u store.User) (factorSet, error) {
	sf, err := s.Store.SecondFactors(ctx, u.ID)
	if err != nil {
		return factorSet{}, err
	}
	f := factorSet{pol: s.policyOf(sf.Organizations)}
	add := func(m string) {
		if slices.Contains(f.held, m) {
			return
		}
		f.held = append(f.held, m)
		if allowed(f.pol, m) {
			f.allowed = append(f.allowed, m)
		}
	}
	for _, d := range sf.Devices {
		if d.ConfirmedAt.IsZero() {
			continue
		}
		f.active = append(f.active, d)
		add(d.Type)
	}
	if s.Passkeys != nil {
		for _, p := range sf.Passkeys {
			if !p.ClonedAt.IsZero() {
				continue
			}
			f.passkeys = append(f.passkeys, p)
			f.active = append(f.active, store.MFADevice{ID: p.ID, UserID: p.UserID, Type: MethodWebAuthn, Name: p.Name, ConfirmedAt: p.CreatedAt})
			add(MethodWebAuthn)
		}
	}
	if len(f.active) > 0 && sf.BackupCodes > 0 {
		add(MethodBackup)
	}
	return f, nil
}
