// Package social is sign-in with external accounts (Google, GitHub,
// Microsoft, any OpenID Connect provider): the browser flow with state,
// PKCE and nonce, sign-up, linking without account takeover, the
// application-side code exchange (tokens never travel in URLs), identity
// management, error normalisation with a circuit breaker, and email
// magic-link sign-in as the fallback.
package social

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/social/provider"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
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
		httpapi.MapError(ErrLastSignInMethod, http.StatusConflict, "last_sign_in_method", "This is the account's last way to sign in; add a password or another identity first."),
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
	Complete(ctx context.Context, userID, passwordStamp string, amr []string, m httpapi.Meta) (session.Result, error)
	Login(ctx context.Context, email, pw string, m httpapi.Meta) (session.Result, error)
	RevokeUserSessionByID(ctx context.Context, userID, sessionID string) error
	// RevokeSessionTokens puts the access tokens of an ended session on
	// the deny list.
	RevokeSessionTokens(ctx context.Context, sessionID string) error
}

// SecondFactor is asked before a session starts (MFA still applies).
type SecondFactor interface {
	Begin(ctx context.Context, u store.User, amr []string, m httpapi.Meta) (*session.Challenge, error)
}

// JobInserter enqueues jobs, alone or in a transaction.
type JobInserter interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error)
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// Service implements social sign-in.
type Service struct {
	Store     store.Store
	Providers *provider.Registry
	KV        kv.Store
	Limiter   ratelimit.Limiter
	Keys      *secret.Keyring
	Jobs      JobInserter
	Sessions  Sessions
	MFA       SecondFactor // may be nil
	Now       func() time.Time
	Log       *slog.Logger
	Config    Config
	Metrics   *prometheus.CounterVec // provider, outcome

	mu      sync.Mutex
	breaker map[string]*breakerState
}

type breakerState struct {
	failures  int
	openUntil time.Time
}

func (s *Service) now() time.Time { return s.Now().UTC() }

func (s *Service) count(providerID, outcome string) {
	if s.Metrics != nil {
		s.Metrics.WithLabelValues(providerID, outcome).Inc()
	}
}

// NewMetrics registers the per-provider outcome counter.
func NewMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_social_logins_total",
		Help: "Social sign-in callbacks by provider and outcome (signed_in, signed_up, linked, link_required, or an error code).",
	}, []string{"provider", "outcome"})
	reg.MustRegister(c)
	return c
}

// open reports whether the provider's circuit breaker is open.
func (s *Service) open(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.breaker[id]
	return b != nil && s.now().Before(b.openUntil)
}

