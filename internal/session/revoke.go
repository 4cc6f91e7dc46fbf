package session

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// deny puts a session on the deny list until its last access token
// expired; failures are logged (the session is already revoked in the
// database, so refresh is refused regardless).
func (s *Service) deny(ctx context.Context, sessionID string) {
	until := s.now().Add(s.Config.AccessTTL + s.Config.Leeway)
	if err := s.Tokens.DenySession(ctx, sessionID, until); err != nil {
		s.Log.ErrorContext(ctx, "could not deny-list a revoked session", "session_id", sessionID, "error", err.Error())
	}
}

// Logout ends one session of the user everywhere.
func (s *Service) Logout(ctx context.Context, userID, sessionID string, m httpapi.Meta) error {
	sess, err := s.Store.GetSession(ctx, sessionID)
	if err != nil {
		return err
	}
	if sess.UserID != userID {
		return store.ErrNotFound
	}
	if _, err := s.revoke(ctx, sessionID, "logout", m); err != nil {
		return err
	}
	s.securityEvent(ctx, userID, userID, "user.logged_out", m, map[string]any{"session_id": sessionID})
	return nil
}

// RevokeUserSessionByID ends one session of the user everywhere (no event).
func (s *Service) RevokeUserSessionByID(ctx context.Context, userID, sessionID string) error {
	sess, err := s.Store.GetSession(ctx, sessionID)
	if err != nil {
		return err
	}
	if sess.UserID != userID {
		return store.ErrNotFound
	}
	_, err = s.Revoke(ctx, sessionID, "superseded")
	return err
}

// Revoke ends a session everywhere: its refresh tokens in the database and,
// through the deny list (recorded in the database too), its access tokens
// on every node. It is the one way a single session ends. It returns the
// session as revoked, ErrNotFound when there is none; a session that had
// ended already keeps its first revocation, and its tokens are denied
// again. A session it ends is published (event.SessionsRevoked) in the
// revocation's transaction.
func (s *Service) Revoke(ctx context.Context, sessionID, reason string) (store.Session, error) {
	return s.revoke(ctx, sessionID, reason, httpapi.Meta{})
}

// revoke is Revoke for the request m.
func (s *Service) revoke(ctx context.Context, sessionID, reason string, m httpapi.Meta) (store.Session, error) {
	var sess store.Session
	err := s.Store.InTx(ctx, func(tx Tx) error {
		before, err := tx.GetSession(ctx, sessionID)
		if err != nil {
			return err
		}
		if sess, err = tx.RevokeSession(ctx, sessionID, reason, s.now()); err != nil {
			return err
		}
		if !before.RevokedAt.IsZero() {
			return nil // ended already: nothing new to tell
		}
		return tx.Publish(ctx, event.SessionsRevoked{UserID: sess.UserID, SessionIDs: []string{sess.ID}, Reason: reason, Meta: m})
	})
	if err != nil {
		return store.Session{}, err
	}
	if err := s.RevokeSessionTokens(ctx, sess.ID); err != nil {
		return sess, err
	}
	return sess, nil
}

// RevokeSessionTokens puts an already revoked session's access tokens on
// the deny list.
func (s *Service) RevokeSessionTokens(ctx context.Context, sessionID string) error {
	until := s.now().Add(s.Config.AccessTTL + s.Config.Leeway)
	return s.Tokens.DenySession(ctx, sessionID, until)
}

// RevokeUserSessions ends every session of the user but except (if set),
// publishing those it ended (event.SessionsRevoked) in the revocation's
// transaction. It implements user.SessionRevoker.
func (s *Service) RevokeUserSessions(ctx context.Context, userID, except, reason string) error {
	return s.revokeUserSessions(ctx, userID, except, reason, httpapi.Meta{})
}

// revokeUserSessions is RevokeUserSessions for the request m.
func (s *Service) revokeUserSessions(ctx context.Context, userID, except, reason string, m httpapi.Meta) error {
	var ids []string
	err := s.Store.InTx(ctx, func(tx Tx) error {
		var err error
		if ids, err = tx.RevokeUserSessions(ctx, userID, except, reason, s.now()); err != nil || len(ids) == 0 {
			return err
		}
		return tx.Publish(ctx, event.SessionsRevoked{UserID: userID, SessionIDs: ids, Reason: reason, Meta: m})
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		s.deny(ctx, id)
	}
	return nil
}

// EndingTx is the part of another domain's transaction that
// EndUserSessionsInTx needs: the revocation itself, its event, and a hook
// that runs once the transaction committed (event.Tx has them all).
type EndingTx interface {
	RevokeUserSessions(ctx context.Context, userID, except, reason string, now time.Time) ([]string, error)
	Publish(ctx context.Context, e event.Event) error
	AfterCommit(fn func(ctx context.Context))
}

// EndUserSessionsInTx ends every session of the user inside tx, for a
// change of another domain that must commit together with the revocation
// (an account taken over by the owner of its address, say). Their access
// tokens go on the deny list once tx has committed, not before: a rolled
// back change ends nothing. It returns the IDs of the sessions it ended.
func (s *Service) EndUserSessionsInTx(ctx context.Context, tx EndingTx, userID, reason string) ([]string, error) {
	ids, err := tx.RevokeUserSessions(ctx, userID, "", reason, s.now())
	if err != nil || len(ids) == 0 {
		return ids, err
	}
	if err := tx.Publish(ctx, event.SessionsRevoked{UserID: userID, SessionIDs: ids, Reason: reason}); err != nil {
		return nil, err
	}
	tx.AfterCommit(func(ctx context.Context) {
		for _, id := range ids {
			s.deny(ctx, id)
		}
	})
	return ids, nil
}

// RevokeIssuedBefore is the incident kill switch: every access token
// issued and every session started before t stops working on every node.
func (s *Service) RevokeIssuedBefore(ctx context.Context, t time.Time) (int64, error) {
	if err := s.Tokens.RevokeIssuedBefore(ctx, t); err != nil {
		return 0, err
	}
	return s.Store.RevokeSessionsCreatedBefore(ctx, t, "revoked_before", s.now())
}

// List returns the user's live sessions, newest first.
func (s *Service) List(ctx context.Context, userID string) ([]store.Session, error) {
	return s.Store.ListUserSessions(ctx, userID, s.now())
}
