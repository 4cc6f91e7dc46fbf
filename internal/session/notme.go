package session

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

// "Was this you?": a session started from a new device or country (risk
// reasons new_device, new_country; never a user's first sign-in, which
// has no history to compare with) emails the user a one-time "this
// wasn't me" link. Redeeming it (NotMe) ends every session of the user
// and refuses password sign-in (ErrPasswordResetRequired) until the
// password is reset by email.

// ErrPasswordResetRequired is the correct password of a user who disowned
// a sign-in and has not reset the password since. It is only answered
// once the password was verified: answering before would tell anyone
// who tries an address what state its account is in.
var ErrPasswordResetRequired = errors.New("session: the password must be reset before signing in with it")

// NotMePath is the path, on Config.AppURL, of the "this wasn't me" link
// (?token=…); internal/pages serves it.
const NotMePath = "/not-me"

// NotMeTTL is how long a "this wasn't me" link works.
const NotMeTTL = 7 * 24 * time.Hour

// ReasonNotMe is the revocation reason of the sessions a redeemed "this
// wasn't me" link ended.
const ReasonNotMe = "not_me"

// askWasThisYou reports whether a session started with the risk r gets
// the new-sign-in email: it came from a device or a country the user's
// profile did not know. (A blocked sign-in starts no session.)
func askWasThisYou(r *store.SessionRisk) bool {
	return r != nil && (slices.Contains(r.Reasons, string(risk.NewDevice)) || slices.Contains(r.Reasons, string(risk.NewCountry)))
}

// wasThisYou stores the not_me token raw for u (32 random bytes, kept
// hashed, valid NotMeTTL; it does not replace the user's earlier ones) and
// queues the new-sign-in email about sess, in tx.
func (s *Service) wasThisYou(ctx context.Context, tx Tx, u store.User, sess store.Session, raw string) error {
	now := s.now()
	if err := tx.CreateOneTimeToken(ctx, store.OneTimeToken{
		UserID: u.ID, Purpose: store.PurposeNotMe, TokenHash: secret.HashToken(raw), Email: u.Email,
		ExpiresAt: now.Add(NotMeTTL), CreatedAt: now,
	}); err != nil {
		return err
	}
	link := strings.TrimRight(s.Config.AppURL, "/") + NotMePath + "?token=" + raw
	args, err := mail.NewSendArgs(s.Keys, mail.NewSignIn, u.Email, mail.Data{
		RecipientName: u.Name, Time: sess.CreatedAt, Place: place(sess), IP: sess.IP, UserAgent: device(sess), ExpiresIn: NotMeTTL,
	}, link)
	if err != nil {
		return err
	}
	_, err = s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
	return err
}

// place is roughly where a session started: "Paris, FR", "FR", or empty
// when the address could not be placed.
func place(sess store.Session) string {
	switch {
	case sess.City != "" && sess.Country != "":
		return sess.City + ", " + sess.Country
	case sess.Country != "":
		return sess.Country
	}
	return ""
}

// device describes a session's client by its browser and OS ("Firefox on
// Linux"), or by its user agent when neither is known.
func device(sess store.Session) string {
	switch {
	case sess.Browser != "" && sess.OS != "":
		return sess.Browser + " on " + sess.OS
	case sess.Browser != "" || sess.OS != "":
		return sess.Browser + sess.OS
	}
	return sess.UserAgent
}

// NotMe redeems the token of a "this wasn't me" link: in one transaction
// it consumes the token (of parallel redemptions exactly one gets past
// this), ends every session of the user (reason not_me), requires a
// password reset before the next password sign-in, deletes the user's
// other "this wasn't me" links, appends the audit event security.not_me
// and publishes event.SignInDisowned. Once committed, the access tokens of
// the ended sessions go on the deny list. It returns how many sessions
// ended. A token that is unknown, expired or used already is
// user.ErrInvalidToken, as a bad password-reset token is.
func (s *Service) NotMe(ctx context.Context, token string, m httpapi.Meta) (int, error) {
	switch {
	case token == "":
		return 0, httpapi.Validation(httpapi.FieldError{Field: "token", Rule: "required", Message: "The token is required."})
	case len(token) > 512:
		return 0, httpapi.Validation(httpapi.FieldError{Field: "token", Rule: "max_length", Message: "The token is too long."})
	}
	hash := secret.HashToken(token)
	var ended []string
	err := s.Store.InTx(ctx, func(tx Tx) error {
		now := s.now()
		t, err := tx.ConsumeOneTimeToken(ctx, store.PurposeNotMe, hash, now)
		if errors.Is(err, store.ErrNotFound) {
			return user.ErrInvalidToken
		}
		if err != nil {
			return err
		}
		u, err := tx.GetUserForUpdate(ctx, t.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return user.ErrInvalidToken // the account was deleted since
		}
		if err != nil {
			return err
		}
		mm := m
		mm.ActorID = u.ID
		if ended, err = tx.RevokeUserSessions(ctx, u.ID, "", ReasonNotMe, now); err != nil {
			return err
		}
		if len(ended) > 0 {
			if err := tx.Publish(ctx, event.SessionsRevoked{UserID: u.ID, SessionIDs: ended, Reason: ReasonNotMe, Meta: mm}); err != nil {
				return err
			}
		}
		if u.PasswordResetRequiredAt.IsZero() {
			u.PasswordResetRequiredAt = now
			if _, err := tx.UpdateUser(ctx, u); err != nil {
				return err
			}
		}
		// The other links have nothing left to end.
		if err := tx.DeleteUserOneTimeTokens(ctx, u.ID, store.PurposeNotMe); err != nil {
			return err
		}
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
			OccurredAt: now, ActorID: u.ID, SubjectID: u.ID, Action: "security.not_me",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
			Data: map[string]any{"sessions_ended": len(ended)},
		}); err != nil {
			return err
		}
		return tx.Publish(ctx, event.SignInDisowned{UserID: u.ID, SessionIDs: ended, Meta: mm})
	})
	if err != nil {
		return 0, err
	}
	for _, id := range ended {
		s.deny(ctx, id)
	}
	return len(ended), nil
}