// record updates the breaker with the outcome of a provider call.
func (s *Service) record(id string, unavailable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.breaker == nil {
		s.breaker = map[string]*breakerState{}
	}
	b := s.breaker[id]
	if b == nil {
		b = &breakerState{}
		s.breaker[id] = b
	}
	if !unavailable {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= s.Config.BreakerFailures {
		b.openUntil = s.now().Add(s.Config.BreakerCooldown)
		b.failures = 0
	}
}

// flow is a sign-in attempt between start and callback.
type flow struct {
	Provider   string `json:"provider"`
	Verifier   string `json:"verifier"`
	Nonce      string `json:"nonce"`
	RedirectTo string `json:"redirect_to"`
	Browser    string `json:"browser"`             // hash of the binding cookie
	LinkUserID string `json:"link_user,omitempty"` // linking from a signed-in session
	// CodeChallenge is the application's optional S256 challenge: the
	// one-time code is then exchanged only with its verifier.
	CodeChallenge string `json:"code_challenge,omitempty"`
}

func stateKey(state string) string { return "social:state:" + secret.HashToken(state) }
func codeKey(code string) string   { return "social:code:" + secret.HashToken(code) }
func linkKey(tok string) string    { return "social:link:" + secret.HashToken(tok) }
func magicKey(tok string) string   { return "social:magic:" + secret.HashToken(tok) }

// deferredLinkKey names a confirmed link waiting for the second factor,
// keyed by the login's mfa_token or enrollment_token.
func deferredLinkKey(pendingToken string) string {
	return "social:deferred-link:" + secret.HashToken(pendingToken)
}

func (s *Service) callbackURL(id string) string {
	return s.Config.Issuer + "/v1/auth/oauth/" + id + "/callback"
}

func (s *Service) allowedRedirect(u string) bool {
	return u != "" && slices.Contains(s.Config.RedirectAllowlist, u)
}

// unavailableProblem is the 503 of an open circuit, naming the fallbacks.
func unavailableProblem(id string) error {
	p := httpapi.NewProblem(http.StatusServiceUnavailable, "provider_unavailable",
		"Sign-in with "+id+" is failing right now. Use your password or an email sign-in link (POST /v1/auth/magic-link) instead.")
	p.RetryAfter = 60
	return p
}

// StartLink begins a flow that links the provider to the signed-in
// caller. A linked identity is a lasting way in, so it needs an
// authentication within Config.ReauthWindow (auth_time), not merely a
// valid access token, which may have been stolen.
func (s *Service) StartLink(ctx context.Context, p auth.Principal, id, redirectTo string) (authURL, browser string, err error) {
	if p.UserID == "" || p.AuthTime.IsZero() || s.now().Sub(p.AuthTime) > s.Config.ReauthWindow {
		return "", "", auth.ErrReauthRequired
	}
	return s.Start(ctx, id, redirectTo, "", p.UserID)
}

// Start begins a flow: it stores the state server-side (single use, bound
// to the browser by the returned cookie value) and returns the provider's
// authorisation URL. redirect_to must be on the allowlist; only a link
// from a signed-in session may leave it out (the callback then goes to
// Config.AppURL). codeChallenge, optional, is the application's S256
// challenge (RFC 7636): the one-time code the callback hands out can then
// be exchanged only with its verifier, so a code an attacker obtained for
// their own sign-in cannot be planted in another browser's application
// (login CSRF) by an application that uses one.
func (s *Service) Start(ctx context.Context, id, redirectTo, codeChallenge, linkUserID string) (authURL, browser string, err error) {
	p, ok := s.Providers.Get(id)
	if !ok {
		return "", "", ErrUnknownProvider
	}
	if (linkUserID == "" || redirectTo != "") && !s.allowedRedirect(redirectTo) {
		return "", "", ErrRedirectNotAllowed
	}
	if err := CheckCodeChallenge(codeChallenge, ""); err != nil {
		return "", "", err
	}
	if s.open(id) {
		return "", "", unavailableProblem(id)
	}
	state, err := secret.NewToken(32)
	if err != nil {
		return "", "", err
	}
	nonce, err := secret.NewToken(32)
	if err != nil {
		return "", "", err
	}
	if browser, err = secret.NewToken(32); err != nil {
		return "", "", err
	}
	f := flow{Provider: id, Verifier: oauth2.GenerateVerifier(), Nonce: nonce, RedirectTo: redirectTo, Browser: secret.HashToken(browser), LinkUserID: linkUserID, CodeChallenge: codeChallenge}
	b, _ := json.Marshal(f)
	if err := s.KV.Set(ctx, stateKey(state), b, s.Config.StateTTL); err != nil {
		return "", "", err
	}
	return p.AuthCodeURL(state, f.Verifier, nonce, s.callbackURL(id)), browser, nil
}

// CheckCodeChallenge accepts an absent challenge (with no method) or an
// S256 one: 43 base64url characters, the encoding of a SHA-256 digest,
// with method S256 or none (the only method offered). The plain method is
// refused: it would put the verifier itself in the browser's URL.
func CheckCodeChallenge(challenge, method string) error {
	if challenge == "" {
		if method != "" {
			return ErrInvalidChallenge
		}
		return nil
	}
	if method != "" && method != "S256" {
		return ErrInvalidChallenge
	}
	if b, err := base64.RawURLEncoding.DecodeString(challenge); err != nil || len(b) != sha256.Size || len(challenge) != 43 {
		return ErrInvalidChallenge
	}
	return nil
}

// verifierMatches reports whether verifier (RFC 7636: 43 to 128 of
// A-Z a-z 0-9 - . _ ~) is the one whose S256 challenge is challenge.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, r := range verifier {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' || r == '~') {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return secret.Equal(base64.RawURLEncoding.EncodeToString(sum[:]), challenge)
}

