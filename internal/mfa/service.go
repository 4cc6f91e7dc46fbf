// Package mfa is multi-factor authentication: enrolment and management of
// second factors (TOTP authenticator apps, SMS and email codes, backup
// codes), the second step of sign-in, recent-authentication checks and the
// enforcement of MFA policies (global and per organisation).
package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/mfa/otp"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/sms"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Methods of the second step of sign-in.
const (
	MethodTOTP   = "totp"
	MethodSMS    = "sms"
	MethodEmail  = "email"
	MethodBackup = "backup_code"
)

// amrOf maps a method to its RFC 8176 style amr value.
var amrOf = map[string]string{MethodTOTP: "otp", MethodSMS: "sms", MethodEmail: "email", MethodBackup: "backup_code"}

// Errors, mapped to problems in one table.
var (
	ErrInvalidMFAToken   = errors.New("mfa: invalid or expired mfa_token")
	ErrInvalidCode       = errors.New("mfa: invalid code")
	ErrMethodUnavailable = errors.New("mfa: method not available")
	ErrAlreadyConfirmed  = errors.New("mfa: device already confirmed")
	// ErrPolicyConflict is a sign-in that needs a second factor when the
	// policies that apply allow no method at all.
	ErrPolicyConflict = errors.New("mfa: the policies allow no second factor")
	// ErrSecondFactorNeedsPassword is a login by emailed link whose only
	// second factor is an email code: the same mailbox cannot count twice.
	ErrSecondFactorNeedsPassword = errors.New("mfa: an email code cannot follow an emailed link")
)

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable. A removal on an old authentication is
// auth.ErrReauthRequired, mapped by auth.Errors.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrInvalidMFAToken, http.StatusUnauthorized, "invalid_mfa_token", "The MFA token is invalid, expired or was used up; sign in again."),
		httpapi.MapError(ErrInvalidCode, http.StatusUnauthorized, "invalid_code", "The code is wrong, expired or was already used."),
		httpapi.MapError(ErrMethodUnavailable, http.StatusBadRequest, "method_unavailable", "This method is not set up for the account or not allowed."),
		httpapi.MapError(ErrAlreadyConfirmed, http.StatusConflict, "already_confirmed", "The device is already confirmed."),
		httpapi.MapError(ErrSecondFactorNeedsPassword, http.StatusForbidden, "password_sign_in_required", "Your second factor is an email code, which cannot follow a sign-in link sent to the same mailbox; sign in with your password."),
		httpapi.MapError(ErrPolicyConflict, http.StatusForbidden, "mfa_policy_conflict", "The MFA policies of your organisations have no second factor in common, so you cannot sign in; ask an administrator."),
	}
}

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

// Config tunes MFA.
type Config struct {
	Issuer           string        // the name authenticator apps show (product name)
	CodeTTL          time.Duration // email/SMS codes, default 10 min
	MaxCodeAttempts  int           // per code, default 5
	TokenTTL         time.Duration // mfa_token / enrollment_token, default 5 min
	MaxTokenAttempts int           // wrong codes before an mfa_token dies, default 5
	ReauthWindow     time.Duration // default 5 min
	BackupCodes      int           // default 10
	Policy           Policy        // the global policy
	// VerifyLimit throttles code checks per user (all methods).
	VerifyLimit ratelimit.Limit
	// Lockout locks second-factor verification of a user after too many
	// consecutive wrong codes across sign-ins.
	Lockout LockoutConfig
	// ResendLimit throttles code sends per user.
	ResendLimit ratelimit.Limit
}

// DefaultConfig returns the defaults.
func DefaultConfig(issuer string) Config {
	return Config{
		Issuer: issuer, CodeTTL: 10 * time.Minute, MaxCodeAttempts: 5, TokenTTL: 5 * time.Minute,
		MaxTokenAttempts: 5, ReauthWindow: 5 * time.Minute, BackupCodes: 10,
		VerifyLimit: ratelimit.Limit{Rate: 20, Burst: 10, Period: 5 * time.Minute},
		ResendLimit: ratelimit.Limit{Rate: 5, Burst: 3, Period: 5 * time.Minute},
		Lockout:     DefaultLockout(),
	}
}

// JobInserter enqueues jobs.
type JobInserter interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error)
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// Sessions finishes logins, checks passwords under the login lockout and
// refreshes recent authentication.
type Sessions interface {
	Complete(ctx context.Context, userID, passwordStamp string, amr []string, m httpapi.Meta) (session.Result, error)
	CheckPassword(ctx context.Context, u store.User, pw string, m httpapi.Meta) error
	Reauthenticated(ctx context.Context, userID, sessionID string, amr []string) (string, int, error)
}

