// Package session is sign-in and what follows it: password login with
// brute-force protection, sessions with device information, rotating
// refresh tokens with reuse detection, logout and revocation that takes
// effect on every node at once.
package session

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/token"
)

// Errors of sign-in, mapped to problems in one table.
var (
	ErrInvalidCredentials = errors.New("session: invalid credentials")
	ErrEmailNotVerified   = errors.New("session: email not verified")
	ErrAccountDisabled    = errors.New("session: account disabled")
	ErrTooManySessions    = errors.New("session: too many sessions")
	// ErrInvalidGrant is a refresh token that is unknown, expired, revoked,
	// reused or presented from another device.
	ErrInvalidGrant = errors.New("session: invalid refresh token")
	// ErrUnknownPublicClient is a sign-in naming a client_id that is not
	// a public client (unknown, confidential or disabled): a confidential
	// client's users do not sign in here, and a session must not be bound
	// to a client that could not refresh it.
	ErrUnknownPublicClient = errors.New("session: client_id is not a public client")
)

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrInvalidCredentials, http.StatusUnauthorized, "invalid_credentials", "The email address or password is wrong."),
		httpapi.MapError(ErrEmailNotVerified, http.StatusForbidden, "email_not_verified", "Verify your email address before signing in."),
		httpapi.MapError(ErrAccountDisabled, http.StatusForbidden, "account_disabled", "This account is disabled."),
		httpapi.MapError(ErrTooManySessions, http.StatusConflict, "too_many_sessions", "The account has reached its limit of concurrent sessions."),
		httpapi.MapError(ErrInvalidGrant, http.StatusUnauthorized, "invalid_grant", "The refresh token is invalid, expired or revoked."),
		httpapi.MapError(ErrUnknownPublicClient, http.StatusBadRequest, "invalid_client", "client_id is not a registered public client."),
		httpapi.MapError(ErrRiskBlocked, http.StatusForbidden, "risk_blocked", "This sign-in was refused for the account's protection."),
		httpapi.MapError(ErrPasswordResetRequired, http.StatusForbidden, "password_reset_required", "A sign-in to this account was reported as not the owner's: reset the password (forgot password) before signing in with it."),
	}
}

// FirstPartyClientID is the client_id of tokens issued to Gatehouse's own
// login API.
const FirstPartyClientID = "gatehouse"

// Config tunes sessions.
type Config struct {
	AccessTTL   time.Duration // lifetime of access tokens (for deny-list TTLs)
	Leeway      time.Duration // clock skew accepted by token verification
	RefreshTTL  time.Duration // absolute session lifetime (default 30 days)
	IdleTimeout time.Duration // refresh token idle timeout (0: none)
	ReuseGrace  time.Duration // see store.RotateRequest.Grace (default 10 s)
	// RequireVerifiedEmail refuses sign-in before the address is verified.
	RequireVerifiedEmail bool
	// MaxSessions caps concurrent sessions per user (0: no cap). When a
	// login exceeds it, the oldest session ends, or with RefuseOverLimit
	// the login is refused.
	MaxSessions     int
	RefuseOverLimit bool
	// BindDevice refuses a refresh from another device fingerprint than the
	// session's (hash of device_id and the user-agent family).
	BindDevice bool
	Lockout    LockoutConfig
	// AppURL is the base of the "this wasn't me" link of the new-sign-in
	// email (AppURL+NotMePath+"?token=…"); without it (or without Jobs)
	// no such email is sent.
	AppURL string
}

// Tokens issues and revokes access tokens.
type Tokens interface {
	Issue(ctx context.Context, ac token.AccessClaims) (string, time.Time, error)
	DenySession(ctx context.Context, sessionID string, until time.Time) error
	RevokeIssuedBefore(ctx context.Context, t time.Time) error
}

// JobInserter enqueues a job in a transaction or on its own.
type JobInserter interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error)
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// Challenge is what a login needs before it gets tokens: a second factor
// (MFAToken) or the enrolment of one (EnrollmentToken).
type Challenge struct {
	MFAToken        string
	EnrollmentToken string
	Methods         []string
}

// SecondFactor decides, after a correct password, whether the login needs
// a second factor and if so opens the challenge. A nil Challenge means
// none is needed.
//
// BeginScored is Begin for a sign-in whose risk was scored: the session
// the login starts at the end keeps r (see Complete), and with stepUp a
// second factor is asked even when none is otherwise needed: one of the
// user's factors, or else a code emailed to the account's address.
//
// When amr holds "pwd", u.PasswordHash is the hash the password was checked
// against (or the rehash that replaces it): the second factor keeps its
// PasswordStamp and hands it to Complete, so that a password changed in
// between voids the login.
type SecondFactor interface {
	Begin(ctx context.Context, u store.User, amr []string, m httpapi.Meta) (*Challenge, error)
	BeginScored(ctx context.Context, u store.User, amr []string, m httpapi.Meta, r *store.SessionRisk, stepUp bool) (*Challenge, error)
}

