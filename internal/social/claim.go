package social

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Ways an address is proven by its owner, as recorded in the audit event
// of claimUnverified.
const (
	viaMagicLink = "magic_link"
	viaProvider  = "provider"
)

// claimUnverified runs when the owner of an address proves it — by
// following a magic link, or through the verified email of a provider
// trusted for linking — on an account whose address was never verified.
// Anyone can register an account with someone else's address (a
// pre-registration), so nothing set up on it before is trusted: its
// password is removed (the owner can set one through a password reset),
// its sessions end, its second factors, passkeys and backup codes, linked
// identities and pending email change are removed, and the address
// becomes verified. An audit event records what was removed, and the
// owner is told by email.
//
// It runs in tx, with u read by GetUserForUpdate, and returns the updated
// user. The sessions end through the session service, in tx: their access
// tokens are deny-listed once tx has committed.
//
// Second factors and identities are removed through the store contract
// rather than through the MFA service: the removal must commit with the
// rest or not at all, and MFA's own removal asks for a recent
// authentication of the very account being cleared.
func (s *Service) claimUnverified(ctx context.Context, tx Tx, u store.User, via, providerID string, m httpapi.Meta) (store.User, error) {
	now := s.now()
	ids, err := tx.ListIdentities(ctx, u.ID)
	if err != nil {
		return store.User{}, err
	}
	removedIDs := make([]string, 0, len(ids))
	for _, i := range ids {
		if err := tx.DeleteIdentity(ctx, u.ID, i.ID); err != nil {
			return store.User{}, err
		}
		removedIDs = append(removedIDs, i.Provider)
		if err := tx.Publish(ctx, event.IdentityUnlinked{UserID: u.ID, IdentityID: i.ID, Provider: i.Provider, Meta: m}); err != nil {
			return store.User{}, err
		}
	}
	devices, err := tx.ListMFADevices(ctx, u.ID)
	if err != nil {
		return store.User{}, err
	}
	for _, d := range devices {
		if err := tx.DeleteMFADevice(ctx, u.ID, d.ID); err != nil {
			return store.User{}, err
		}
		if d.ConfirmedAt.IsZero() {
			continue // never enrolled: nothing to tell
		}
		if err := tx.Publish(ctx, event.SecondFactorRemoved{UserID: u.ID, Method: d.Type, DeviceID: d.ID}); err != nil {
			return store.User{}, err
		}
	}
	passkeys, err := tx.ListPasskeys(ctx, u.ID)
	if err != nil {
		return store.User{}, err
	}
	for _, p := range passkeys {
		if err := tx.DeletePasskey(ctx, u.ID, p.ID); err != nil {
			return store.User{}, err
		}
		if err := tx.Publish(ctx, event.SecondFactorRemoved{UserID: u.ID, Method: "webauthn", DeviceID: p.ID}); err != nil {
			return store.User{}, err
		}
	}
	if err := tx.ReplaceBackupCodes(ctx, u.ID, nil, now); err != nil {
		return store.User{}, err
	}
	if err := tx.DeleteUserOneTimeTokens(ctx, u.ID, store.PurposeEmailChange); err != nil {
		return store.User{}, err
	}
	hadPassword := u.PasswordHash != ""
	var fields []string // of the profile, as GET /v1/me names them
	if u.Name != "" {
		fields = append(fields, "name")
	}
	if u.PendingEmail != "" {
		fields = append(fields, "pending_email")
	}
	u.PasswordHash = ""
	u.Name = "" // chosen by whoever registered: not to greet the owner with
	u.PendingEmail = ""
	u.EmailVerifiedAt = now
	u, err = tx.UpdateUser(ctx, u)
	if err != nil {
		return store.User{}, err
	}
	ended, err := s.Sessions.EndUserSessionsInTx(ctx, tx, u.ID, "unverified_credentials_cleared")
	if err != nil {
		return store.User{}, err
	}
	data := map[string]any{
		"via": via, "password_removed": hadPassword, "sessions_ended": len(ended),
		"identities_removed": removedIDs, "mfa_devices_removed": len(devices), "passkeys_removed": len(passkeys),
	}
	if providerID != "" {
		data["provider"] = providerID
	}
	// The notice's event line is short (the mail template caps it); the
	// audit event's data says exactly what went.
	const notice = "Settings set up before your address was confirmed were removed"
	if err := s.notice(ctx, tx, u, "user.unverified_credentials_cleared", notice, m, data); err != nil {
		return store.User{}, err
	}
	verifiedBy := event.VerifiedByMagicLink
	if via == viaProvider {
		verifiedBy = event.VerifiedByProvider
	}
	if err := tx.Publish(ctx, event.EmailVerified{UserID: u.ID, Email: u.Email, Via: verifiedBy, Meta: m}); err != nil {
		return store.User{}, err
	}
	if len(fields) > 0 {
		if err := tx.Publish(ctx, event.UserUpdated{User: u, Fields: fields, Meta: m}); err != nil {
			return store.User{}, err
		}
	}
	return u, nil
}
