package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mfa/otp"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/sms"
	"github.com/gatehouse/gatehouse/internal/store"
)

// DeviceView is a second factor as its owner sees it.
type DeviceView struct {
	ID          string     `json:"id"`
	Type        string     `json:"type"`
	Name        string     `json:"name"`
	Confirmed   bool       `json:"confirmed"`
	IsDefault   bool       `json:"is_default"`
	PhoneNumber string     `json:"phone_number,omitempty"` // masked
	Email       string     `json:"email,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
}

func maskPhone(p string) string {
	if len(p) <= 4 {
		return "****"
	}
	return strings.Repeat("•", len(p)-4) + p[len(p)-4:]
}

func viewOf(d store.MFADevice) DeviceView {
	v := DeviceView{ID: d.ID, Type: d.Type, Name: d.Name, Confirmed: !d.ConfirmedAt.IsZero(), IsDefault: d.IsDefault, Email: d.Email, CreatedAt: d.CreatedAt.UTC()}
	if d.PhoneNumber != "" {
		v.PhoneNumber = maskPhone(d.PhoneNumber)
	}
	if !d.LastUsedAt.IsZero() {
		t := d.LastUsedAt.UTC()
		v.LastUsedAt = &t
	}
	return v
}

// Devices lists the user's factors and how many backup codes remain.
func (s *Service) Devices(ctx context.Context, userID string) ([]DeviceView, int, error) {
	ds, err := s.Store.ListMFADevices(ctx, userID)
	if err != nil {
		return nil, 0, err
	}
	out := make([]DeviceView, 0, len(ds))
	for _, d := range ds {
		out = append(out, viewOf(d))
	}
	n, err := s.Store.CountBackupCodes(ctx, userID)
	return out, n, err
}

// TOTPEnrollment is the answer to starting a TOTP enrolment.
type TOTPEnrollment struct {
	ID         string `json:"id"`
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
	QRCode     string `json:"qr_code"`
}

// checkAllowed refuses enrolment of a method the user's policy forbids.
func (s *Service) checkAllowed(ctx context.Context, u store.User, method string) error {
	pol, err := s.policyFor(ctx, u)
	if err != nil {
		return err
	}
	if !allowed(pol, method) {
		return ErrMethodUnavailable
	}
	return nil
}

// CheckEnrollable refuses (ErrMethodUnavailable) the enrolment of a
// method the user's policy forbids: passkey registration asks it of
// method webauthn, as TOTP and SMS enrolment do of theirs.
func (s *Service) CheckEnrollable(ctx context.Context, userID, method string) error {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	return s.checkAllowed(ctx, u, method)
}

// EnrollTOTP creates a pending authenticator-app device with an encrypted
// secret; it becomes active with ConfirmDevice.
func (s *Service) EnrollTOTP(ctx context.Context, userID string) (TOTPEnrollment, error) {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	if err := s.checkAllowed(ctx, u, MethodTOTP); err != nil {
		return TOTPEnrollment{}, err
	}
	sec, err := otp.GenerateSecret()
	if err != nil {
		return TOTPEnrollment{}, err
	}
	now := s.now()
	d := store.MFADevice{ID: newID(), UserID: u.ID, Type: MethodTOTP, Name: "Authenticator app", CreatedAt: now, UpdatedAt: now}
	if d.Secret, err = s.Keys.Seal([]byte(sec), totpAD(u.ID, d.ID)); err != nil {
		return TOTPEnrollment{}, err
	}
	if d, err = s.Store.CreateMFADevice(ctx, d); err != nil {
		return TOTPEnrollment{}, err
	}
	uri := otp.URI(s.Config.Issuer, u.Email, sec)
	qr, err := otp.QRCodePNGDataURI(uri)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	return TOTPEnrollment{ID: d.ID, Secret: sec, OTPAuthURI: uri, QRCode: qr}, nil
}

// EnrollSMS creates a pending SMS device and texts it a confirmation code.
func (s *Service) EnrollSMS(ctx context.Context, userID, phone string, m httpapi.Meta) (string, error) {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return "", err
	}
	if err := s.checkAllowed(ctx, u, MethodSMS); err != nil {
		return "", err
	}
	e164, err := sms.Normalize(phone)
	if err != nil {
		return "", httpapi.Validation(httpapi.FieldError{Field: "phone_number", Rule: "format", Message: "Not a valid phone number in international format (+…)."})
	}
	now := s.now()
	d, err := s.Store.CreateMFADevice(ctx, store.MFADevice{UserID: u.ID, Type: MethodSMS, Name: "Phone " + maskPhone(e164), PhoneNumber: e164, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return "", err
	}
	if err := s.sendCode(ctx, u, d, m, ""); err != nil {
		_ = s.Store.DeleteMFADevice(ctx, u.ID, d.ID)
		return "", smsProblem(err, false)
	}
	return d.ID, nil
}

// EnrollEmail creates a pending email-code device for the account's
// address and sends it a confirmation code.
func (s *Service) EnrollEmail(ctx context.Context, userID string, m httpapi.Meta) (string, error) {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return "", err
	}
	if err := s.checkAllowed(ctx, u, MethodEmail); err != nil {
		return "", err
	}
	now := s.now()
	d, err := s.Store.CreateMFADevice(ctx, store.MFADevice{UserID: u.ID, Type: MethodEmail, Name: "Email", Email: u.Email, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return "", err
	}
	if err := s.sendCode(ctx, u, d, m, ""); err != nil {
		_ = s.Store.DeleteMFADevice(ctx, u.ID, d.ID)
		return "", err
	}
	return d.ID, nil
}

// ConfirmDevice activates a pending device with a valid code. The first
// active device becomes the default.
func (s *Service) ConfirmDevice(ctx context.Context, userID, id, code string) (store.MFADevice, error) {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return store.MFADevice{}, err
	}
	d, err := s.Store.GetMFADevice(ctx, userID, id)
	if err != nil {
		return store.MFADevice{}, err
	}
	if !d.ConfirmedAt.IsZero() {
		return store.MFADevice{}, ErrAlreadyConfirmed
	}
	if err := s.throttle(ctx, "mfa:verify:"+userID, s.Config.VerifyLimit); err != nil {
		return store.MFADevice{}, err
	}
	now := s.now()
	var ok bool
	switch d.Type {
	case MethodTOTP:
		ok, err = s.checkTOTP(ctx, d, code, now)
	default:
		ok, err = s.checkSentCode(ctx, userID, d, code, now)
	}
	if err != nil {
		return store.MFADevice{}, err
	}
	if !ok {
		return store.MFADevice{}, ErrInvalidCode
	}
	ds, err := s.Store.ListMFADevices(ctx, userID)
	if err != nil {
		return store.MFADevice{}, err
	}
	hasDefault := false
	for _, o := range ds {
		hasDefault = hasDefault || (o.IsDefault && !o.ConfirmedAt.IsZero())
	}
	d.ConfirmedAt, d.LastUsedAt = now, now
	d.IsDefault = !hasDefault
	if d, err = s.Store.UpdateMFADevice(ctx, d); err != nil {
		return store.MFADevice{}, err
	}
	s.notice(ctx, u, fmt.Sprintf("A new second factor was added (%s)", describe(d)), "mfa.device_added", map[string]any{"device_id": d.ID, "type": d.Type},
		event.SecondFactorEnrolled{UserID: u.ID, Method: d.Type, DeviceID: d.ID})
	return d, nil
}

func describe(d store.MFADevice) string {
	switch d.Type {
	case MethodTOTP:
		return "authenticator app"
	case MethodSMS:
		return "text messages to " + maskPhone(d.PhoneNumber)
	}
	return "email codes"
}

// UpdateDevice renames a device or makes it the default. Like every MFA
// change it is an account event and the user gets a notice.
func (s *Service) UpdateDevice(ctx context.Context, userID, id string, name *string, isDefault *bool) (store.MFADevice, error) {
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return store.MFADevice{}, err
	}
	d, err := s.Store.GetMFADevice(ctx, userID, id)
	if err != nil {
		return store.MFADevice{}, err
	}
	before := d
	if name != nil {
		n := strings.TrimSpace(*name)
		if n == "" || len([]rune(n)) > 100 || strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return store.MFADevice{}, httpapi.Validation(httpapi.FieldError{Field: "name", Rule: "format", Message: "A name of 1 to 100 printable characters is required."})
		}
		d.Name = n
	}
	if isDefault != nil && *isDefault {
		if d.ConfirmedAt.IsZero() {
			return store.MFADevice{}, httpapi.Validation(httpapi.FieldError{Field: "is_default", Rule: "confirmed", Message: "Only a confirmed device can be the default."})
		}
		d.IsDefault = true
	}
	out, err := s.Store.UpdateMFADevice(ctx, d)
	if err != nil {
		return store.MFADevice{}, err
	}
	// The notice describes the device by its type, not by the name the
	// caller chose: no caller-written text goes into the email.
	var event string
	switch renamed, madeDefault := out.Name != before.Name, out.IsDefault && !before.IsDefault; {
	case renamed && madeDefault:
		event = fmt.Sprintf("A second factor (%s) was renamed and made the default", describe(out))
	case renamed:
		event = fmt.Sprintf("A second factor (%s) was renamed", describe(out))
	case madeDefault:
		event = fmt.Sprintf("The default second factor is now %s", describe(out))
	default:
		return out, nil // nothing changed: nothing to tell
	}
	s.notice(ctx, u, event, "mfa.device_updated", map[string]any{"device_id": out.ID, "name": out.Name, "is_default": out.IsDefault}, nil)
	return out, nil
}

// requireRecent refuses sensitive changes unless the caller authenticated
// within the reauthentication window.
func (s *Service) requireRecent(p auth.Principal) error {
	if p.AuthTime.IsZero() || s.now().Sub(p.AuthTime) > s.Config.ReauthWindow {
		return auth.ErrReauthRequired
	}
	return nil
}

// RemoveDevice deletes a factor (recent authentication needed).
func (s *Service) RemoveDevice(ctx context.Context, p auth.Principal, id string) error {
	if err := s.requireRecent(p); err != nil {
		return err
	}
	u, err := s.Store.GetUser(ctx, p.UserID)
	if err != nil {
		return err
	}
	d, err := s.Store.GetMFADevice(ctx, p.UserID, id)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteMFADevice(ctx, p.UserID, id); err != nil {
		return err
	}
	if !d.ConfirmedAt.IsZero() {
		s.notice(ctx, u, fmt.Sprintf("A second factor was removed (%s)", describe(d)), "mfa.device_removed", map[string]any{"device_id": d.ID, "type": d.Type},
			event.SecondFactorRemoved{UserID: u.ID, Method: d.Type, DeviceID: d.ID})
	}
	return nil
}

// RegenerateBackupCodes voids the old set and returns new codes, shown once
// (recent authentication needed). The new set, its record, its notice and
// its event (event.BackupCodesRegenerated) commit together or not at all.
func (s *Service) RegenerateBackupCodes(ctx context.Context, p auth.Principal) ([]string, error) {
	if err := s.requireRecent(p); err != nil {
		return nil, err
	}
	u, err := s.Store.GetUser(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	codes, err := otp.GenerateBackupCodes(s.Config.BackupCodes)
	if err != nil {
		return nil, err
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = s.Codes.Hash("backup-code", otp.NormalizeBackupCode(c))
	}
	err = s.Store.InTx(ctx, func(tx Tx) error {
		if err := tx.ReplaceBackupCodes(ctx, u.ID, hashes, s.now()); err != nil {
			return err
		}
		if err := s.record(ctx, tx, u, "New backup codes were generated; the old ones no longer work", "mfa.backup_codes_generated", map[string]any{"count": len(codes)}); err != nil {
			return err
		}
		return tx.Publish(ctx, event.BackupCodesRegenerated{UserID: u.ID, Count: len(codes)})
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// Reauthenticate proves the caller again, by password or a second factor,
// and returns a fresh access token (auth_time now) for the same session.
// A password counts in the login lockout (session.Service.CheckPassword),
// a code in the per-user second-factor lockout.
func (s *Service) Reauthenticate(ctx context.Context, p auth.Principal, pw, method string, answer Answer, m httpapi.Meta) (string, int, error) {
	if p.SessionID == "" {
		return "", 0, ErrMethodUnavailable
	}
	u, err := s.Store.GetUser(ctx, p.UserID)
	if err != nil {
		return "", 0, err
	}
	amr := append([]string(nil), p.AMR...)
	switch {
	case pw != "":
		if err := s.throttle(ctx, "mfa:verify:"+u.ID, s.Config.VerifyLimit); err != nil {
			return "", 0, err
		}
		err := s.Sessions.CheckPassword(ctx, u, pw, m)
		if errors.Is(err, session.ErrInvalidCredentials) {
			return "", 0, ErrInvalidCode // as before: 401 invalid_code
		}
		if err != nil {
			return "", 0, err
		}
	case method != "":
		f, err := s.factors(ctx, u)
		if err != nil {
			return "", 0, err
		}
		if !slices.Contains(f.allowed, method) {
			return "", 0, ErrMethodUnavailable
		}
		if err := s.throttle(ctx, "mfa:verify:"+u.ID, s.Config.VerifyLimit); err != nil {
			return "", 0, err
		}
		before := factorsBefore(f.active, p.AuthTime)
		var proved []string
		ok, err := s.guarded(ctx, u, m, true, func() (bool, error) {
			amr, ok, err := s.checkAnswer(ctx, u, f, before, method, answer, false, reauthBind(p), m)
			proved = amr
			return ok, err
		})
		if err != nil {
			return "", 0, err
		}
		if !ok {
			return "", 0, ErrInvalidCode
		}
		amr = amrWith(amr, proved...)
	default:
		return "", 0, httpapi.Validation(httpapi.FieldError{Field: "password", Rule: "required", Message: "Give the password, or a method and code."})
	}
	at, exp, err := s.Sessions.Reauthenticated(ctx, u.ID, p.SessionID, amr)
	if errors.Is(err, session.ErrInvalidGrant) {
		return "", 0, auth.Unauthorized()
	}
	return at, exp, err
}

// factorsBefore are the factors confirmed before t. Only a factor the
// user had when a session signed in proves them again: one added since,
// with this very session, could be the work of whoever holds a stolen
// access token, and must not make that token "recently authenticated".
// A token's auth_time has whole seconds: a factor of the same second
// counts as before.
func factorsBefore(active []store.MFADevice, t time.Time) []store.MFADevice {
	var before []store.MFADevice
	for _, d := range active {
		if !d.ConfirmedAt.Truncate(time.Second).After(t) {
			before = append(before, d)
		}
	}
	return before
}

// reauthBind is what a session's reauthentication by passkey is bound to.
func reauthBind(p auth.Principal) string { return "reauth:" + p.SessionID }

// ReauthChallenge begins a reauthentication by passkey (method webauthn):
// the assertion options over the passkeys the user had when the session
// signed in, bound to the session. Reauthenticate takes the answer.
func (s *Service) ReauthChallenge(ctx context.Context, p auth.Principal, method string) (json.RawMessage, error) {
	if p.SessionID == "" || method != MethodWebAuthn || s.Passkeys == nil {
		return nil, ErrMethodUnavailable
	}
	u, err := s.Store.GetUser(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	f, err := s.factors(ctx, u)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(f.allowed, method) {
		return nil, ErrMethodUnavailable
	}
	passkeys := f.passkeysOf(factorsBefore(f.active, p.AuthTime))
	if len(passkeys) == 0 {
		return nil, ErrMethodUnavailable
	}
	return s.Passkeys.AssertionOptions(ctx, u, passkeys, reauthBind(p))
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
