package social

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/social/provider"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

// deferredLinkKey names a confirmed link waiting for the second factor,
// keyed by the login's mfa_token or enrollment_token.
func deferredLinkKey(pendingToken string) string {
	return "social:deferred-link:" + secret.HashToken(pendingToken)
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

// link records an identity for a user, with an event and a notice.
func (s *Service) link(ctx context.Context, userID, providerID string, prof provider.Profile, m httpapi.Meta) error {
	return s.Store.InTx(ctx, func(tx Tx) error { return s.linkIn(ctx, tx, userID, providerID, prof, m) })
}

// linkIn is link in the open transaction tx.
func (s *Service) linkIn(ctx context.Context, tx Tx, userID, providerID string, prof provider.Profile, m httpapi.Meta) error {
	u, err := tx.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	return s.createIdentity(ctx, tx, u, providerID, prof, m)
}

// autoLink links an identity whose verified email, from a provider trusted
// for linking, is the account's address. That email proves the mailbox;
// if the account's address was never verified, the account may be a
// pre-registration by someone else, and what was set up on it is cleared
// first (claimUnverified), as when a magic link proves the address.
func (s *Service) autoLink(ctx context.Context, userID, providerID string, prof provider.Profile, m httpapi.Meta) error {
	return s.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, userID)
		if err != nil {
			return err
		}
		if u.EmailVerifiedAt.IsZero() {
			if user.NormalizeEmail(prof.Email) != u.EmailNormalized {
				return errors.New("social: auto-link to an account of another address")
			}
			if u, err = s.claimUnverified(ctx, tx, u, viaProvider, providerID, m); err != nil {
				return err
			}
		}
		return s.createIdentity(ctx, tx, u, providerID, prof, m)
	})
}

func (s *Service) createIdentity(ctx context.Context, tx Tx, u store.User, providerID string, prof provider.Profile, m httpapi.Meta) error {
	ident, err := tx.CreateIdentity(ctx, store.Identity{UserID: u.ID, Provider: providerID, Subject: prof.Subject, Email: prof.Email, LinkedAt: s.now()})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return ErrIdentityInUse
		}
		return err
	}
	if err := s.notice(ctx, tx, u, "identity.linked", fmt.Sprintf("Your %s account was linked for signing in", providerID), m, map[string]any{"provider": providerID}); err != nil {
		return err
	}
	return tx.Publish(ctx, event.IdentityLinked{UserID: u.ID, IdentityID: ident.ID, Provider: providerID, Meta: m})
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
// factor, in the transaction tx. It handles event.SecondFactorVerified,
// published with the consumed mfa_token or enrollment_token once the
// login it belongs to has fully succeeded. The link is taken once; a
// token that deferred none is nothing to do. An identity linked
// meanwhile is left as it is, as in ConfirmLink.
func (s *Service) CompleteDeferredLink(ctx context.Context, tx Tx, pendingToken, userID string, sm httpapi.Meta) error {
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
	// An identity linked meanwhile is looked for first: a failed insert
	// would void the whole transaction on PostgreSQL.
	if _, err := tx.GetIdentity(ctx, pl.Provider, pl.Subject); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("social: deferred link: %w", err)
	}
	if err := s.linkIn(ctx, tx, userID, pl.Provider, provider.Profile{Subject: pl.Subject, Email: pl.Email}, sm); err != nil && !errors.Is(err, ErrIdentityInUse) {
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
	return s.Store.InTx(ctx, func(tx Tx) error {
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
			// A passkey signs in too.
			pks, err := tx.ListPasskeys(ctx, userID)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(pks, func(p store.Passkey) bool { return p.ClonedAt.IsZero() }) {
				return ErrLastSignInMethod
			}
		}
		if err := tx.DeleteIdentity(ctx, userID, id); err != nil {
			return err
		}
		if err := s.notice(ctx, tx, u, "identity.unlinked", fmt.Sprintf("Your %s account was unlinked", target.Provider), m, map[string]any{"provider": target.Provider}); err != nil {
			return err
		}
		return tx.Publish(ctx, event.IdentityUnlinked{UserID: userID, IdentityID: id, Provider: target.Provider, Meta: m})
	})
}
