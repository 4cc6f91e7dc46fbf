package passkey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Begun is a begun ceremony: the token that finishes it and the options
// the browser passes to navigator.credentials (create or get).
type Begun struct {
	Token   string
	Options json.RawMessage
}

// BeginRegistration begins registering a passkey for the caller (a
// recent authentication, or a login that must enrol a factor). The
// options prefer a discoverable credential and exclude the user's.
func (s *Service) BeginRegistration(ctx context.Context, p auth.Principal) (Begun, error) {
	if err := s.requireRecent(p); err != nil {
		return Begun{}, err
	}
	u, err := s.d.Store.GetUser(ctx, p.UserID)
	if err != nil {
		return Begun{}, err
	}
	have, err := s.d.Store.ListPasskeys(ctx, u.ID)
	if err != nil {
		return Begun{}, err
	}
	if len(have) >= maxPasskeys {
		return Begun{}, ErrTooMany
	}
	creation, sd, err := s.wa.BeginRegistration(waUser{u: u, creds: credentials(have)},
		webauthn.WithExclusions(descriptors(have)),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementPreferred),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementPreferred, UserVerification: s.uv,
		}),
	)
	if err != nil {
		return Begun{}, fmt.Errorf("passkey: begin registration: %w", err)
	}
	return s.begin(ctx, ceremony{Kind: kindRegister, UserID: u.ID, Session: *sd, Enroll: p.HasScope(ScopeEnroll)}, creation.Response)
}

func (s *Service) begin(ctx context.Context, c ceremony, options any) (Begun, error) {
	tok, err := secret.NewToken(32)
	if err != nil {
		return Begun{}, err
	}
	opts, err := json.Marshal(options)
	if err != nil {
		return Begun{}, err
	}
	if err := s.keep(ctx, ceremonyKey(tok), c); err != nil {
		return Begun{}, err
	}
	return Begun{Token: tok, Options: opts}, nil
}

// validName checks a passkey's name.
func validName(name string) error {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameLen || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return httpapi.Validation(httpapi.FieldError{Field: "name", Rule: "format", Message: fmt.Sprintf("At most %d printable characters.", maxNameLen)})
	}
	return nil
}