// Outcome is where the callback sends the browser.
type Outcome struct {
	RedirectTo string
	Params     url.Values
}

// URL renders the outcome.
func (o Outcome) URL() string {
	u, err := url.Parse(o.RedirectTo)
	if err != nil {
		return o.RedirectTo
	}
	q := u.Query()
	for k, v := range o.Params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// pendingSignIn is what a one-time exchange code stands for.
type pendingSignIn struct {
	UserID string   `json:"user_id"`
	AMR    []string `json:"amr"`
	// Provider and Subject name the identity that signed in: the code is
	// void if that identity is no longer the user's when it is exchanged.
	Provider string `json:"provider,omitempty"`
	Subject  string `json:"subject,omitempty"`
	// CodeChallenge is the flow's S256 challenge, if the start had one.
	CodeChallenge string `json:"code_challenge,omitempty"`
}

// pendingLink is a link waiting for the user to prove the account.
type pendingLink struct {
	Provider string `json:"provider"`
	Subject  string `json:"subject"`
	// Email is the provider's address. In the ephemeral store it is
	// sealed (SealedEmail, see encodeLink), so the store holds no address;
	// values stored before carry it in the clear.
	Email       string `json:"email,omitempty"`
	SealedEmail string `json:"sealed_email,omitempty"`
	UserID      string `json:"user_id"`
}

// linkEmailAD binds a sealed address to pending links.
var linkEmailAD = []byte("gatehouse/social.pending_link/email")

// encodeLink is the stored form of pl: its address sealed.
func (s *Service) encodeLink(pl pendingLink) ([]byte, error) {
	if pl.Email != "" {
		sealed, err := s.Keys.Seal([]byte(pl.Email), linkEmailAD)
		if err != nil {
			return nil, fmt.Errorf("social: seal a pending link's address: %w", err)
		}
		pl.Email, pl.SealedEmail = "", sealed
	}
	return json.Marshal(pl)
}

// decodeLink reads a stored pending link, its address opened.
func (s *Service) decodeLink(raw []byte) (pendingLink, error) {
	var pl pendingLink
	if err := json.Unmarshal(raw, &pl); err != nil {
		return pendingLink{}, err
	}
	if pl.SealedEmail != "" {
		email, err := s.Keys.Open(pl.SealedEmail, linkEmailAD)
		if err != nil {
			return pendingLink{}, fmt.Errorf("social: open a pending link's address: %w", err)
		}
		pl.Email, pl.SealedEmail = string(email), ""
	}
	return pl, nil
}

// Callback finishes a flow. Errors before the state is validated are
// returned (the browser cannot be sent anywhere safe); later ones become
// error parameters on redirect_to.
func (s *Service) Callback(ctx context.Context, id string, q url.Values, browser string, m httpapi.Meta) (Outcome, error) {
	state := q.Get("state")
	if state == "" || len(state) > 256 {
		return Outcome{}, ErrInvalidState
	}
	raw, err := s.take(ctx, stateKey(state), ErrInvalidState)
	if err != nil {
		return Outcome{}, err
	}
	var f flow
	if err := json.Unmarshal(raw, &f); err != nil || f.Provider != id || browser == "" || !secret.Equal(f.Browser, secret.HashToken(browser)) {
		s.securityEvent(ctx, "", "social.state_rejected", m, map[string]any{"provider": id})
		return Outcome{}, ErrInvalidState
	}
	p, ok := s.Providers.Get(id)
	if !ok {
		return Outcome{}, ErrUnknownProvider
	}
	redirect := f.RedirectTo
	if redirect == "" {
		redirect = s.Config.AppURL
	}
	fail := func(err error) (Outcome, error) {
		code, desc := "provider_error", "Sign-in with the provider failed."
		var pe *provider.Error
		if errors.As(err, &pe) {
			code, desc = pe.Code, pe.Description
		}
		s.record(id, provider.IsUnavailable(err))
		s.count(id, code)
		s.securityEvent(ctx, f.LinkUserID, "social.error", m, map[string]any{"provider": id, "reason": code})
		return Outcome{RedirectTo: redirect, Params: url.Values{"error": {code}, "error_description": {desc}}}, nil
	}
	if e := q.Get("error"); e != "" {
		return fail(provider.FromCallbackError(e, q.Get("error_description")))
	}
	code := q.Get("code")
	if code == "" {
		return fail(&provider.Error{Code: "invalid_request", Description: "The provider sent no code."})
	}
	prof, err := p.Exchange(ctx, code, f.Verifier, f.Nonce, s.callbackURL(id))
	if err != nil {
		return fail(err)
	}
	s.record(id, false)
	out, outcome, err := s.resolve(ctx, p, prof, f, m)
	if err != nil {
		return Outcome{}, err
	}
	if out.RedirectTo == "" {
		out.RedirectTo = redirect
	}
	s.count(id, outcome)
	return out, nil
}

// resolve signs in, signs up or links the profile.
func (s *Service) resolve(ctx context.Context, p provider.Provider, prof provider.Profile, f flow, m httpapi.Meta) (Outcome, string, error) {
	errOut := func(code, desc string) (Outcome, string, error) {
		return Outcome{Params: url.Values{"error": {code}, "error_description": {desc}}}, code, nil
	}
	now := s.now()
	existing, err := s.Store.GetIdentity(ctx, p.ID(), prof.Subject)
	switch {
	case err == nil && f.LinkUserID != "":
		if existing.UserID != f.LinkUserID {
			return errOut("identity_in_use", "This external account is linked to another account.")
		}
		return Outcome{Params: url.Values{"linked": {p.ID()}}}, "linked", nil
	case err == nil:
		return s.signedIn(ctx, f, existing.UserID, prof.Subject, "signed_in")
	case !errors.Is(err, store.ErrNotFound):
		return Outcome{}, "", err
	}
	if f.LinkUserID != "" {
		if err := s.link(ctx, f.LinkUserID, p.ID(), prof, m); err != nil {
			if errors.Is(err, ErrIdentityInUse) {
				return errOut("identity_in_use", "This external account is linked to another account.")
			}
			return Outcome{}, "", err
		}
		return Outcome{Params: url.Values{"linked": {p.ID()}}}, "linked", nil
	}
	if prof.Email == "" || !prof.EmailVerified {
		// Never link, and never create an account, on an unverified email.
		return errOut("email_not_verified", "The provider did not give a verified email address.")
	}
	norm := user.NormalizeEmail(prof.Email)
	u, err := s.Store.GetUserByEmail(ctx, norm)
	switch {
	case err == nil:
		if p.AutoLink() {
			if err := s.autoLink(ctx, u.ID, p.ID(), prof, m); err != nil {
				return Outcome{}, "", err
			}
			return s.signedIn(ctx, f, u.ID, prof.Subject, "linked")
		}
		tok, err := secret.NewToken(32)
		if err != nil {
			return Outcome{}, "", err
		}
		b, err := s.encodeLink(pendingLink{Provider: p.ID(), Subject: prof.Subject, Email: prof.Email, UserID: u.ID})
		if err != nil {
			return Outcome{}, "", err
		}
		if err := s.KV.Set(ctx, linkKey(tok), b, s.Config.LinkTTL); err != nil {
			return Outcome{}, "", err
		}
		return Outcome{Params: url.Values{"error": {"account_exists"}, "error_description": {"An account with this email exists; sign in to it to link."}, "link_token": {tok}}}, "link_required", nil
	case !errors.Is(err, store.ErrNotFound):
		return Outcome{}, "", err
	}
	// Sign-up: a verified account without a password, with the identity.
	var created store.User
	err = s.Store.InTx(ctx, func(tx store.Store) error {
		var err error
		created, err = tx.CreateUser(ctx, store.User{
			Email: prof.Email, EmailNormalized: norm, EmailVerifiedAt: now, Name: prof.Name, GivenName: prof.GivenName,
			FamilyName: prof.FamilyName, Picture: httpsOnly(prof.AvatarURL), Status: store.UserActive,
		})
		if err != nil {
			return err
		}
		if _, err := tx.CreateIdentity(ctx, store.Identity{UserID: created.ID, Provider: p.ID(), Subject: prof.Subject, Email: prof.Email, LinkedAt: now}); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, store.AuditEvent{
			OccurredAt: now, ActorID: created.ID, SubjectID: created.ID, Action: "user.registered",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: map[string]any{"email": created.Email, "provider": p.ID()},
		})
	})
	if errors.Is(err, store.ErrConflict) {
		return errOut("account_exists", "An account with this email was created meanwhile; sign in to it to link.")
	}
	if err != nil {
		return Outcome{}, "", err
	}
	return s.signedIn(ctx, f, created.ID, prof.Subject, "signed_up")
}

