package social

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/social/provider"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

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

func codeKey(code string) string { return "social:code:" + secret.HashToken(code) }

func linkKey(tok string) string { return "social:link:" + secret.HashToken(tok) }

func magicKey(tok string) string { return "social:magic:" + secret.HashToken(tok) }

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
	err = s.Store.InTx(ctx, func(tx Tx) error {
		var err error
		created, err = tx.CreateUser(ctx, store.User{
			Email: prof.Email, EmailNormalized: norm, EmailVerifiedAt: now, Name: prof.Name, GivenName: prof.GivenName,
			FamilyName: prof.FamilyName, Picture: httpsOnly(prof.AvatarURL), Status: store.UserActive,
		})
		if err != nil {
			return err
		}
		ident, err := tx.CreateIdentity(ctx, store.Identity{UserID: created.ID, Provider: p.ID(), Subject: prof.Subject, Email: prof.Email, LinkedAt: now})
		if err != nil {
			return err
		}
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
			OccurredAt: now, ActorID: created.ID, SubjectID: created.ID, Action: "user.registered",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: map[string]any{"email": created.Email, "provider": p.ID()},
		}); err != nil {
			return err
		}
		if err := tx.Publish(ctx, event.UserCreated{User: created, Via: event.CreatedBySocial, Provider: p.ID(), Meta: m}); err != nil {
			return err
		}
		return tx.Publish(ctx, event.IdentityLinked{UserID: created.ID, IdentityID: ident.ID, Provider: p.ID(), Meta: m})
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
	code, err := s.newExchangeCode(ctx, pendingSignIn{UserID: userID, AMR: []string{"fed", f.Provider}, Provider: f.Provider, Subject: subject, CodeChallenge: f.CodeChallenge})
	if err != nil {
		return Outcome{}, "", err
	}
	return Outcome{Params: url.Values{"code": {code}}}, outcome, nil
}

// newExchangeCode stores p under a new one-time code for Exchange.
func (s *Service) newExchangeCode(ctx context.Context, p pendingSignIn) (string, error) {
	code, err := secret.NewToken(32)
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(p)
	if err := s.KV.Set(ctx, codeKey(code), b, s.Config.CodeTTL); err != nil {
		return "", err
	}
	return code, nil
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
	// Scored like a password sign-in: refused, stepped up, or through MFA.
	return s.Sessions.SignInWith(ctx, u, amr, sm)
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
