// Package mfa is multi-factor authentication: enrolment and management of
// second factors (TOTP authenticator apps, SMS and email codes, backup
// codes), the second step of sign-in, recent-authentication checks and the
// enforcement of MFA policies (global and per organisation).
package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/mfa/otp"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/require"
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
	// MethodWebAuthn is a passkey (package passkey): its amr is the
	// assertion's (hwk or swk, and user with verification).
	MethodWebAuthn = "webauthn"
)

// amrOf maps a method to its RFC 8176 style amr value (a passkey's
// depends on the assertion: Passkeys.VerifyAssertion says).
var amrOf = map[string]string{MethodTOTP: "otp", MethodSMS: "sms", MethodEmail: "email", MethodBackup: "backup_code", MethodWebAuthn: "hwk"}

// Errors, mapped to problems in one table.
var (
	ErrInvalidMFAToken   = errors.New("mfa: invalid or expired mfa_token")
	ErrInvalidCode       = errors.New("mfa: invalid code")
	ErrMethodUnavailable = errors.New("mfa: method not available")
	ErrAlreadyConfirmed  = errors.New("mfa: device already confirmed")
	// ErrPolicyConflict is a sign-in that needs a second factor when the
	// policies that apply allow no method at all.
	ErrPolicyConflict = errors.New("mfa: the policies allow no second factor")
	// ErrSecondFactorNeedsPassword is a login whose only second factor is
	// what its first step was: an email code after an emailed link (the
	// same mailbox cannot count twice), a passkey after a passkey that did
	// not verify the user.
	ErrSecondFactorNeedsPassword = errors.New("mfa: the only second factor is the first step's")
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
		httpapi.MapError(ErrSecondFactorNeedsPassword, http.StatusForbidden, "password_sign_in_required", "Your only second factor is the one this sign-in already used (an email code after a link to the same mailbox, or the same passkey); sign in with your password."),
		httpapi.MapError(ErrPolicyConflict, http.StatusForbidden, "mfa_policy_conflict", "The MFA policies of your organisations have no second factor in common, so you cannot sign in; ask an administrator."),
	}
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
	Complete(ctx context.Context, userID, passwordStamp string, amr []string, m httpapi.Meta, r *store.SessionRisk) (session.Result, error)
	CheckPassword(ctx context.Context, u store.User, pw string, m httpapi.Meta) error
	Reauthenticated(ctx context.Context, userID, sessionID string, amr []string) (string, int, error)
}

// Passkeys runs passkey assertions bound to a pending login or a session
// (passkey.Service). bind names what the assertion is for; allowed are the
// passkeys that may answer it.
type Passkeys interface {
	AssertionOptions(ctx context.Context, u store.User, allowed []store.Passkey, bind string) (json.RawMessage, error)
	VerifyAssertion(ctx context.Context, u store.User, allowed []store.Passkey, bind string, credential json.RawMessage, m httpapi.Meta) (amr []string, ok bool, err error)
}

// Deps are what the MFA service is built from (see New).
type Deps struct {
	Store    Store
	Keys     *secret.Keyring
	Codes    *Codes
	KV       kv.Store
	Limiter  ratelimit.Limiter
	Jobs     JobInserter
	SMSGuard *sms.Guard
	Sessions Sessions
	// Passkeys makes passkeys a second factor (method webauthn); nil:
	// they are not one.
	Passkeys Passkeys
	Now      func() time.Time
	Log      *slog.Logger
	Config   Config
}

// Service implements MFA. Build it with New; it is not changed afterwards.
//
// Once a login waiting for its second factor or a forced enrolment has
// fully succeeded (its mfa_token or enrollment_token consumed, the session
// started), the service publishes event.SecondFactorVerified with that
// token: features subscribe to it to finish work they deferred until then.
type Service struct{ Deps }

// New checks d and builds the service. Now defaults to time.Now, Log to a
// logger that discards.
func New(d Deps) (*Service, error) {
	if err := require.Deps("mfa", map[string]bool{
		"Store": d.Store != nil, "Keys": d.Keys != nil, "Codes": d.Codes != nil, "KV": d.KV != nil,
		"Limiter": d.Limiter != nil, "Jobs": d.Jobs != nil, "SMSGuard": d.SMSGuard != nil, "Sessions": d.Sessions != nil,
	}); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{Deps: d}, nil
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

// notice records an account event and emails the user about an MFA
// change (what), and publishes e (when not nil) with them.
func (s *Service) notice(ctx context.Context, u store.User, what, action string, data map[string]any, e event.Event) {
	err := s.Store.InTx(ctx, func(tx Tx) error {
		if err := s.record(ctx, tx, u, what, action, data); err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		return tx.Publish(ctx, e)
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "could not record an MFA change", "action", action, "error", err.Error())
	}
}

// record appends the account event of an MFA change and enqueues the
// email that tells the user (what), in tx.
func (s *Service) record(ctx context.Context, tx Tx, u store.User, what, action string, data map[string]any) error {
	now := s.now()
	if err := tx.AppendAuditEvent(ctx, store.AuditEvent{OccurredAt: now, ActorID: u.ID, SubjectID: u.ID, Action: action, Data: data}); err != nil {
		return err
	}
	args, err := mail.NewSendArgs(s.Keys, mail.MFANotice, u.Email, mail.Data{RecipientName: u.Name, Event: what, Time: now}, "")
	if err != nil {
		return err
	}
	_, err = s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
	return err
}