// Service implements MFA.
type Service struct {
	Store    store.Store
	Keys     *secret.Keyring
	Codes    *Codes
	KV       kv.Store
	Limiter  ratelimit.Limiter
	Jobs     JobInserter
	SMSGuard *sms.Guard
	Sessions Sessions
	Now      func() time.Time
	Log      *slog.Logger
	Config   Config
	// AfterSecondFactor, when set, is called once a login waiting for its
	// second factor or a forced enrolment has fully succeeded: its
	// mfa_token or enrollment_token (pendingToken) was consumed and the
	// session started. Features use it to finish work they deferred until
	// then, kept under a hash of that token. It runs at most once per
	// token; an error is logged and does not undo the sign-in.
	AfterSecondFactor func(ctx context.Context, pendingToken, userID string, m httpapi.Meta) error
}

// Codes makes and checks keyed hashes (HMAC) of one-time and backup
// codes: a 6-digit code has only a million values, so a plain hash at rest
// would be brute-forced at once. The keys derive from the encryption
// keyring; hashes are made with the current key and checked against every
// key, so they survive a key rotation.
type Codes struct{ hashers []*otp.Hasher }

// NewCodes derives the code hashers from the keyring.
func NewCodes(keys *secret.Keyring) (*Codes, error) {
	c := &Codes{}
	for _, k := range keys.DerivedKeys("mfa-code-hash") {
		h, err := otp.NewHasher(k)
		if err != nil {
			return nil, err
		}
		c.hashers = append(c.hashers, h)
	}
	if len(c.hashers) == 0 {
		return nil, errors.New("mfa: no encryption keys to derive code hashes from")
	}
	return c, nil
}

// Hash returns the hash of code for purpose under the current key.
func (c *Codes) Hash(purpose, code string) string { return c.hashers[0].Hash(purpose, code) }

// All returns the hashes of code under every key, the current one first.
func (c *Codes) All(purpose, code string) []string {
	out := make([]string, len(c.hashers))
	for i, h := range c.hashers {
		out[i] = h.Hash(purpose, code)
	}
	return out
}

// Match reports, in constant time per key, whether stored is the hash of
// code under any key.
func (c *Codes) Match(stored, purpose, code string) bool {
	ok := false
	for _, h := range c.All(purpose, code) {
		if otp.Equal(stored, h) {
			ok = true
		}
	}
	return ok
}

func (s *Service) now() time.Time { return s.Now().UTC() }

// pending is a login waiting for its second factor (or for enrolment).
type pending struct {
	UserID string   `json:"user_id"`
	AMR    []string `json:"amr"`
	Enroll bool     `json:"enroll"`
	// UA binds the token to the client that passed the password step.
	UA string `json:"ua"`
	// PasswordStamp is the session.PasswordStamp of the hash the password
	// step checked (empty when the login had no password step): a password
	// changed before the second factor voids the login.
	PasswordStamp string `json:"password_stamp,omitempty"`
	// EnrollAfter marks a login that must enrol an allowed factor because
	// the policy allows none of the user's: it first passes one of the
	// factors the user has, and only then gets its enrollment_token.
	EnrollAfter bool `json:"enroll_after,omitempty"`
	// Origin, on the enrolment that follows an EnrollAfter login, is that
	// login's mfa_token (already consumed): the token the sign-in started
	// with, under which AfterSecondFactor finds deferred work.
	Origin string `json:"origin,omitempty"`
}

// tokenRef names a pending login without holding its token: the hash its
// ephemeral keys are made of, and the reference its SMS jobs carry
// (sms.SendArgs.Ref) so that a failure reaches this login.
func tokenRef(tok string) string { return secret.HashToken(tok) }

func pendingKey(tok string) string    { return pendingRefKey(tokenRef(tok)) }
func pendingRefKey(ref string) string { return "mfa:pending:" + ref }
func attemptsKey(tok string) string   { return "mfa:attempts:" + tokenRef(tok) }
func claimKey(ref string) string      { return "mfa:claim:" + ref }
func smsFailedKey(ref string) string  { return "mfa:sms-failed:" + ref }

func uaHash(ua string) string { return secret.HashToken("ua\x00" + ua) }

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
					errs = append(errs, httpapi.FieldError{Field: "policy.allowed_methods", Rule: "enum", Message: "Methods are totp, sms, email and backup_code."})
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
// codes come with a device, they are not one).
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
}