// PasswordStamp identifies a password hash without holding it: what a
// login waiting for its second factor keeps of the password it checked.
func PasswordStamp(hash string) string { return secret.HashToken("password-stamp\x00" + hash) }

// Hasher is what sign-in needs of *password.Hasher.
type Hasher interface {
	Hash(ctx context.Context, pw string) (string, error)
	Verify(ctx context.Context, pw, encoded string) (ok, needsRehash bool, err error)
	// DummyVerify does the work of a Verify and reports nothing.
	DummyVerify(ctx context.Context, pw string)
}

// Audiences decides the audience of tokens issued on refresh
// (apis.Registry).
type Audiences interface {
	// Narrow returns the audience of an access token for a session
	// granted granted, asked for asked (RFC 8707: within the grant);
	// apis.ErrInvalidTarget when it is not, or none of the granted APIs
	// is still registered. nil is the default audience.
	Narrow(ctx context.Context, granted, asked []string) ([]string, error)
}

// Deps are what the sign-in service is built from (see New).
type Deps struct {
	Store Store
	// Audiences, when set, narrows and rechecks the audience on refresh;
	// without it a refresh keeps the session's audience and may not ask
	// for a resource.
	Audiences Audiences
	Hasher    Hasher // needed to sign in with a password
	Tokens    Tokens
	Keys      *secret.Keyring
	KV        kv.Store
	Jobs      JobInserter // needed for the emails of lockouts, token reuse and new sign-ins
	// Locate, when set, places a client address (netintel), in memory: a
	// session keeps where it started, and risk scoring uses it.
	Locate func(ip string) Location
	// Risk, when set, scores every password sign-in (see package risk)
	// from Locate, the user's profile in RiskProfiles (needed with Risk)
	// and, when set, the failure counters of RiskCounters.
	Risk         *risk.Engine
	RiskProfiles RiskProfiles
	RiskCounters *risk.Counters
	Now          func() time.Time
	Log          *slog.Logger
	Config       Config
}

// Location is where a client address is, as far as the GeoIP databases
// know: empty fields when they do not.
type Location struct {
	Country             string // ISO 3166-1 alpha-2
	City                string
	ASN                 uint32
	Latitude, Longitude float64
	HasLocation         bool     // Latitude and Longitude are known
	Lists               []string // the IP lists (GATEHOUSE_IP_LISTS) that hold the address
}

// Service implements sign-in and sessions. Build it with New (or
// NewWithSecondFactor); it is not changed afterwards.
type Service struct {
	Deps
	// MFA, when set, is asked after every correct password.
	MFA SecondFactor
}

// New checks d and builds the service without a second factor. Now
// defaults to time.Now, Log to a logger that discards.
func New(d Deps) (*Service, error) {
	if err := require.Deps("session", map[string]bool{"Store": d.Store != nil, "Tokens": d.Tokens != nil, "Keys": d.Keys != nil, "KV": d.KV != nil}); err != nil {
		return nil, err
	}
	if d.Risk != nil && d.RiskProfiles == nil {
		return nil, errors.New("session: risk scoring needs RiskProfiles")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{Deps: d}, nil
}

// NewWithSecondFactor builds the service together with its second factor,
// which finishes logins through the service: build gets the service
// (which it may keep but must not call yet) and returns the factor, which
// the service then asks after every correct password. This ties the one
// cycle between sign-in and MFA during construction, so that neither is
// changed once built.
func NewWithSecondFactor[F SecondFactor](d Deps, build func(*Service) (F, error)) (*Service, F, error) {
	var none F
	s, err := New(d)
	if err != nil {
		return nil, none, err
	}
	f, err := build(s)
	if err != nil {
		return nil, none, err
	}
	s.MFA = f
	return s, f, nil
}

// lockSubject names the lockout counters of a normalized email address
// by its pseudonym (see secret.Keyring.Pseudonym): the ephemeral store
// never sees the address.
func (s *Service) lockSubject(normalizedEmail string) string {
	return "email:" + s.Keys.Pseudonym("login-lockout", normalizedEmail)
}

func (s *Service) now() time.Time { return s.Now().UTC() }

// Result is a successful sign-in or refresh, or (Challenge set) a
// password step that needs a second factor first.
type Result struct {
	Challenge    *Challenge
	AccessToken  string
	ExpiresIn    int
	RefreshToken string
	Session      store.Session
	User         store.User
}

func (s *Service) securityEvent(ctx context.Context, userID, actorID, action string, m httpapi.Meta, data map[string]any) {
	err := s.Store.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: s.now(), ActorID: actorID, SubjectID: userID, Action: action,
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: data,
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "could not record a security event", "action", action, "error", err.Error())
	}
}
