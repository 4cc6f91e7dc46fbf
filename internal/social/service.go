// Package social is sign-in with external accounts (Google, GitHub,
// Microsoft, any OpenID Connect provider): the browser flow with state,
// PKCE and nonce, sign-up, linking without account takeover, the
// application-side code exchange (tokens never travel in URLs), identity
// management, error normalisation with a circuit breaker, and email
// magic-link sign-in as the fallback.
package social

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/social/provider"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Errors mapped to problems.
var (
	ErrUnknownProvider    = errors.New("social: unknown provider")
	ErrRedirectNotAllowed = errors.New("social: redirect_to not allowed")
	ErrInvalidState       = errors.New("social: invalid or expired state")
	ErrInvalidCode        = errors.New("social: invalid or expired code")
	ErrLastSignInMethod   = errors.New("social: last sign-in method")
	ErrIdentityInUse      = errors.New("social: identity linked to another account")
	// ErrInvalidChallenge refuses a start whose code_challenge is not an
	// S256 challenge.
	ErrInvalidChallenge = errors.New("social: invalid code_challenge")
)

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable. Linking an identity on an authentication older
// than Config.ReauthWindow is auth.ErrReauthRequired, mapped by
// auth.Errors.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrUnknownProvider, http.StatusNotFound, "unknown_provider", "No such sign-in provider is configured."),
		httpapi.MapError(ErrRedirectNotAllowed, http.StatusBadRequest, "redirect_not_allowed", "redirect_to is not on the allowlist (GATEHOUSE_REDIRECT_ALLOWLIST)."),
		httpapi.MapError(ErrInvalidState, http.StatusBadRequest, "invalid_state", "The sign-in attempt is unknown, expired, already used or from another browser; start again."),
		httpapi.MapError(ErrInvalidCode, http.StatusBadRequest, "invalid_code", "The code is invalid, expired or was already used."),
		httpapi.MapError(ErrLastSignInMethod, http.StatusConflict, "last_sign_in_method", "This is the account's last way to sign in; add a password, a passkey or another identity first."),
		httpapi.MapError(ErrIdentityInUse, http.StatusConflict, "identity_in_use", "This external account is linked to another account."),
		httpapi.MapError(ErrInvalidChallenge, http.StatusBadRequest, "invalid_code_challenge", "code_challenge must be the S256 challenge (43 base64url characters) with code_challenge_method S256."),
	}
}

// Config tunes social sign-in.
type Config struct {
	Issuer            string   // public base URL; callbacks are Issuer+/v1/auth/oauth/<id>/callback
	AppURL            string   // base of magic links
	RedirectAllowlist []string // exact URLs redirect_to may name
	StateTTL          time.Duration
	CodeTTL           time.Duration
	LinkTTL           time.Duration
	DeferredLinkTTL   time.Duration // a confirmed link waits this long for the second factor: the MFA token's lifetime
	MagicLinkTTL      time.Duration
	// ReauthWindow is how recent the caller's authentication (auth_time)
	// must be to link an identity, as for removing a second factor.
	ReauthWindow time.Duration
	// Cookie is the name of the cookie binding a flow to the browser.
	Cookie string
	// SecureCookie sets Secure on it (always true outside plain-http localhost).
	SecureCookie bool
	// Breaker opens after BreakerFailures provider outages in a row and
	// stays open for BreakerCooldown.
	BreakerFailures     int
	BreakerCooldown     time.Duration
	MagicLinkPerAddress ratelimit.Limit
	MagicLinkPerIP      ratelimit.Limit
}