// methodsFor returns the methods the pending login p may pass its second
// step with: those the policy allows, or, for a login that must enrol
// because the policy allows none of the user's factors, any of them.
//
// A login whose first step was an emailed link (amr "email") cannot use an
// email code as its second factor: both prove the same mailbox.
func (f factorSet) methodsFor(p pending) []string {
	methods := f.allowed
	if p.EnrollAfter {
		methods = f.held
	}
	if slices.Contains(p.AMR, amrOf[MethodEmail]) {
		methods = slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return m == MethodEmail })
	}
	return methods
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
	if len(f.active) > 0 && sf.BackupCodes > 0 {
		add(MethodBackup)
	}
	return f, nil
}

// Begin implements session.SecondFactor: after a correct password it asks
// for a second factor when the user has one, or for enrolment when a
// policy requires one and the grace period is over.
//
// A user whose every factor the policy disallows must enrol an allowed
// one, but not on the strength of the password alone, or whoever has the
// password could enrol their own phone: such a login answers
// mfa_required like any other, with the factors the user has, and only
// once one of them passed does Verify hand out the enrollment_token.
func (s *Service) Begin(ctx context.Context, u store.User, amr []string, m httpapi.Meta) (*session.Challenge, error) {
	f, err := s.factors(ctx, u)
	if err != nil {
		return nil, err
	}
	switch {
	case len(f.active) > 0:
		p := pending{UserID: u.ID, AMR: amr, UA: uaHash(m.UserAgent), PasswordStamp: passwordStamp(u, amr)}
		if len(f.allowed) == 0 {
			if len(enrollable(f.pol)) == 0 {
				return nil, ErrPolicyConflict
			}
			p.EnrollAfter = true
		}
		methods := f.methodsFor(p)
		if len(methods) == 0 {
			// Only an email code is left, and the first step proved the
			// mailbox already.
			return nil, ErrSecondFactorNeedsPassword
		}
		tok, err := s.newPending(ctx, p)
		if err != nil {
			return nil, err
		}
		return &session.Challenge{MFAToken: tok, Methods: methods}, nil
	case f.pol.Required && s.now().Sub(u.CreatedAt) >= f.pol.Grace:
		return s.open(ctx, pending{UserID: u.ID, AMR: amr, Enroll: true, UA: uaHash(m.UserAgent), PasswordStamp: passwordStamp(u, amr)}, f.pol)
	}
	return nil, nil
}

// open stores p, a login that must enrol a factor, and returns its
// enrollment_token.
func (s *Service) open(ctx context.Context, p pending, pol Policy) (*session.Challenge, error) {
	methods := enrollable(pol)
	if len(methods) == 0 {
		// Nothing could be enrolled: an enrollment_token would open a
		// dead end.
		return nil, ErrPolicyConflict
	}
	tok, err := s.newPending(ctx, p)
	if err != nil {
		return nil, err
	}
	return &session.Challenge{EnrollmentToken: tok, Methods: methods}, nil
}

// passwordStamp is what a pending login keeps of the password its first
// step checked (see session.SecondFactor): nothing when amr has no "pwd".
func passwordStamp(u store.User, amr []string) string {
	if !slices.Contains(amr, "pwd") {
		return ""
	}
	return session.PasswordStamp(u.PasswordHash)
}

func (s *Service) newPending(ctx context.Context, p pending) (string, error) {
	tok, err := secret.NewToken(32)
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(p)
	if err := s.KV.Set(ctx, pendingKey(tok), b, s.Config.TokenTTL); err != nil {
		return "", err
	}
	return tok, nil
}

// wellFormed reports whether tok could be a pending login's token at all.
func wellFormed(tok string) bool { return tok != "" && len(tok) <= 256 }