func httpsOnly(u string) string {
	if strings.HasPrefix(u, "https://") && len(u) <= 2048 {
		return u
	}
	return ""
}

// signedIn hands out a one-time code the application exchanges for tokens.
func (s *Service) signedIn(ctx context.Context, f flow, userID, subject, outcome string) (Outcome, string, error) {
	code, err := secret.NewToken(32)
	if err != nil {
		return Outcome{}, "", err
	}
	b, _ := json.Marshal(pendingSignIn{UserID: userID, AMR: []string{"fed", f.Provider}, Provider: f.Provider, Subject: subject, CodeChallenge: f.CodeChallenge})
	if err := s.KV.Set(ctx, codeKey(code), b, s.Config.CodeTTL); err != nil {
		return Outcome{}, "", err
	}
	return Outcome{Params: url.Values{"code": {code}}}, outcome, nil
}

// link records an identity for a user, with an event and a notice.
func (s *Service) link(ctx context.Context, userID, providerID string, prof provider.Profile, m httpapi.Meta) error {
	return s.Store.InTx(ctx, func(tx store.Store) error {
		u, err := tx.GetUser(ctx, userID)
		if err != nil {
			return err
		}
		return s.createIdentity(ctx, tx, u, providerID, prof, m)
	})
}

// autoLink links an identity whose verified email, from a provider trusted
// for linking, is the account's address. That email proves the mailbox;
// if the account's address was never verified, the account may be a
// pre-registration by someone else, and what was set up on it is cleared
// first (claimUnverified), as when a magic link proves the address.
func (s *Service) autoLink(ctx context.Context, userID, providerID string, prof provider.Profile, m httpapi.Meta) error {
	var ended []string
	err := s.Store.InTx(ctx, func(tx store.Store) error {
		u, err := tx.GetUserForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		if u.EmailVerifiedAt.IsZero() {
			if user.NormalizeEmail(prof.Email) != u.EmailNormalized {
				return errors.New("social: auto-link to an account of another address")
			}
			if u, ended, err = s.claimUnverified(ctx, tx, u, viaProvider, providerID, m); err != nil {
				return err
			}
		}
		return s.createIdentity(ctx, tx, u, providerID, prof, m)
	})
	if err != nil {
		return err
	}
	s.endSessions(ctx, ended)
	return nil
}