// FinishRegistration verifies the browser's answer to a registration
// ceremony tok and stores the passkey. The ceremony is spent whatever the
// outcome; it must be the caller's own.
func (s *Service) FinishRegistration(ctx context.Context, p auth.Principal, tok string, credential json.RawMessage, name string, m httpapi.Meta) (store.Passkey, error) {
	name = strings.TrimSpace(name)
	if err := validName(name); err != nil {
		return store.Passkey{}, err
	}
	if tok == "" || len(tok) > 256 {
		return store.Passkey{}, ErrInvalidCeremony
	}
	if len(credential) == 0 || len(credential) > maxCredentialLen {
		return store.Passkey{}, httpapi.Validation(httpapi.FieldError{Field: "credential", Rule: "required", Message: "The credential navigator.credentials.create returned (its toJSON())."})
	}
	c, err := s.take(ctx, ceremonyKey(tok), kindRegister)
	if err != nil {
		return store.Passkey{}, err
	}
	if c.UserID != p.UserID {
		return store.Passkey{}, ErrInvalidCeremony
	}
	if err := s.requireRecent(p); err != nil {
		return store.Passkey{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credential)
	if err != nil {
		s.d.Log.InfoContext(ctx, "passkey registration refused", "reason", reason(err))
		return store.Passkey{}, ErrInvalidPasskey
	}
	u, err := s.d.Store.GetUser(ctx, c.UserID)
	if err != nil {
		return store.Passkey{}, err
	}
	have, err := s.d.Store.ListPasskeys(ctx, u.ID)
	if err != nil {
		return store.Passkey{}, err
	}
	cred, err := s.wa.CreateCredential(waUser{u: u, creds: credentials(have)}, c.Session, parsed)
	if err != nil {
		s.d.Log.InfoContext(ctx, "passkey registration refused", "reason", reason(err))
		return store.Passkey{}, ErrInvalidPasskey
	}
	aaguid, _ := uuid.FromBytes(cred.Authenticator.AAGUID)
	if len(s.d.Config.AllowedAAGUIDs) > 0 && !contains(s.d.Config.AllowedAAGUIDs, aaguid) {
		return store.Passkey{}, ErrAuthenticatorNotAllowed
	}
	if name == "" {
		name = defaultName(aaguid, len(have)+1)
	}
	transports := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	if len(transports) == 0 {
		transports = nil
	}
	pk := store.Passkey{
		UserID: u.ID, CredentialID: cred.ID, PublicKey: cred.PublicKey, AttestationType: cred.AttestationType,
		AAGUID: aaguidBytes(cred.Authenticator.AAGUID), SignCount: cred.Authenticator.SignCount, Transports: transports,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState, UserVerified: cred.Flags.UserVerified,
		Name: name, CreatedAt: s.now(),
	}
	err = s.d.Store.InTx(ctx, func(tx Tx) error {
		if pk, err = tx.CreatePasskey(ctx, pk); err != nil {
			return err
		}
		if err := s.notice(ctx, tx, u, fmt.Sprintf("A passkey was added (%s)", pk.Name), "passkey.registered", viewData(pk), m); err != nil {
			return err
		}
		return tx.Publish(ctx, event.SecondFactorEnrolled{UserID: u.ID, Method: Method, DeviceID: pk.ID})
	})
	if errors.Is(err, store.ErrConflict) {
		return store.Passkey{}, ErrCredentialTaken
	}
	return pk, err
}

func contains(l []uuid.UUID, id uuid.UUID) bool {
	for _, x := range l {
		if x == id {
			return true
		}
	}
	return false
}

func aaguidBytes(b []byte) []byte {
	if len(b) == 16 {
		return b
	}
	return make([]byte, 16)
}

// reason is a short, loggable cause of a refused ceremony (never the
// credential itself).
func reason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Type + ": " + pe.Details
	}
	return err.Error()
}

// BeginLogin begins a passwordless sign-in. Without an email the options
// allow any discoverable credential (the browser offers its passkeys,
// conditional mediation included); with one, that account's passkeys — or,
// for an address without any, decoys that look alike.
func (s *Service) BeginLogin(ctx context.Context, email string) (Begun, error) {
	email = strings.TrimSpace(email)
	if len(email) > 320 {
		return Begun{}, httpapi.Validation(httpapi.FieldError{Field: "email", Rule: "format", Message: "Not an email address."})
	}
	if email == "" {
		assertion, sd, err := s.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(s.uv))
		if err != nil {
			return Begun{}, fmt.Errorf("passkey: begin sign-in: %w", err)
		}
		return s.begin(ctx, ceremony{Kind: kindLogin, Session: *sd}, assertion.Response)
	}
	u, err := s.d.Store.GetUserByEmail(ctx, normalizeEmail(email))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Begun{}, err
	}
	var have []store.Passkey
	if err == nil && u.Kind != store.UserKindService {
		all, err := s.d.Store.ListPasskeys(ctx, u.ID)
		if err != nil {
			return Begun{}, err
		}
		have = usable(all)
	}
	if len(have) == 0 {
		// Decoys in a session bound to nobody: nothing can finish it.
		assertion, sd, err := s.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(s.uv), webauthn.WithAllowedCredentials(s.decoyCredentials(email)))
		if err != nil {
			return Begun{}, fmt.Errorf("passkey: begin sign-in: %w", err)
		}
		return s.begin(ctx, ceremony{Kind: kindLogin, Session: *sd}, assertion.Response)
	}
	// A session bound to the account: its credentials need not be
	// discoverable (a security key registered without a resident key
	// answers without a user handle).
	assertion, sd, err := s.wa.BeginLogin(waUser{u: u, creds: credentials(have)}, webauthn.WithUserVerification(s.uv))
	if err != nil {
		return Begun{}, fmt.Errorf("passkey: begin sign-in: %w", err)
	}
	return s.begin(ctx, ceremony{Kind: kindLogin, UserID: u.ID, Session: *sd}, assertion.Response)
}