// lookup reads a pending login without consuming it.
func (s *Service) lookup(ctx context.Context, tok string, m httpapi.Meta, enroll bool) (pending, error) {
	if !wellFormed(tok) {
		return pending{}, ErrInvalidMFAToken
	}
	b, err := s.KV.Get(ctx, pendingKey(tok))
	if errors.Is(err, kv.ErrNotFound) {
		return pending{}, ErrInvalidMFAToken
	}
	if err != nil {
		return pending{}, err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil || p.Enroll != enroll || !secret.Equal(p.UA, uaHash(m.UserAgent)) {
		return pending{}, ErrInvalidMFAToken
	}
	return p, nil
}

// failAttempt counts a wrong code against an mfa_token and reports whether
// it was the token's last (MaxTokenAttempts): then the token dies, and its
// pending login, which the caller holds (see spend), must not be put back.
func (s *Service) failAttempt(ctx context.Context, tok string) (dead bool, err error) {
	n, err := s.KV.Incr(ctx, attemptsKey(tok), 1, s.Config.TokenTTL)
	if err != nil {
		return false, err
	}
	if n < int64(s.Config.MaxTokenAttempts) {
		return false, nil
	}
	if _, err := s.KV.Delete(ctx, attemptsKey(tok)); err != nil {
		return true, err
	}
	return true, nil
}

// How verifications of one mfa_token take turns (see exclusively).
const (
	// claimTTL bounds how long a claim outlives a node that died holding
	// it. Safety does not depend on it: a verification that outlasts its
	// claim holds its pending login (see spend), and whoever claims next
	// finds none.
	claimTTL = 10 * time.Second
	// claimWait is how long a verification waits for its turn before it
	// is answered 429 (try again).
	claimWait = 3 * time.Second
)

// exclusively runs fn, a verification of the pending login whose token
// has ref (tokenRef), while no other verification of that token runs, on
// any node: parallel requests on one mfa_token take turns, as if they had
// come one after the other. The first with a right code signs in; those
// after it find the token used (invalid_mfa_token) without checking, let
// alone consuming, their codes. A wrong code is counted as it would be
// alone. A verification that waited claimWait in vain is answered 429
// rate_limited. (SMSFailed takes its turn too: it must not find the login
// gone while a verification holds it.)
func (s *Service) exclusively(ctx context.Context, ref string, fn func() error) error {
	key := claimKey(ref)
	deadline := time.NewTimer(claimWait)
	defer deadline.Stop()
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		ok, err := s.KV.SetNX(ctx, key, []byte("1"), claimTTL)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			p := httpapi.NewProblem(http.StatusTooManyRequests, "rate_limited", "Another verification of this sign-in is under way; try again in a moment.")
			p.RetryAfter = 1
			return p
		case <-time.After(pause):
		}
	}
	defer func() {
		// Not under ctx: a client gone must not leave the token blocked.
		if _, err := s.KV.Delete(context.WithoutCancel(ctx), key); err != nil {
			s.Log.ErrorContext(ctx, "could not release the claim on a pending sign-in; it expires by itself", "error", err.Error())
		}
	}()
	return fn()
}

// spend checks a code of the pending login tok (check, which consumes what
// is one-time) holding that login: it is taken out of the store first, so
// that a code is only ever spent by the one request that has it. A right
// code keeps it taken: the login is this request's, to finish. A wrong
// code counts against the token (failAttempt) and returns ErrInvalidCode;
// the login is put back with the lifetime it had left, unless that was the
// token's last attempt. After an error it is put back too.
//
// Callers run it under exclusively, so that parallel requests neither see
// the login missing while it is out nor spend codes in vain.
func (s *Service) spend(ctx context.Context, tok string, check func() (bool, error)) error {
	key := pendingKey(tok)
	ttl, err := s.KV.TTL(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return ErrInvalidMFAToken
	}
	if err != nil {
		return err
	}
	taken := s.now()
	b, err := s.KV.GetDel(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return ErrInvalidMFAToken
	}
	if err != nil {
		return err
	}
	ok, err := check()
	if ok && err == nil {
		return nil
	}
	if err == nil {
		dead, ferr := s.failAttempt(ctx, tok)
		if err = ErrInvalidCode; ferr != nil {
			err = ferr
		}
		if dead {
			return err // the token's last attempt: the login stays out
		}
	}
	if ttl <= 0 || ttl > s.Config.TokenTTL {
		ttl = s.Config.TokenTTL // every pending login expires
	}
	if left := ttl - s.now().Sub(taken); left > 0 {
		if serr := s.KV.Set(context.WithoutCancel(ctx), key, b, left); serr != nil {
			return serr
		}
	}
	return err
}

func (s *Service) throttle(ctx context.Context, key string, l ratelimit.Limit) error {
	res, err := s.Limiter.AllowN(ctx, key, l, 1)
	if err != nil {
		return err
	}
	if res.Allowed == 0 {
		p := httpapi.NewProblem(http.StatusTooManyRequests, "rate_limited", "Too many attempts; try again later.")
		p.RetryAfter = max(1, int(res.RetryAfter/time.Second))
		return p
	}
	return nil
}

