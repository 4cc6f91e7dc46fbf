package session

import (
	"context"
	"errors"
	"fmt"

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

// Refresh exchanges a refresh token for a new one and an access token
// (rotation with reuse detection; see store.RotateOutcome).
func (s *Service) Refresh(ctx context.Context, raw string, m httpapi.Meta) (Result, error) {
	if raw == "" || len(raw) > 512 {
		return Result{}, ErrInvalidGrant
	}
	hash := secret.HashToken(raw)
	now := s.now()
	if s.Config.BindDevice {
		rt, err := s.Store.GetRefreshTokenByHash(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return Result{}, ErrInvalidGrant
		} else if err != nil {
			return Result{}, err
		}
		sess, err := s.Store.GetSession(ctx, rt.SessionID)
		if err != nil {
			return Result{}, err
		}
		if sess.DeviceFingerprint != "" && !secret.Equal(sess.DeviceFingerprint, Fingerprint(m.DeviceID, m.UserAgent)) {
			s.securityEvent(ctx, sess.UserID, "", "security.refresh_device_mismatch", m, map[string]any{"session_id": sess.ID})
			return Result{}, ErrInvalidGrant
		}
	}
	next, err := secret.NewToken(32)
	if err != nil {
		return Result{}, err
	}
	sealed, err := s.Keys.Seal([]byte(next), successorAD(hash))
	if err != nil {
		return Result{}, err
	}
	res, err := s.Store.RotateRefreshToken(ctx, store.RotateRequest{
		PresentedHash: hash,
		Next:          store.RefreshToken{TokenHash: secret.HashToken(next)},
		SealedNext:    sealed, Now: now, Grace: s.Config.ReuseGrace, IdleTimeout: s.Config.IdleTimeout, LastSeenIP: m.IP,
	})
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, ErrInvalidGrant
	}
	if err != nil {
		return Result{}, err
	}
	switch res.Outcome {
	case store.Rotated:
	case store.GraceReplay:
		plain, err := s.Keys.Open(res.Previous.SealedSuccessor, successorAD(hash))
		if err != nil {
			return Result{}, fmt.Errorf("open sealed successor: %w", err)
		}
		next = string(plain)
	case store.ReuseDetected:
		s.onReuse(ctx, res.Session, m)
		return Result{}, ErrInvalidGrant
	default:
		return Result{}, ErrInvalidGrant
	}
	// No user read here: disabling or deleting an account revokes its
	// sessions (admin API), so a live session is a usable account, and the
	// hot path keeps to the one rotation transaction.
	return s.issue(ctx, store.User{ID: res.Session.UserID}, res.Session, next)
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