func (s *Service) createIdentity(ctx context.Context, tx store.Store, u store.User, providerID string, prof provider.Profile, m httpapi.Meta) error {
	if _, err := tx.CreateIdentity(ctx, store.Identity{UserID: u.ID, Provider: providerID, Subject: prof.Subject, Email: prof.Email, LinkedAt: s.now()}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return ErrIdentityInUse
		}
		return err
	}
	return s.notice(ctx, tx, u, "identity.linked", fmt.Sprintf("Your %s account was linked for signing in", providerID), m, map[string]any{"provider": providerID})
}

func (s *Service) notice(ctx context.Context, tx store.Store, u store.User, action, event string, m httpapi.Meta, data map[string]any) error {
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

// begin starts the session for a user proven by a provider or a magic
// link, through the MFA step when it applies.
func (s *Service) begin(ctx context.Context, userID string, amr []string, sm httpapi.Meta) (session.Result, error) {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return session.Result{}, err
	}
	if u.Status == store.UserDisabled {
		return session.Result{}, session.ErrAccountDisabled
	}
	if s.MFA != nil {
		ch, err := s.MFA.Begin(ctx, u, amr, sm)
		if err != nil {
			return session.Result{}, err
		}
		if ch != nil {
			return session.Result{Challenge: ch, User: u}, nil
		}
	}
	return s.Sessions.Complete(ctx, u.ID, "", amr, sm)
}