// Challenge sends a code for a login's sms or email step. It takes its
// turn with the verifications of the token (see exclusively), which hold
// the login while they check a code.
func (s *Service) Challenge(ctx context.Context, tok, method string, m httpapi.Meta) (ttl time.Duration, err error) {
	if !wellFormed(tok) {
		return 0, ErrInvalidMFAToken
	}
	err = s.exclusively(ctx, tokenRef(tok), func() error {
		ttl, err = s.challenge(ctx, tok, method, m)
		return err
	})
	return ttl, err
}

func (s *Service) challenge(ctx context.Context, tok, method string, m httpapi.Meta) (time.Duration, error) {
	p, err := s.lookup(ctx, tok, m, false)
	if err != nil {
		return 0, err
	}
	u, err := s.Store.GetUser(ctx, p.UserID)
	if err != nil {
		return 0, err
	}
	f, err := s.factors(ctx, u)
	if err != nil {
		return 0, err
	}
	methods, ref := f.methodsFor(p), tokenRef(tok)
	switch {
	case !slices.Contains(methods, method) && method == MethodEmail:
		ok, err := s.emailFallback(ctx, ref, p, f.pol, methods)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, ErrMethodUnavailable
		}
		return s.Config.CodeTTL, s.sendCode(ctx, u, fallbackDevice(u), m, "")
	case !slices.Contains(methods, method):
		return 0, ErrMethodUnavailable
	case method == MethodSMS:
		d, _ := pick(f.active, MethodSMS)
		err := s.sendCode(ctx, u, d, m, ref)
		if !cannotText(err) {
			return s.Config.CodeTTL, smsProblem(err, false)
		}
		// The number cannot get text messages at all: as good as a failed
		// delivery.
		if err := s.smsFailed(ctx, ref); err != nil {
			return 0, err
		}
		offer, ferr := s.emailFallback(ctx, ref, p, f.pol, methods)
		if ferr != nil {
			return 0, ferr
		}
		return 0, smsProblem(err, offer)
	case method == MethodEmail:
		d, _ := pick(f.active, MethodEmail)
		return s.Config.CodeTTL, s.sendCode(ctx, u, d, m, "")
	}
	return 0, ErrMethodUnavailable
}

// fallbackDevice is where the email code that stands in for a failed text
// message goes: the account's address, under no device.
func fallbackDevice(u store.User) store.MFADevice {
	return store.MFADevice{UserID: u.ID, Type: MethodEmail, Email: u.Email}
}

