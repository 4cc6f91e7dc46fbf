package ratepolicy

import (
	"time"

	"github.com/gatehouse/gatehouse/internal/ratelimit"
)

// Defaults are the numbers of the limits the features applied on their
// own before the policy, which the built-in policy keeps. The wiring fills
// them from the settings that tuned them, so those keep working:
//
//	d := ratepolicy.Builtin()
//	d.RegisterPerIP = ratepolicy.PerHour(cfg.RateLimits.RegisterPerIP)     // GATEHOUSE_REGISTER_LIMIT_PER_IP
//	d.EmailPerAddress = ratepolicy.PerHour(cfg.RateLimits.EmailPerAddress) // GATEHOUSE_EMAIL_LIMIT_PER_ADDRESS
//	d.EmailPerIP = ratepolicy.PerHour(cfg.RateLimits.EmailPerIP)           // GATEHOUSE_EMAIL_LIMIT_PER_IP
//
// The others had no setting: they are the defaults of the features'
// own configs (social.DefaultConfig, mfa.DefaultConfig,
// user.DefaultConfig). A zero Limit stands for the Builtin one.
//
// Some limits stay where they are, as they count something other than
// requests, or count on conditions only the feature sees:
//   - the per-account sign-in lockout and the per-IP failure limit
//     (internal/lockout; GATEHOUSE_LOCKOUT_*, GATEHOUSE_LOGIN_IP_FAILURE_LIMIT
//     and GATEHOUSE_LOGIN_IP_WINDOW, 100 failures per 15 min): they count
//     failed sign-ins, not requests, and protect the accounts;
//   - the second-factor lockout (GATEHOUSE_MFA_LOCKOUT_*): wrong codes;
//   - the text-message limits per user, per phone number and per country
//     (sms.Guard; GATEHOUSE_SMS_LIMIT_PER_USER, _PER_PHONE, _PER_COUNTRY):
//     they count messages sent, which only some requests send, to a
//     number the request does not carry;
//   - the per-address count of sign-up notices (user.Service.signupAttempt)
//     and of email changes (EmailChangePerUser, and the new address against
//     EmailPerAddress): they count only when an address is taken or an
//     email actually changes.
type Defaults struct {
	// RegisterPerIP: sign-ups per client address (register-ip).
	RegisterPerIP ratelimit.Limit
	// EmailPerAddress and EmailPerIP: password reset and verification
	// emails per address and per client address (email-address, email-ip).
	EmailPerAddress, EmailPerIP ratelimit.Limit
	// MagicLinkPerAddress and MagicLinkPerIP: sign-in link requests per
	// address and per client address (magic-link-address, magic-link-ip).
	MagicLinkPerAddress, MagicLinkPerIP ratelimit.Limit
	// MFAVerifyPerUser: second-factor code checks per user (mfa-verify-user;
	// mfa.Config.VerifyLimit).
	MFAVerifyPerUser ratelimit.Limit
	// MFASendPerUser: second-factor codes sent per user (mfa-send-user;
	// mfa.Config.ResendLimit).
	MFASendPerUser ratelimit.Limit
	// PasswordChangePerUser: password changes (current-password guesses)
	// per user (password-change-user).
	PasswordChangePerUser ratelimit.Limit
}

// PerHour is n per hour with a burst of n, as the GATEHOUSE_*_LIMIT_*
// settings mean.
func PerHour(n int) ratelimit.Limit { return ratelimit.Limit{Rate: n, Burst: n, Period: time.Hour} }

// PasskeyBeginPerIP limits the passkey sign-ins a client address may
// begin: 120 a minute, 60 at once (a sign-in page offering passkeys in
// its autofill begins one at every view; an office shares an address).
var PasskeyBeginPerIP = ratelimit.Limit{Rate: 120, Burst: 60, Period: time.Minute}