// Exchange trades a callback's one-time code for the sign-in result. A
// code whose flow started with a code_challenge needs its verifier; one
// whose flow did not is refused with a verifier (so that a challenge
// stripped from the start is noticed by an application that sends one).
// Either way a failed exchange has used the code up.
func (s *Service) Exchange(ctx context.Context, code, verifier string, sm httpapi.Meta) (session.Result, error) {
	if code == "" || len(code) > 256 {
		return session.Result{}, ErrInvalidCode
	}
	raw, err := s.take(ctx, codeKey(code), ErrInvalidCode)
	if err != nil {
		return session.Result{}, err
	}
	var p pendingSignIn
	if err := json.Unmarshal(raw, &p); err != nil {
		return session.Result{}, ErrInvalidCode
	}
	if (p.CodeChallenge != "" && !verifierMatches(verifier, p.CodeChallenge)) || (p.CodeChallenge == "" && verifier != "") {
		return session.Result{}, ErrInvalidCode
	}
	// An identity removed meanwhile (unlinked, or cleared with a
	// pre-registered account) no longer signs in.
	if p.Provider != "" {
		id, err := s.Store.GetIdentity(ctx, p.Provider, p.Subject)
		if errors.Is(err, store.ErrNotFound) || (err == nil && id.UserID != p.UserID) {
			return session.Result{}, ErrInvalidCode
		}
		if err != nil {
			return session.Result{}, err
		}
	}
	return s.begin(ctx, p.UserID, p.AMR, sm)
}

// ConfirmLink completes a link by proving the existing account with its
// password (answered like a login; lockout and MFA apply). When the login
// needs a second factor or a forced enrolment, the link waits for it: it is
// kept under the challenge's token and made by CompleteDeferredLink once
// that login has fully succeeded, never on the password alone.
func (s *Service) ConfirmLink(ctx context.Context, tok, pw string, sm httpapi.Meta, m httpapi.Meta) (session.Result, error) {
	if tok == "" || len(tok) > 256 {
		return session.Result{}, ErrInvalidCode
	}
	raw, err := s.KV.Get(ctx, linkKey(tok))
	if errors.Is(err, kv.ErrNotFound) {
		return session.Result{}, ErrInvalidCode
	}
	if err != nil {
		return session.Result{}, err
	}
	pl, err := s.decodeLink(raw)
	if err != nil {
		return session.Result{}, ErrInvalidCode
	}
	u, err := s.Store.GetUser(ctx, pl.UserID)
	if err != nil {
		return session.Result{}, ErrInvalidCode
	}
	res, err := s.Sessions.Login(ctx, u.Email, pw, sm)
	if err != nil {
		return session.Result{}, err
	}
	// The link token is single use: of parallel confirmations only the one
	// that consumes it keeps its session.
	if _, err := s.KV.GetDel(ctx, linkKey(tok)); err != nil {
		if res.Session.ID != "" {
			if rerr := s.Sessions.RevokeUserSessionByID(ctx, u.ID, res.Session.ID); rerr != nil {
				s.Log.ErrorContext(ctx, "could not end the session of a raced link confirmation", "error", rerr.Error())
			}
		}
		if errors.Is(err, kv.ErrNotFound) {
			return session.Result{}, ErrInvalidCode
		}
		return session.Result{}, err
	}
	if res.Challenge != nil {
		if err := s.deferLink(ctx, res.Challenge, pl); err != nil {
			return session.Result{}, err
		}
		return res, nil
	}
	if err := s.link(ctx, u.ID, pl.Provider, provider.Profile{Subject: pl.Subject, Email: pl.Email}, m); err != nil && !errors.Is(err, ErrIdentityInUse) {
		return session.Result{}, err
	}
	return res, nil
}