func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// FinishLogin verifies the answer to a sign-in ceremony and signs in: the
// credential names its user; the assertion is checked under that
// account's sign-in lockout, then scored like any sign-in
// (Sessions.SignInWithPasskey). An unknown credential, another
// ceremony's, a cloned one and a wrong signature all fail alike.
func (s *Service) FinishLogin(ctx context.Context, tok string, credential json.RawMessage, m httpapi.Meta) (session.Result, error) {
	if tok == "" || len(tok) > 256 {
		return session.Result{}, ErrInvalidCeremony
	}
	if len(credential) == 0 || len(credential) > maxCredentialLen {
		return session.Result{}, httpapi.Validation(httpapi.FieldError{Field: "credential", Rule: "required", Message: "The credential navigator.credentials.get returned (its toJSON())."})
	}
	c, err := s.take(ctx, ceremonyKey(tok), kindLogin)
	if err != nil {
		return session.Result{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		s.d.Log.InfoContext(ctx, "passkey sign-in refused", "reason", reason(err))
		return session.Result{}, ErrInvalidPasskey
	}
	pk, err := s.d.Store.GetPasskeyByCredentialID(ctx, parsed.RawID)
	if errors.Is(err, store.ErrNotFound) {
		s.d.Log.InfoContext(ctx, "passkey sign-in refused", "reason", "unknown credential")
		return session.Result{}, ErrInvalidPasskey
	}
	if err != nil {
		return session.Result{}, err
	}
	if c.UserID != "" && c.UserID != pk.UserID {
		// A ceremony begun for one account answered with another's
		// passkey.
		s.d.Log.InfoContext(ctx, "passkey sign-in refused", "reason", "credential of another account")
		return session.Result{}, ErrInvalidPasskey
	}
	u, err := s.d.Store.GetUser(ctx, pk.UserID)
	if err != nil {
		return session.Result{}, err
	}
	all, err := s.d.Store.ListPasskeys(ctx, u.ID)
	if err != nil {
		return session.Result{}, err
	}
	res, err := s.d.Sessions.SignInWithPasskey(ctx, u, func() ([]string, bool, error) {
		return s.verify(ctx, u, usable(all), c.Session, parsed, m)
	}, m)
	if errors.Is(err, session.ErrInvalidCredentials) {
		return session.Result{}, ErrInvalidPasskey
	}
	return res, err
}

// verify checks parsed, an answer to the ceremony sd, against the
// passkeys allowed (the user's usable ones, or fewer), and records its
// use. ok is false for anything that does not verify; a sign count that
// went backwards also flags the credential, tells the user and records a
// security event.
func (s *Service) verify(ctx context.Context, u store.User, allowed []store.Passkey, sd webauthn.SessionData, parsed *protocol.ParsedCredentialAssertionData, m httpapi.Meta) (amr []string, ok bool, err error) {
	var pk store.Passkey
	found := false
	for _, p := range allowed {
		if string(p.CredentialID) == string(parsed.RawID) {
			pk, found = p, true
			break
		}
	}
	if !found || !pk.ClonedAt.IsZero() || u.Kind == store.UserKindService {
		s.d.Log.InfoContext(ctx, "passkey assertion refused", "reason", "credential not allowed here")
		return nil, false, nil
	}
	// The user as the ceremony knew them: every credential it may have
	// allowed (go-webauthn checks the session's allow list against them).
	user := waUser{u: u, creds: credentials(allowed)}
	var cred *webauthn.Credential
	if len(sd.UserID) == 0 {
		_, cred, err = s.wa.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			return user, nil
		}, sd, parsed)
	} else {
		cred, err = s.wa.ValidateLogin(user, sd, parsed)
	}
	if err != nil {
		s.d.Log.InfoContext(ctx, "passkey assertion refused", "passkey_id", pk.ID, "reason", reason(err))
		return nil, false, nil
	}
	if cred.Authenticator.CloneWarning {
		if err := s.cloned(ctx, u, pk, parsed.Response.AuthenticatorData.Counter, m); err != nil {
			return nil, false, err
		}
		return nil, false, nil
	}
	flags := parsed.Response.AuthenticatorData.Flags
	used, err := s.d.Store.UsePasskey(ctx, pk.ID, pk.SignCount, cred.Authenticator.SignCount, flags.HasBackupState(), s.now())
	if err != nil {
		return nil, false, err
	}
	if !used {
		// Another assertion counted from the same value won: this one is
		// as good as a replay.
		s.d.Log.InfoContext(ctx, "passkey assertion refused", "passkey_id", pk.ID, "reason", "sign count raced")
		return nil, false, nil
	}
	return AMR(pk, flags.HasUserVerified()), true, nil
}