// DefaultConfig returns the defaults.
func DefaultConfig(issuer, appURL string, allow []string) Config {
	return Config{
		Issuer: strings.TrimRight(issuer, "/"), AppURL: strings.TrimRight(appURL, "/"), RedirectAllowlist: allow,
		StateTTL: 10 * time.Minute, CodeTTL: 60 * time.Second, LinkTTL: 10 * time.Minute, DeferredLinkTTL: 5 * time.Minute, MagicLinkTTL: 15 * time.Minute,
		ReauthWindow: 5 * time.Minute, Cookie: "gatehouse_oauth", SecureCookie: strings.HasPrefix(issuer, "https://"),
		BreakerFailures: 5, BreakerCooldown: time.Minute,
		MagicLinkPerAddress: ratelimit.Limit{Rate: 5, Burst: 5, Period: time.Hour},
		MagicLinkPerIP:      ratelimit.Limit{Rate: 50, Burst: 50, Period: time.Hour},
	}
}

// Sessions starts sessions (with the MFA step where it applies).
type Sessions interface {
	Complete(ctx context.Context, userID, passwordStamp string, amr []string, m httpapi.Meta, r *store.SessionRisk) (session.Result, error)
	// SignInWith starts the session of a user proven by an external
	// identity or a magic link: scored, then refused, through a second
	// factor, or started.
	SignInWith(ctx context.Context, u store.User, amr []string, m httpapi.Meta) (session.Result, error)
	Login(ctx context.Context, email, pw string, m httpapi.Meta) (session.Result, error)
	RevokeUserSessionByID(ctx context.Context, userID, sessionID string) error
	// EndUserSessionsInTx ends every session of the user in tx and
	// deny-lists their access tokens once tx has committed.
	EndUserSessionsInTx(ctx context.Context, tx session.EndingTx, userID, reason string) ([]string, error)
}

// JobInserter enqueues jobs, alone or in a transaction.
type JobInserter interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error)
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// Deps are what social sign-in is built from (see New).
type Deps struct {
	Store     Store
	Providers *provider.Registry
	KV        kv.Store
	Limiter   ratelimit.Limiter
	Keys      *secret.Keyring
	Jobs      JobInserter
	Sessions  Sessions // asks the second factor where MFA applies
	Now       func() time.Time
	Log       *slog.Logger
	Config    Config
	Metrics   *prometheus.CounterVec // provider, outcome
}

// Service implements social sign-in. Build it with New; its dependencies
// are not changed afterwards.
type Service struct {
	Deps

	mu      sync.Mutex
	breaker map[string]*breakerState
}

// New checks d and builds the service. Now defaults to time.Now, Log to a
// logger that discards.
func New(d Deps) (*Service, error) {
	if err := require.Deps("social", map[string]bool{
		"Store": d.Store != nil, "Providers": d.Providers != nil, "KV": d.KV != nil, "Limiter": d.Limiter != nil,
		"Keys": d.Keys != nil, "Jobs": d.Jobs != nil, "Sessions": d.Sessions != nil, "Metrics": d.Metrics != nil,
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

func (s *Service) now() time.Time { return s.Now().UTC() }

func (s *Service) notice(ctx context.Context, tx Tx, u store.User, action, event string, m httpapi.Meta, data map[string]any) error {
	now := s.now()
	if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: now, ActorID: u.ID, SubjectID: u.ID, Action: action, IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: data,
	}); err != nil {
		return err
	}
	args, err := mail.NewSendArgs(s.Keys, mail.MFANotice, u.Email, mail.Data{RecipientName: u.Name, Event: event, Time: now, IP: m.IP, UserAgent: m.UserAgent}, "")
	if err != nil {
		return err
	}
	_, err = s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
	return err
}

func (s *Service) securityEvent(ctx context.Context, userID, action string, m httpapi.Meta, data map[string]any) {
	if err := s.Store.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: s.now(), SubjectID: userID, Action: action, IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: data,
	}); err != nil {
		s.Log.ErrorContext(ctx, "could not record a social sign-in event", "action", action, "error", err.Error())
	}
}

// take hands out the one-time value at key at most once, however many
// requests ask at the same moment (GetDel); a value already taken,
// expired or never made is gone.
func (s *Service) take(ctx context.Context, key string, gone error) ([]byte, error) {
	raw, err := s.KV.GetDel(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, gone
	}
	return raw, err
}
