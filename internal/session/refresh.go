package session

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// successorAD binds a sealed successor to the token it succeeds.
func successorAD(presentedHash string) []byte {
	return []byte("gatehouse/refresh-successor\x00" + presentedHash)
}

// Errors of a refresh that the token endpoint answers in its own terms
// (RFC 6749 §5.2); they never reach the problem table.
var (
	// ErrClientMismatch is a refresh token presented by another client
	// than the one it was issued to (or without client authentication
	// when it was issued to a client, or with it when it is a first-party
	// token). Its session has been ended: the token has leaked.
	ErrClientMismatch = errors.New("session: refresh token not issued to this client")
	// ErrScopeNotGranted is a refresh asking for a scope beyond the
	// original grant (RFC 6749 §6). Nothing changed: the token stays
	// usable.
	ErrScopeNotGranted = errors.New("session: requested scope exceeds the grant")
)

// RefreshRequest is one refresh of a refresh token.
type RefreshRequest struct {
	Token string // the refresh token presented
	// Client is the authenticated client that presents the token, ""
	// when the request carries no client authentication: a first-party
	// token (from /v1/auth/login) is used without it, a client's token
	// only by that client.
	Client string
	// Scopes, when not empty, narrows the scope of the access token
	// issued (RFC 6749 §6): each must be in the original grant. The new
	// refresh token keeps the original grant.
	Scopes []string
	// Resources, when not empty, narrows the audience of the access token
	// (RFC 8707 §2.2): each must be one the session was granted, or the
	// refresh fails with apis.ErrInvalidTarget and changes nothing.
	Resources []string
	Meta      httpapi.Meta
}

// Refreshed is a successful refresh.
type Refreshed struct {
	Result
	// Scope is the narrowed scope of the access token (space-separated)
	// when the request asked for one, to report (RFC 6749 §5.1); ""
	// otherwise.
	Scope string
}

// Refresh exchanges a refresh token for a new one and an access token
// (rotation with reuse detection; see store.RotateOutcome). Client binding
// and scope narrowing are decided in the rotation's transaction: a token
// presented by another client is ErrClientMismatch (its session ended),
// a scope beyond the grant ErrScopeNotGranted; a token that is unknown,
// expired, revoked, reused or presented from another device is
// ErrInvalidGrant. With risk scoring on, a rotation is scored against its
// session in memory (scoreRefresh): an anomaly is recorded, and at the
// block threshold the session ends and the refresh is ErrInvalidGrant.
func (s *Service) Refresh(ctx context.Context, req RefreshRequest) (Refreshed, error) {
	raw, m := req.Token, req.Meta
	if raw == "" || len(raw) > 512 {
		return Refreshed{}, ErrInvalidGrant
	}
	hash := secret.HashToken(raw)
	var audience []string // of the access token; nil: the session's
	if s.Config.BindDevice || len(req.Resources) > 0 {
		// The session before the rotation: a refresh from another device,
		// or for a resource the session was not granted, must change
		// nothing. (A session's device and audience never change, so what
		// is read here is what the rotation finds.)
		rt, err := s.Store.GetRefreshTokenByHash(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return Refreshed{}, ErrInvalidGrant
		} else if err != nil {
			return Refreshed{}, err
		}
		sess, err := s.Store.GetSession(ctx, rt.SessionID)
		if err != nil {
			return Refreshed{}, err
		}
		if s.Config.BindDevice && sess.DeviceFingerprint != "" && !secret.Equal(sess.DeviceFingerprint, Fingerprint(m.DeviceID, m.UserAgent)) {
			s.securityEvent(ctx, sess.UserID, "", "security.refresh_device_mismatch", m, map[string]any{"session_id": sess.ID})
			return Refreshed{}, ErrInvalidGrant
		}
		if len(req.Resources) > 0 {
			if s.Audiences == nil {
				return Refreshed{}, apis.ErrInvalidTarget
			}
			if audience, err = s.Audiences.Narrow(ctx, sess.Audience, req.Resources); err != nil {
				return Refreshed{}, err
			}
		}
	}
	now := s.now()
	next, err := secret.NewToken(32)
	if err != nil {
		return Refreshed{}, err
	}
	sealed, err := s.Keys.Seal([]byte(next), successorAD(hash))
	if err != nil {
		return Refreshed{}, err
	}
	scopes := req.Scopes
	if len(scopes) == 0 {
		scopes = nil
	}
	res, err := s.Store.RotateRefreshToken(ctx, store.RotateRequest{
		PresentedHash: hash,
		Next:          store.RefreshToken{TokenHash: secret.HashToken(next)},
		SealedNext:    sealed, Now: now, Grace: s.Config.ReuseGrace, IdleTimeout: s.Config.IdleTimeout, LastSeenIP: m.IP,
		CheckClient: true, Client: req.Client, Scopes: scopes,
	})
	if errors.Is(err, store.ErrNotFound) {
		return Refreshed{}, ErrInvalidGrant
	}
	if err != nil {
		return Refreshed{}, err
	}
	switch res.Outcome {
	case store.Rotated:
	case store.GraceReplay:
		plain, err := s.Keys.Open(res.Previous.SealedSuccessor, successorAD(hash))
		if err != nil {
			return Refreshed{}, fmt.Errorf("open sealed successor: %w", err)
		}
		next = string(plain)
	case store.ReuseDetected:
		s.onReuse(ctx, res.Session, m)
		return Refreshed{}, ErrInvalidGrant
	case store.ClientMismatch:
		// The store ended the session; its access tokens go too. Unlike a
		// reuse, a failure here is the caller's: the client has not been
		// told its request was refused.
		if err := s.RevokeSessionTokens(ctx, res.Session.ID); err != nil {
			return Refreshed{}, err
		}
		s.publishMismatch(ctx, res.Session, m)
		return Refreshed{}, ErrClientMismatch
	case store.ScopeNotGranted:
		return Refreshed{}, ErrScopeNotGranted
	default:
		return Refreshed{}, ErrInvalidGrant
	}
	if res.Outcome == store.Rotated {
		if err := s.scoreRefresh(ctx, res, now, m); err != nil {
			return Refreshed{}, err
		}
	}
	// No user read here: disabling or deleting an account revokes its
	// sessions (admin API), so a live session is a usable account, and the
	// hot path keeps to the one rotation transaction.
	sess := res.Session
	if audience == nil && len(sess.Audience) > 0 && s.Audiences != nil {
		// APIs deleted since the sign-in get no new tokens.
		if audience, err = s.Audiences.Narrow(ctx, sess.Audience, nil); err != nil {
			return Refreshed{}, err
		}
	}
	// The access token carries the grant, or the narrowed scope asked
	// for; the new refresh token keeps the original grant (RFC 6749 §6).
	narrowed := strings.Join(scopes, " ")
	scope := narrowed
	if scope == "" {
		scope = res.Issued.Scope
		if res.Outcome == store.GraceReplay {
			scope = res.Previous.Scope
		}
	}
	r, err := s.issue(ctx, store.User{ID: sess.UserID}, sess, next, audience, scope)
	return Refreshed{Result: r, Scope: narrowed}, err
}