// cloned flags pk as possibly cloned (its sign count went backwards to
// counter), once: the user is emailed and event.PasskeyCloned published
// (the security event).
func (s *Service) cloned(ctx context.Context, u store.User, pk store.Passkey, counter uint32, m httpapi.Meta) error {
	return s.d.Store.InTx(ctx, func(tx Tx) error {
		flagged, set, err := tx.FlagPasskeyCloned(ctx, pk.ID, s.now())
		if err != nil || !set {
			return err
		}
		s.d.Log.WarnContext(ctx, "passkey sign count went backwards: flagged as possibly cloned", "passkey_id", pk.ID, "user_id", u.ID)
		what := fmt.Sprintf("Your passkey %q was refused: its signature counter went backwards, so it may have been copied. It can no longer be used; remove it and register a new one", pk.Name)
		data := viewData(flagged)
		data["stored_sign_count"], data["presented_sign_count"] = pk.SignCount, counter
		if err := s.notice(ctx, tx, u, what, "passkey.cloned", data, m); err != nil {
			return err
		}
		return tx.Publish(ctx, event.PasskeyCloned{UserID: u.ID, PasskeyID: pk.ID, Name: pk.Name, StoredCount: pk.SignCount, PresentedCount: counter, Meta: m})
	})
}

// AssertionOptions begins an assertion bound to bind (a pending login's
// mfa_token, a session being reauthenticated) over the passkeys allowed,
// and returns the options for navigator.credentials.get. A new one
// replaces the last one of the same bind.
func (s *Service) AssertionOptions(ctx context.Context, u store.User, allowed []store.Passkey, bind string) (json.RawMessage, error) {
	allowed = usable(allowed)
	if len(allowed) == 0 {
		return nil, ErrInvalidPasskey
	}
	assertion, sd, err := s.wa.BeginLogin(waUser{u: u, creds: credentials(allowed)}, webauthn.WithUserVerification(s.uv))
	if err != nil {
		return nil, fmt.Errorf("passkey: begin assertion: %w", err)
	}
	if err := s.keep(ctx, boundKey(bind), ceremony{Kind: kindBound, UserID: u.ID, Bind: bind, Session: *sd}); err != nil {
		return nil, err
	}
	return json.Marshal(assertion.Response)
}

// VerifyAssertion verifies credential, the answer to the assertion bound
// to bind, over the passkeys allowed. The ceremony is spent whatever the
// outcome. ok false: it did not verify (begin again).
func (s *Service) VerifyAssertion(ctx context.Context, u store.User, allowed []store.Passkey, bind string, credential json.RawMessage, m httpapi.Meta) (amr []string, ok bool, err error) {
	if len(credential) == 0 || len(credential) > maxCredentialLen {
		return nil, false, nil
	}
	c, err := s.take(ctx, boundKey(bind), kindBound)
	if errors.Is(err, ErrInvalidCeremony) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if c.UserID != u.ID || c.Bind != bind {
		return nil, false, nil
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		s.d.Log.InfoContext(ctx, "passkey assertion refused", "reason", reason(err))
		return nil, false, nil
	}
	return s.verify(ctx, u, allowed, c.Session, parsed, m)
}
