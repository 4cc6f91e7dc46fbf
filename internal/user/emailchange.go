package user

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// confirmEmailChange checks, before the change's transaction, what a
// change of the address to newEmail needs. A new address is where password
// resets go, so changing it needs what the other sensitive changes need: a
// recent sign-in, or the current password (checked through the sign-in
// lockout). And each change sends two messages, so it is throttled like
// other sends. A current_password given is always checked. It reports
// whether the change is confirmed.
func (s *Service) confirmEmailChange(ctx context.Context, userID, newEmail, currentPassword string, m httpapi.Meta) (bool, error) {
	confirmed := s.recentlyAuthenticated(m) && currentPassword == ""
	if newEmail == "" {
		return confirmed, nil
	}
	u, err := s.Store.GetUser(ctx, userID)
	if err != nil {
		return false, err
	}
	if sameAddress(newEmail, u.Email) {
		return confirmed, nil
	}
	if !confirmed {
		if err := s.confirmPassword(ctx, userID, currentPassword, m); err != nil {
			return false, err
		}
		confirmed = true
	}
	if err := s.throttleEmailChange(ctx, userID, newEmail); err != nil {
		return false, err
	}
	return confirmed, nil
}

// changeEmail applies newEmail to u inside the profile update's
// transaction. Only an ASCII case change of the current address is applied
// at once (no verification needed); going back to the current address
// cancels a pending change; anything else is a new address, which becomes
// pending until the link sent to it is followed, and the current address
// is told.
func (s *Service) changeEmail(ctx context.Context, tx Tx, u *store.User, newEmail string, confirmed bool, diff map[string]any, m httpapi.Meta) error {
	if sameAddress(newEmail, u.Email) {
		if newEmail != u.Email {
			diff["email"] = map[string]any{"old": u.Email, "new": newEmail}
			u.Email = newEmail
		}
		if u.PendingEmail != "" {
			u.PendingEmail = "" // back to the current address: cancel a pending change
			return tx.DeleteUserOneTimeTokens(ctx, u.ID, store.PurposeEmailChange)
		}
		return nil
	}
	if !confirmed {
		return ErrEmailChangeNeedsReauth // the address changed since it was read
	}
	// Whether another account holds the address is not told here (that
	// would enumerate accounts); the change fails at verification, which
	// only that mailbox's owner can reach.
	u.PendingEmail = newEmail
	token, err := secret.NewToken(32)
	if err != nil {
		return err
	}
	if err := s.issueToken(ctx, tx, *u, store.PurposeEmailChange, newEmail, token, s.Config.VerificationTTL); err != nil {
		return err
	}
	if err := s.audit(ctx, tx, m, u.ID, "user.email_change_requested", map[string]any{"email": map[string]any{"old": u.Email, "new": newEmail}}); err != nil {
		return err
	}
	if err := s.sendMail(ctx, tx, mail.EmailChangeVerify, newEmail, mail.Data{RecipientName: u.Name, ExpiresIn: s.Config.VerificationTTL}, s.link("/verify-email", token)); err != nil {
		return err
	}
	return s.sendMail(ctx, tx, mail.EmailChangeNotice, u.Email, mail.Data{RecipientName: u.Name, NewEmail: maskEmail(newEmail), Time: s.now(), IP: m.IP, UserAgent: m.UserAgent}, "")
}