// deferLink keeps a confirmed link until the login's second factor (or
// forced enrolment) succeeds, for as long as the challenge's token lives.
func (s *Service) deferLink(ctx context.Context, ch *session.Challenge, pl pendingLink) error {
	tok := ch.MFAToken
	if tok == "" {
		tok = ch.EnrollmentToken
	}
	if tok == "" {
		return errors.New("social: a login challenge without a token")
	}
	b, err := s.encodeLink(pl)
	if err != nil {
		return err
	}
	return s.KV.Set(ctx, deferredLinkKey(tok), b, s.Config.DeferredLinkTTL)
}

// CompleteDeferredLink makes the link ConfirmLink deferred to the second
// factor. It is MFA's hook (mfa.Service.AfterSecondFactor), called with
// the consumed mfa_token or enrollment_token once the login it belongs to
// has fully succeeded. The link is taken once; a token that deferred none
// is nothing to do. An identity linked meanwhile is left as it is, as in
// ConfirmLink.
func (s *Service) CompleteDeferredLink(ctx context.Context, pendingToken, userID string, sm httpapi.Meta) error {
	raw, err := s.KV.GetDel(ctx, deferredLinkKey(pendingToken))
	if errors.Is(err, kv.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("social: deferred link: %w", err)
	}
	pl, err := s.decodeLink(raw)
	if err != nil {
		return fmt.Errorf("social: deferred link: %w", err)
	}
	if pl.UserID != userID {
		return errors.New("social: deferred link: the login is of another user")
	}
	m := sm
	if err := s.link(ctx, userID, pl.Provider, provider.Profile{Subject: pl.Subject, Email: pl.Email}, m); err != nil && !errors.Is(err, ErrIdentityInUse) {
		return fmt.Errorf("social: deferred link: %w", err)
	}
	return nil
}

// Identities lists the user's linked identities.
func (s *Service) Identities(ctx context.Context, userID string) ([]store.Identity, error) {
	return s.Store.ListIdentities(ctx, userID)
}

// Unlink removes an identity unless it is the last way to sign in.
func (s *Service) Unlink(ctx context.Context, userID, id string, m httpapi.Meta) error {
	return s.Store.InTx(ctx, func(tx store.Store) error {
		u, err := tx.GetUserForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		ids, err := tx.ListIdentities(ctx, userID)
		if err != nil {
			return err
		}
		var target *store.Identity
		for i := range ids {
			if ids[i].ID == id {
				target = &ids[i]
			}
		}
		if target == nil {
			return store.ErrNotFound
		}
		if u.PasswordHash == "" && len(ids) == 1 {
			return ErrLastSignInMethod
		}
		if err := tx.DeleteIdentity(ctx, userID, id); err != nil {
			return err
		}
		return s.notice(ctx, tx, u, "identity.unlinked", fmt.Sprintf("Your %s account was unlinked", target.Provider), m, map[string]any{"provider": target.Provider})
	})
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
