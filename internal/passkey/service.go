// Package passkey is WebAuthn for Gatehouse (go-webauthn/webauthn):
// registering passkeys, signing in with one instead of a password,
// passing one as a second factor or a recent authentication, and managing
// them.
//
// Every ceremony is begun by the server, which keeps its state (the
// challenge, the user, the allowed credentials) in the key-value store
// under a random token for CeremonyTTL: the client gets the token and the
// options for navigator.credentials, and finishing takes the state once
// (GetDel), so a challenge is answered at most once, whoever answers
// first. Origins and the RP ID are checked by go-webauthn against the
// configuration; a sign count that goes backwards flags the credential as
// possibly cloned and refuses it from then on.
package passkey

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
)

// CeremonyTTL is how long a begun ceremony can be finished.
const CeremonyTTL = 5 * time.Minute

// Method is the MFA method name of passkeys.
const Method = "webauthn"

// Limits of what a client may send.
const (
	maxNameLen       = 100
	maxCredentialLen = 64 << 10
	maxPasskeys      = 50
)

// Errors of the service; see Errors for how they answer.
var (
	// ErrInvalidCeremony is a ceremony token that is unknown, used or
	// expired, or one of another kind.
	ErrInvalidCeremony = errors.New("passkey: unknown or expired ceremony")
	// ErrInvalidPasskey is an assertion or attestation that did not
	// verify, whatever the reason (an unknown credential, another user's,
	// a wrong signature, origin or RP ID, a cloned one): the same answer.
	ErrInvalidPasskey = errors.New("passkey: the passkey could not be verified")
	// ErrCredentialTaken is a registration of a credential registered
	// already (to this account or another).
	ErrCredentialTaken = errors.New("passkey: credential registered already")
	// ErrAuthenticatorNotAllowed is an authenticator whose AAGUID is not
	// in the allowlist.
	ErrAuthenticatorNotAllowed = errors.New("passkey: authenticator not allowed")
	// ErrLastSignInMethod is the removal of the account's last way to
	// sign in.
	ErrLastSignInMethod = errors.New("passkey: last sign-in method")
	// ErrTooMany is a registration beyond maxPasskeys.
	ErrTooMany = errors.New("passkey: too many passkeys")
	// ErrDisabled answers every passkey route of a server without a
	// relying party (an issuer whose host is an IP address, no
	// GATEHOUSE_WEBAUTHN_RP_ID).
	ErrDisabled = errors.New("passkey: passkeys are off")
)

// Errors is how this package's errors answer.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrInvalidCeremony, http.StatusBadRequest, "invalid_passkey_token", "The passkey ceremony is unknown, used or expired; begin again."),
		httpapi.MapError(ErrInvalidPasskey, http.StatusUnauthorized, "invalid_passkey", "The passkey could not be verified."),
		httpapi.MapError(ErrCredentialTaken, http.StatusConflict, "passkey_exists", "This passkey is registered already."),
		httpapi.MapError(ErrAuthenticatorNotAllowed, http.StatusForbidden, "authenticator_not_allowed", "This kind of authenticator is not allowed here."),
		httpapi.MapError(ErrLastSignInMethod, http.StatusConflict, "last_sign_in_method", "This is the account's last way to sign in; add a password, an identity or another passkey first."),
		httpapi.MapError(ErrTooMany, http.StatusConflict, "too_many_passkeys", fmt.Sprintf("An account holds at most %d passkeys.", maxPasskeys)),
		httpapi.MapError(ErrDisabled, http.StatusNotFound, "passkeys_disabled", "Passkeys are off on this server: its relying party ID (GATEHOUSE_WEBAUTHN_RP_ID, by default the issuer's host) must be a domain name."),
	}
}

// Config is the relying party.
type Config struct {
	// RPID is the relying party ID: a registrable domain suffix of every
	// origin (GATEHOUSE_WEBAUTHN_RP_ID; default the issuer's host).
	RPID string
	// RPName is shown by the authenticator (GATEHOUSE_WEBAUTHN_RP_NAME).
	RPName string
	// Origins are the web origins allowed to run ceremonies
	// (GATEHOUSE_WEBAUTHN_ORIGINS; default the issuer's origin).
	Origins []string
	// UserVerification is "preferred" (default), "required" or
	// "discouraged" (GATEHOUSE_WEBAUTHN_USER_VERIFICATION).
	UserVerification string
	// Attestation is "none" (default), "indirect", "direct" or
	// "enterprise" (GATEHOUSE_WEBAUTHN_ATTESTATION).
	Attestation string
	// AllowedAAGUIDs, when set, are the only authenticator models that may
	// register (GATEHOUSE_WEBAUTHN_ALLOWED_AAGUIDS).
	AllowedAAGUIDs []uuid.UUID
	// ReauthWindow is how recent an authentication registering and
	// removing passkeys need (the MFA settings' window).
	ReauthWindow time.Duration
}

