package config

import "time"

// MFAConfig is which second factors are allowed or required and how wrong
// codes lock their verification.
type MFAConfig struct {
	Required         bool          `env:"MFA_REQUIRED" default:"false" doc:"Require a second factor of every user (organisations can also require it for their members)."`
	Methods          []string      `env:"MFA_METHODS" doc:"Allowed second factors: comma-separated totp, sms, email, backup_code, webauthn (passkeys). Empty: all."`
	EnrollmentGrace  time.Duration `env:"MFA_ENROLLMENT_GRACE" default:"0s" doc:"When MFA is required, how long after sign-up a user may still sign in without a factor."`
	LockoutThreshold int           `env:"MFA_LOCKOUT_THRESHOLD" default:"10" doc:"Consecutive wrong second-factor codes, across every sign-in of an account, that lock its second-factor verification."`
	LockoutBase      time.Duration `env:"MFA_LOCKOUT_BASE" default:"1m" doc:"First lock of second-factor verification; each further lock doubles it."`
	LockoutMax       time.Duration `env:"MFA_LOCKOUT_MAX" default:"1h" doc:"Longest lock of second-factor verification."`
}

func (m MFAConfig) validate(string) []string {
	var r report
	for _, method := range m.Methods {
		switch method {
		case "totp", "sms", "email", "backup_code", "webauthn":
		default:
			r.bad("MFA_METHODS", "%q is not a method (want totp, sms, email, backup_code or webauthn)", method)
		}
	}
	if m.EnrollmentGrace < 0 {
		r.bad("MFA_ENROLLMENT_GRACE", "must not be negative")
	}
	// NIST SP 800-63B §5.2.2: at most 100 consecutive failures.
	r.inRange(1, 100, namedInt{"MFA_LOCKOUT_THRESHOLD", m.LockoutThreshold})
	if m.LockoutBase < time.Second {
		r.bad("MFA_LOCKOUT_BASE", "must be at least 1s")
	}
	if m.LockoutMax < m.LockoutBase {
		r.bad("MFA_LOCKOUT_MAX", "must be at least GATEHOUSE_MFA_LOCKOUT_BASE")
	}
	return r
}