// emailFallback reports whether the pending login p (whose token has ref)
// may use an email code in place of a text message. Issue 5 offers it when
// SMS delivery fails, and only then: a text message for this very sign-in
// failed (see smsFailed); SMS is one of the sign-in's methods and email,
// as a factor of its own, is not (else it needs no fallback); the policy
// allows email; and the first step of the sign-in did not prove the
// mailbox already (a magic link, amr "email"), for the same mailbox
// twice is one factor.
func (s *Service) emailFallback(ctx context.Context, ref string, p pending, pol Policy, methods []string) (bool, error) {
	if !slices.Contains(methods, MethodSMS) || slices.Contains(methods, MethodEmail) || !allowed(pol, MethodEmail) || slices.Contains(p.AMR, amrOf[MethodEmail]) {
		return false, nil
	}
	_, err := s.KV.Get(ctx, smsFailedKey(ref))
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// smsFailed records that a text message for the pending login with ref
// could not be sent. It lives no longer than the login can.
func (s *Service) smsFailed(ctx context.Context, ref string) error {
	return s.KV.Set(ctx, smsFailedKey(ref), []byte("1"), s.Config.TokenTTL)
}

// cannotText reports whether err is the SMS guard's refusal of the number
// itself (a country that is not enabled, a number that cannot get text
// messages). A rate limit is not: whoever knows the password could hit it
// on purpose to turn the SMS factor into an email one.
func cannotText(err error) bool {
	return errors.Is(err, sms.ErrCountryNotAllowed) || errors.Is(err, sms.ErrNotMobile)
}

// pick returns the user's default active device of a type, else the first.
func pick(active []store.MFADevice, typ string) (store.MFADevice, bool) {
	var first *store.MFADevice
	for i, d := range active {
		if d.Type != typ {
			continue
		}
		if d.IsDefault {
			return d, true
		}
		if first == nil {
			first = &active[i]
		}
	}
	if first == nil {
		return store.MFADevice{}, false
	}
	return *first, true
}

// sendCode makes a code for the device's channel and sends it by a durable
// job (the job holds the code sealed). ref, for a text message of a
// sign-in, is its pending login's tokenRef, handed back to SMSFailed. A
// refusal of the SMS guard is returned as it is (see smsProblem).
func (s *Service) sendCode(ctx context.Context, u store.User, d store.MFADevice, m httpapi.Meta, ref string) error {
	if err := s.throttle(ctx, "mfa:send:"+u.ID, s.Config.ResendLimit); err != nil {
		return err
	}
	if d.Type == MethodSMS {
		if err := s.SMSGuard.Check(ctx, u.ID, d.PhoneNumber); err != nil {
			return err
		}
	}
	code, err := otp.NumericCode(6)
	if err != nil {
		return err
	}
	now := s.now()
	return s.Store.InTx(ctx, func(tx store.Store) error {
		if _, err := tx.CreateMFACode(ctx, store.MFACode{
			UserID: u.ID, DeviceID: d.ID, Channel: d.Type, CodeHash: s.Codes.Hash("mfa-code", code),
			ExpiresAt: now.Add(s.Config.CodeTTL), CreatedAt: now,
		}); err != nil {
			return err
		}
		var args river.JobArgs
		if d.Type == MethodSMS {
			a, err := sms.NewSendArgs(s.Keys, d.PhoneNumber,
				fmt.Sprintf("%s code: %s. It expires in %d minutes. Never share it.", s.Config.Issuer, code, int(s.Config.CodeTTL/time.Minute)),
				u.ID, "mfa")
			if err != nil {
				return err
			}
			a.Ref = ref
			args = a
		} else {
			to := d.Email
			if to == "" {
				to = u.Email
			}
			a, err := mail.NewCodeArgs(s.Keys, mail.MFACode, to, mail.Data{RecipientName: u.Name, ExpiresIn: s.Config.CodeTTL, IP: m.IP, UserAgent: m.UserAgent, Time: now}, code)
			if err != nil {
				return err
			}
			args = a
		}
		_, err := s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
		return err
	})
}

// smsProblem explains why an SMS cannot be sent (other errors pass
// unchanged), offering the email code when the sign-in may use it.
func smsProblem(err error, offerEmail bool) error {
	instead := "; use another method"
	if offerEmail {
		instead = "; use the email code instead"
	}
	var rl *sms.ErrRateLimited
	switch {
	case errors.As(err, &rl):
		p := httpapi.NewProblem(http.StatusTooManyRequests, "sms_rate_limited", "Too many text messages; try again later.")
		p.RetryAfter = max(1, int(rl.RetryAfter/time.Second))
		return p
	case errors.Is(err, sms.ErrCountryNotAllowed):
		return httpapi.NewProblem(http.StatusUnprocessableEntity, "sms_country_not_allowed", "Text messages cannot be sent to this country"+instead+".")
	case errors.Is(err, sms.ErrNotMobile):
		return httpapi.NewProblem(http.StatusUnprocessableEntity, "phone_not_mobile", "The phone number cannot receive text messages"+instead+".")
	}
	return err
}

// checkCode verifies a code for a method against the user's active
// devices, consuming what is one-time. It returns the device used. With
// fallback, an email code is the one sent in place of a failed text
// message (see emailFallback, which the caller checked).
//
// Callers throttle first and run it under the per-user lockout (guarded).
func (s *Service) checkCode(ctx context.Context, u store.User, active []store.MFADevice, method, code string, fallback bool) (store.MFADevice, bool, error) {
	now := s.now()
	switch method {
	case MethodTOTP:
		for _, d := range active {
			if d.Type != MethodTOTP {
				continue
			}
			ok, err := s.checkTOTP(ctx, d, code, now)
			if err != nil || ok {
				return d, ok, err
			}
		}
		return store.MFADevice{}, false, nil
	case MethodSMS, MethodEmail:
		d, ok := pick(active, method)
		if !ok && method == MethodEmail && fallback {
			d, ok = fallbackDevice(u), true
		}
		if !ok {
			return store.MFADevice{}, false, ErrMethodUnavailable
		}
		ok, err := s.checkSentCode(ctx, u.ID, d, code, now)
		return d, ok, err
	case MethodBackup:
		norm := otp.NormalizeBackupCode(code)
		if norm == "" {
			return store.MFADevice{}, false, nil
		}
		var ok bool
		for _, h := range s.Codes.All("backup-code", norm) {
			used, err := s.Store.UseBackupCode(ctx, u.ID, h, now)
			if err != nil {
				return store.MFADevice{}, false, err
			}
			ok = ok || used
			if ok {
				break
			}
		}
		if !ok {
			return store.MFADevice{}, false, nil
		}
		left, err := s.Store.CountBackupCodes(ctx, u.ID)
		if err != nil {
			return store.MFADevice{}, false, err
		}
		s.notice(ctx, u, fmt.Sprintf("A backup code was used to sign in; %d remain", left), "mfa.backup_code_used", map[string]any{"remaining": left})
		return store.MFADevice{Type: MethodBackup}, true, nil
	}
	return store.MFADevice{}, false, ErrMethodUnavailable
}

// checkTOTP accepts a code for a time step at most once.
func (s *Service) checkTOTP(ctx context.Context, d store.MFADevice, code string, now time.Time) (bool, error) {
	secretB32, err := s.Keys.Open(d.Secret, totpAD(d.UserID, d.ID))
	if err != nil {
		return false, fmt.Errorf("mfa: open TOTP secret: %w", err)
	}
	step, ok := otp.Validate(string(secretB32), code, now, 1)
	if !ok {
		return false, nil
	}
	return s.Store.AcceptTOTPStep(ctx, d.UserID, d.ID, step, now)
}

func totpAD(userID, deviceID string) []byte {
	return []byte("gatehouse/mfa/totp\x00" + userID + "\x00" + deviceID)
}

// checkSentCode checks an email or SMS code (at most MaxCodeAttempts
// tries per code) and consumes it.
func (s *Service) checkSentCode(ctx context.Context, userID string, d store.MFADevice, code string, now time.Time) (bool, error) {
	c, err := s.Store.AttemptMFACode(ctx, userID, d.Type, d.ID, s.Config.MaxCodeAttempts, now)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !s.Codes.Match(c.CodeHash, "mfa-code", strings.TrimSpace(code)) {
		return false, nil
	}
	return s.Store.ConsumeMFACode(ctx, c.ID, now)
}

// Verify completes a login's second step and starts the session; for a
// login that must then enrol (pending.EnrollAfter) it answers with the
// enrollment_token (Result.Challenge) instead.
//
// Verifications of one mfa_token take turns (exclusively), and each holds
// the pending login while it checks its code (spend): of parallel requests
// with right codes one signs in and consumes its code, the others consume
// nothing.
func (s *Service) Verify(ctx context.Context, tok, method, code string, m httpapi.Meta) (session.Result, error) {
	if !wellFormed(tok) {
		return session.Result{}, ErrInvalidMFAToken
	}
	var (
		p pending
		u store.User
		f factorSet
	)
	err := s.exclusively(ctx, tokenRef(tok), func() error {
		var err error
		if p, err = s.lookup(ctx, tok, m, false); err != nil {
			return err
		}
		if u, err = s.Store.GetUser(ctx, p.UserID); err != nil {
			return err
		}
		if f, err = s.factors(ctx, u); err != nil {
			return err
		}
		methods, fallback := f.methodsFor(p), false
		if !slices.Contains(methods, method) {
			if method == MethodEmail {
				fallback, err = s.emailFallback(ctx, tokenRef(tok), p, f.pol, methods)
				if err != nil {
					return err
				}
			}
			if !fallback {
				return ErrMethodUnavailable
			}
		}
		if err := s.throttle(ctx, "mfa:verify:"+u.ID, s.Config.VerifyLimit); err != nil {
			return err
		}
		return s.spend(ctx, tok, func() (bool, error) {
			return s.guarded(ctx, u, m, true, func() (bool, error) {
				_, ok, err := s.checkCode(ctx, u, f.active, method, code, fallback)
				return ok, err
			})
		})
	})
	if err != nil {
		return session.Result{}, err
	}
	// The pending login is this request's alone (spend took it).
	_, _ = s.KV.Delete(ctx, attemptsKey(tok), smsFailedKey(tokenRef(tok)))
	if p.EnrollAfter {
		// A factor the user has passed: now, and only now, the login may
		// enrol one the policy allows.
		ch, err := s.open(ctx, pending{
			UserID: p.UserID, AMR: amrWith(p.AMR, method), Enroll: true, UA: p.UA,
			PasswordStamp: p.PasswordStamp, Origin: tok,
		}, f.pol)
		return session.Result{Challenge: ch, User: u}, err
	}
	return s.complete(ctx, tok, p, amrWith(p.AMR, method), m)
}

// complete starts the session of a login whose pending token tok was
// consumed, then runs AfterSecondFactor with the token the sign-in
// started with.
func (s *Service) complete(ctx context.Context, tok string, p pending, amr []string, m httpapi.Meta) (session.Result, error) {
	res, err := s.Sessions.Complete(ctx, p.UserID, p.PasswordStamp, amr, m)
	if err != nil || s.AfterSecondFactor == nil {
		return res, err
	}
	if p.Origin != "" {
		tok = p.Origin
	}
	if err := s.AfterSecondFactor(ctx, tok, p.UserID, m); err != nil {
		s.Log.ErrorContext(ctx, "a step deferred to the second factor failed", "error", err.Error())
	}
	return res, nil
}

func amrWith(amr []string, method string) []string {
	out := append([]string(nil), amr...)
	for _, a := range []string{"mfa", amrOf[method]} {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// notice records an account event and emails the user about an MFA change.
func (s *Service) notice(ctx context.Context, u store.User, event, action string, data map[string]any) {
	now := s.now()
	err := s.Store.InTx(ctx, func(tx store.Store) error {
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{OccurredAt: now, ActorID: u.ID, SubjectID: u.ID, Action: action, Data: data}); err != nil {
			return err
		}
		args, err := mail.NewSendArgs(s.Keys, mail.MFANotice, u.Email, mail.Data{RecipientName: u.Name, Event: event, Time: now}, "")
		if err != nil {
			return err
		}
		_, err = s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
		return err
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "could not record an MFA change", "action", action, "error", err.Error())
	}
}

// FinishEnrollment completes a login that had to enrol a factor: the
// enrollment token is consumed (once) and the session starts with the new
// factor in its amr.
func (s *Service) FinishEnrollment(ctx context.Context, tok, method string, m httpapi.Meta) (session.Result, error) {
	b, err := s.KV.GetDel(ctx, pendingKey(tok))
	if errors.Is(err, kv.ErrNotFound) {
		return session.Result{}, ErrInvalidMFAToken
	}
	if err != nil {
		return session.Result{}, err
	}
	var p pending
	if err := json.Unmarshal(b, &p); err != nil || !p.Enroll {
		return session.Result{}, ErrInvalidMFAToken
	}
	return s.complete(ctx, tok, p, amrWith(p.AMR, method), m)
}

// SMSFailed is the SMS worker's failure hook. The event is recorded. A
// text message of a sign-in (args.Ref names its pending login) that could
// not be sent opens the email fallback for that sign-in, and the email
// code is sent at once when the sign-in may use it (see emailFallback).
func (s *Service) SMSFailed(ctx context.Context, args sms.SendArgs, cause error) {
	u, err := s.Store.GetUser(ctx, args.UserID)
	if err != nil {
		s.Log.ErrorContext(ctx, "sms failure hook: user lookup failed", "error", err.Error())
		return
	}
	now := s.now()
	if err := s.Store.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: now, SubjectID: u.ID, Action: "mfa.sms_failed",
		Data: map[string]any{"to": sms.Mask(args.To), "purpose": args.Purpose, "reason": cause.Error()},
	}); err != nil {
		s.Log.ErrorContext(ctx, "sms failure hook: audit failed", "error", err.Error())
	}
	if args.Purpose != "mfa" || args.Ref == "" {
		return // not a sign-in's code (an enrolment's, say): no fallback
	}
	// In its turn: a verification in progress holds the login (see spend).
	err = s.exclusively(ctx, args.Ref, func() error {
		b, err := s.KV.Get(ctx, pendingRefKey(args.Ref))
		if errors.Is(err, kv.ErrNotFound) {
			return nil // the sign-in is over
		}
		var p pending
		if err == nil {
			err = json.Unmarshal(b, &p)
		}
		if err == nil && p.UserID != u.ID {
			err = errors.New("the pending sign-in is another user's")
		}
		if err == nil {
			err = s.smsFailed(ctx, args.Ref)
		}
		var f factorSet
		if err == nil {
			f, err = s.factors(ctx, u)
		}
		offer := false
		if err == nil {
			offer, err = s.emailFallback(ctx, args.Ref, p, f.pol, f.methodsFor(p))
		}
		if err == nil && offer {
			err = s.sendCode(ctx, u, fallbackDevice(u), httpapi.Meta{}, "")
		}
		return err
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "sms failure hook: email fallback failed", "error", err.Error())
	}
}