// Tables are what the service reads and writes.
type Tables interface {
	store.PasskeyStore
	store.AuditLog
	GetUser(ctx context.Context, id string) (store.User, error)
	GetUserByEmail(ctx context.Context, normalized string) (store.User, error)
	ListIdentities(ctx context.Context, userID string) ([]store.Identity, error)
}

// Tx is the store inside one of the service's transactions.
type Tx interface {
	Tables
	GetUserForUpdate(ctx context.Context, id string) (store.User, error)
	DriverTx() any
	Publish(ctx context.Context, e event.Event) error
}

// Store is the storage the service uses (event.Narrow).
type Store interface {
	Tables
	InTx(ctx context.Context, fn func(Tx) error) error
}

// JobInserter enqueues jobs in a transaction (jobs.Queue).
type JobInserter interface {
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// Sessions starts sessions (session.Service).
type Sessions interface {
	SignInWithPasskey(ctx context.Context, u store.User, check func() (amr []string, ok bool, err error), m httpapi.Meta) (session.Result, error)
}

// Deps are what a Service is built from.
type Deps struct {
	Config   Config
	Store    Store
	KV       kv.Store
	Sessions Sessions
	Keys     *secret.Keyring
	Jobs     JobInserter
	Now      func() time.Time
	Log      *slog.Logger
}

// Service runs the ceremonies.
type Service struct {
	d  Deps
	wa *webauthn.WebAuthn
	uv protocol.UserVerificationRequirement
}

// New checks d and builds the relying party.
func New(d Deps) (*Service, error) {
	switch {
	case d.Store == nil || d.KV == nil || d.Sessions == nil || d.Keys == nil || d.Jobs == nil:
		return nil, errors.New("passkey: New needs Store, KV, Sessions, Keys and Jobs")
	case d.Config.RPID == "" || len(d.Config.Origins) == 0:
		return nil, errors.New("passkey: an RP ID and at least one origin are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Config.RPName == "" {
		d.Config.RPName = d.Config.RPID
	}
	if d.Config.ReauthWindow <= 0 {
		d.Config.ReauthWindow = 5 * time.Minute
	}
	uv := protocol.UserVerificationRequirement(cmpOr(d.Config.UserVerification, string(protocol.VerificationPreferred)))
	switch uv {
	case protocol.VerificationRequired, protocol.VerificationPreferred, protocol.VerificationDiscouraged:
	default:
		return nil, fmt.Errorf("passkey: unknown user verification %q", d.Config.UserVerification)
	}
	att := protocol.ConveyancePreference(cmpOr(d.Config.Attestation, string(protocol.PreferNoAttestation)))
	switch att {
	case protocol.PreferNoAttestation, protocol.PreferIndirectAttestation, protocol.PreferDirectAttestation, protocol.PreferEnterpriseAttestation:
	default:
		return nil, fmt.Errorf("passkey: unknown attestation preference %q", d.Config.Attestation)
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID: d.Config.RPID, RPDisplayName: d.Config.RPName, RPOrigins: d.Config.Origins,
		AttestationPreference: att,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementPreferred, UserVerification: uv,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return &Service{d: d, wa: wa, uv: uv}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Service) now() time.Time { return s.d.Now().UTC().Truncate(time.Microsecond) }

// Ceremony kinds, kept with their state so that a token of one kind never
// finishes another.
const (
	kindRegister = "register"
	kindLogin    = "login"
	kindBound    = "bound" // a second factor or a reauthentication, bound to its caller
)

// ceremony is what the server keeps of a begun ceremony.
type ceremony struct {
	Kind    string               `json:"kind"`
	UserID  string               `json:"user_id,omitempty"`
	Bind    string               `json:"bind,omitempty"`
	Session webauthn.SessionData `json:"session"`
	// Enroll: a registration by a login that must enrol a factor.
	Enroll bool `json:"enroll,omitempty"`
}

func ceremonyKey(tok string) string { return "passkey:ceremony:" + secret.HashToken(tok) }

// boundKey is where a bound ceremony (MFA, reauthentication) keeps its
// state: under what it is bound to, so that it needs no token of its own.
func boundKey(bind string) string { return "passkey:bound:" + secret.HashToken(bind) }

func (s *Service) keep(ctx context.Context, key string, c ceremony) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.d.KV.Set(ctx, key, b, CeremonyTTL)
}

// take returns the ceremony under key once.
func (s *Service) take(ctx context.Context, key, kind string) (ceremony, error) {
	raw, err := s.d.KV.GetDel(ctx, key)
	if errors.Is(err, kv.ErrNotFound) {
		return ceremony{}, ErrInvalidCeremony
	}
	if err != nil {
		return ceremony{}, err
	}
	var c ceremony
	if err := json.Unmarshal(raw, &c); err != nil || c.Kind != kind {
		return ceremony{}, ErrInvalidCeremony
	}
	return c, nil
}

// waUser is a user as go-webauthn sees it. The user handle is the 16
// bytes of the user's UUID: stable, and no personal data.
type waUser struct {
	u     store.User
	creds []webauthn.Credential
}

func (w waUser) WebAuthnID() []byte {
	id, err := uuid.Parse(w.u.ID)
	if err != nil {
		return []byte(w.u.ID)
	}
	return id[:]
}
func (w waUser) WebAuthnName() string { return w.u.Email }
func (w waUser) WebAuthnDisplayName() string {
	if w.u.Name != "" {
		return w.u.Name
	}
	return w.u.Email
}
func (w waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

func credentialOf(p store.Passkey) webauthn.Credential {
	ts := make([]protocol.AuthenticatorTransport, len(p.Transports))
	for i, t := range p.Transports {
		ts[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID: p.CredentialID, PublicKey: p.PublicKey, AttestationType: p.AttestationType, Transport: ts,
		Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: p.UserVerified, BackupEligible: p.BackupEligible, BackupState: p.BackupState},
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
	}
}

func credentials(ps []store.Passkey) []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(ps))
	for _, p := range ps {
		out = append(out, credentialOf(p))
	}
	return out
}

func descriptors(ps []store.Passkey) []protocol.CredentialDescriptor {
	out := make([]protocol.CredentialDescriptor, 0, len(ps))
	for _, p := range ps {
		c := credentialOf(p)
		out = append(out, c.Descriptor())
	}
	return out
}

// usable are the passkeys not flagged as cloned.
func usable(ps []store.Passkey) []store.Passkey {
	return slices.DeleteFunc(slices.Clone(ps), func(p store.Passkey) bool { return !p.ClonedAt.IsZero() })
}

// AMR is what a verified assertion proves (RFC 8176): "swk" for a
// credential that may be synced (its key lives in software: a password
// manager, a platform keychain), "hwk" for a device-bound one; with user
// verification also "user" and "mfa" (something the user has, and a PIN
// or biometric: two factors).
func AMR(p store.Passkey, userVerified bool) []string {
	amr := []string{"hwk"}
	if p.BackupEligible {
		amr[0] = "swk"
	}
	if userVerified {
		amr = append(amr, "user", "mfa")
	}
	return amr
}

// requireRecent refuses registration and removal unless the caller
// authenticated within the reauthentication window; a login that must
// enrol a factor (scope mfa:enroll) just proved its first factor.
func (s *Service) requireRecent(p auth.Principal) error {
	if p.HasScope(ScopeEnroll) {
		return nil
	}
	if p.AuthTime.IsZero() || s.d.Now().Sub(p.AuthTime) > s.d.Config.ReauthWindow {
		return auth.ErrReauthRequired
	}
	return nil
}

// ScopeEnroll is the scope of a principal authenticated by an enrollment
// token (mfa.ScopeEnroll).
const ScopeEnroll = "mfa:enroll"

// notice records an account event and emails the user what changed
// (mail.MFANotice), in tx.
func (s *Service) notice(ctx context.Context, tx Tx, u store.User, what, action string, data map[string]any, m httpapi.Meta) error {
	now := s.now()
	if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: now, ActorID: m.ActorID, SubjectID: u.ID, Action: action, IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: data,
	}); err != nil {
		return err
	}
	if u.Email == "" || u.Kind == store.UserKindService {
		return nil
	}
	args, err := mail.NewSendArgs(s.d.Keys, mail.MFANotice, u.Email, mail.Data{RecipientName: u.Name, Event: what, Time: now}, "")
	if err != nil {
		return err
	}
	_, err = s.d.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
	return err
}