// Builtin returns the Defaults of a server without settings: the numbers
// of the features' default configs.
func Builtin() Defaults {
	return Defaults{
		RegisterPerIP:         PerHour(100),
		EmailPerAddress:       PerHour(5),
		EmailPerIP:            PerHour(50),
		MagicLinkPerAddress:   PerHour(5),
		MagicLinkPerIP:        PerHour(50),
		MFAVerifyPerUser:      ratelimit.Limit{Rate: 20, Burst: 10, Period: 5 * time.Minute},
		MFASendPerUser:        ratelimit.Limit{Rate: 5, Burst: 3, Period: 5 * time.Minute},
		PasswordChangePerUser: PerHour(10),
	}
}

// withBuiltin returns d with its zero limits replaced by Builtin's.
func (d Defaults) withBuiltin() Defaults {
	b := Builtin()
	for _, f := range []struct{ l, b *ratelimit.Limit }{
		{&d.RegisterPerIP, &b.RegisterPerIP}, {&d.EmailPerAddress, &b.EmailPerAddress}, {&d.EmailPerIP, &b.EmailPerIP},
		{&d.MagicLinkPerAddress, &b.MagicLinkPerAddress}, {&d.MagicLinkPerIP, &b.MagicLinkPerIP},
		{&d.MFAVerifyPerUser, &b.MFAVerifyPerUser}, {&d.MFASendPerUser, &b.MFASendPerUser},
		{&d.PasswordChangePerUser, &b.PasswordChangePerUser},
	} {
		if *f.l == (ratelimit.Limit{}) {
			*f.l = *f.b
		}
	}
	return d
}

// Default is the built-in policy. It keeps the limits the features
// applied on their own, same numbers (from d; see Defaults) and same
// subjects, and nothing more: routes nothing limited before (sign-in by
// address, the token endpoint, the API) are limited by a policy file (see
// ExampleYAML), so that upgrading changes no answer. Rules
// counted by an address someone else could type (email) have no
// penalty: it would let anyone block a victim's address for an hour.
func Default(d Defaults) *Policy {
	d = d.withBuiltin()
	group := func(g string) []Route { return []Route{{Group: g}} }
	rules := []Rule{
		{Name: "register-ip", Routes: group("register"), Key: []KeyPart{KeyIP}, Limit: d.RegisterPerIP, Penalty: true},
		{Name: "email-address", Routes: group("email_request"), Key: []KeyPart{KeyEmail}, Limit: d.EmailPerAddress},
		{Name: "email-ip", Routes: group("email_request"), Key: []KeyPart{KeyIP}, Limit: d.EmailPerIP, Penalty: true},
		{Name: "magic-link-address", Routes: group("magic_link"), Key: []KeyPart{KeyEmail}, Limit: d.MagicLinkPerAddress},
		{Name: "magic-link-ip", Routes: group("magic_link"), Key: []KeyPart{KeyIP}, Limit: d.MagicLinkPerIP, Penalty: true},
		{Name: "mfa-verify-user", Routes: group("mfa_verify"), Key: []KeyPart{KeyUser}, Limit: d.MFAVerifyPerUser, Penalty: true},
		{Name: "mfa-send-user", Routes: []Route{
			{Method: "POST", Path: "/v1/auth/mfa/challenge"}, {Method: "POST", Path: "/v1/me/mfa/sms"}, {Method: "POST", Path: "/v1/me/mfa/email"},
		}, Key: []KeyPart{KeyUser}, Limit: d.MFASendPerUser, Penalty: true},
		{Name: "password-change-user", Routes: []Route{{Method: "POST", Path: "/v1/me/password"}}, Key: []KeyPart{KeyUser}, Limit: d.PasswordChangePerUser, Penalty: true},
		// Each begun passkey sign-in keeps a ceremony for five minutes:
		// an anonymous client may not begin more than a person would.
		{Name: "passkey-begin-ip", Routes: []Route{{Method: "POST", Path: "/v1/auth/passkey/begin"}}, Key: []KeyPart{KeyIP}, Limit: PasskeyBeginPerIP},
	}
	for i := range rules {
		rules[i].Silent = isSilent(rules[i].Key, rules[i].Routes)
	}
	return &Policy{Source: "default", Rules: rules}
}