// onReuse handles a stolen-token signal: the family is already revoked;
// deny-list the session, record a security event and warn the user.
func (s *Service) onReuse(ctx context.Context, sess store.Session, m httpapi.Meta) {
	s.deny(ctx, sess.ID)
	u, err := s.Store.GetUser(ctx, sess.UserID)
	if err != nil {
		s.Log.ErrorContext(ctx, "refresh token reuse: user lookup failed", "session_id", sess.ID, "error", err.Error())
		return
	}
	now := s.now()
	err = s.Store.InTx(ctx, func(tx Tx) error {
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
			OccurredAt: now, SubjectID: u.ID, Action: "security.refresh_token_reuse",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
			Data: map[string]any{"session_id": sess.ID},
		}); err != nil {
			return err
		}
		args, err := mail.NewSendArgs(s.Keys, mail.RefreshTokenReuse, u.Email, mail.Data{RecipientName: u.Name, Time: now, IP: m.IP, UserAgent: m.UserAgent}, "")
		if err != nil {
			return err
		}
		if _, err = s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil); err != nil {
			return err
		}
		return tx.Publish(ctx, event.RefreshTokenReused{Session: sess, Meta: m})
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "could not record refresh token reuse", "session_id", sess.ID, "error", err.Error())
	}
}

// publishMismatch publishes the end of a session whose refresh token
// another client presented, in a transaction of its own: the rotation
// ended it already. A failure is logged.
func (s *Service) publishMismatch(ctx context.Context, sess store.Session, m httpapi.Meta) {
	e := event.SessionsRevoked{UserID: sess.UserID, SessionIDs: []string{sess.ID}, Reason: "client_mismatch", Meta: m}
	if !s.Store.Listens(e) {
		return
	}
	if err := s.Store.InTx(ctx, func(tx Tx) error { return tx.Publish(ctx, e) }); err != nil {
		s.Log.ErrorContext(ctx, "could not publish the end of a session whose refresh token another client presented", "session_id", sess.ID, "error", err.Error())
	}
}