// decoyCredentials are what passwordless sign-in offers for an address
// without passkeys, so that its answer looks like one for an address with
// some: one or two credential IDs with the lengths and transports real
// authenticators use, all drawn from a keyed hash of the address, so the
// same at every request. (An address's real list can still differ from its
// decoys in ways nobody outside knows to look for: the README says "same
// shape", not "indistinguishable".)
func (s *Service) decoyCredentials(email string) []protocol.CredentialDescriptor {
	// A stream of bytes from the address: HMAC-SHA256 in counter mode.
	key := s.d.Keys.DerivedKeys("passkey-decoy")[0]
	norm := strings.ToLower(strings.TrimSpace(email))
	var stream []byte
	for i := byte(0); len(stream) < 4+2*64; i++ {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte{i})
		mac.Write([]byte(norm))
		stream = mac.Sum(stream)
	}
	lengths := []int{16, 20, 32, 32, 48, 64}
	transports := [][]protocol.AuthenticatorTransport{
		{protocol.Internal, protocol.Hybrid}, {protocol.Internal}, {protocol.USB, protocol.NFC}, {protocol.Hybrid, protocol.Internal}, {protocol.USB},
	}
	n := 1 + int(stream[0]%4)/3 // one, now and then two
	out := make([]protocol.CredentialDescriptor, 0, n)
	pos := 4
	for i := range n {
		l := lengths[int(stream[1+i])%len(lengths)]
		out = append(out, protocol.CredentialDescriptor{
			Type: protocol.PublicKeyCredentialType, CredentialID: append([]byte(nil), stream[pos:pos+l]...),
			Transport: transports[int(stream[3])%len(transports)],
		})
		pos += 64
	}
	return out
}
