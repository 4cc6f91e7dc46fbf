package session

import (
	"context"
	"errors"
	"time"

	"github.com/mileusna/useragent"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/store"
)

// ReasonRiskAnomaly is the revocation reason of a session ended by the
// risk score of one of its refreshes.
const ReasonRiskAnomaly = "risk_anomaly"

// scoredRefresh is a refresh's assessment and the network it came from.
type scoredRefresh struct {
	risk.RefreshAssessment
	at      time.Time
	network risk.Network
}

// scoreRefresh scores a rotated refresh against its session (see
// risk.Engine.ScoreRefresh) in memory: the rotation returned the session
// and where and when it was last seen, and both addresses are placed by
// Locate. An anomaly below the block threshold is recorded and the
// refresh goes on. At the block threshold the session ends (its refresh
// family and its access tokens, with an event and an email) and the
// answer is ErrInvalidGrant: the tokens of the rotation are never handed
// out. Nothing happens when scoring is off.
//
// Only a rotation is scored. A grace replay hands out again the
// successor of a refresh that was scored a moment ago (the session was
// last seen at the replay's predecessor already, so there would be
// nothing to compare), and it is refused once that refresh ended the
// session.
func (s *Service) scoreRefresh(ctx context.Context, res store.RotateResult, at time.Time, m httpapi.Meta) error {
	if s.Risk == nil {
		return nil
	}
	sess := res.Session
	a := &scoredRefresh{at: at, network: s.network(m.IP)}
	a.RefreshAssessment = s.Risk.ScoreRefresh(risk.RefreshInput{
		At: at, Network: a.network, UserAgent: agentFamily(m.UserAgent),
		Previous: s.network(res.PreviousIP), PreviousAt: res.PreviousSeenAt,
		SignInUserAgent: agentFamily(sess.UserAgent), SignInCountry: sess.Country, SignInASN: uint(sess.ASN),
	})
	switch {
	case a.Decision == risk.Block:
		if err := s.endForRisk(ctx, sess, a, m); err != nil {
			return err
		}
		return ErrInvalidGrant
	case a.Anomaly:
		s.recordAnomaly(ctx, sess, a, m)
	}
	return nil
}

// agentFamily is what a refresh's user agent is compared by: the browser
// and OS names it gives (not their versions: an update in the middle of
// a session is not another device), or the whole string when it names no
// browser.
func agentFamily(userAgent string) string {
	ua := useragent.Parse(userAgent)
	if ua.Name == "" {
		return userAgent
	}
	return ua.Name + "\x00" + ua.OS
}

// recordAnomaly records an anomaly that does not end the session (an
// audit event and event.SessionAnomaly) in one transaction. A failure is
// logged: the refresh stands.
func (s *Service) recordAnomaly(ctx context.Context, sess store.Session, a *scoredRefresh, m httpapi.Meta) {
	err := s.Store.InTx(ctx, func(tx Tx) error {
		if err := tx.AppendAuditEvent(ctx, anomalyAudit(sess, a, false, m)); err != nil {
			return err
		}
		return tx.Publish(ctx, anomalyEvent(sess, a, false, m))
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "could not record a session anomaly", "session_id", sess.ID, "error", err.Error())
	}
}

// endForRisk ends a session whose refresh reached the block threshold: in
// one transaction the session and its refresh family are revoked, the
// audit event, the email to the user and event.SessionAnomaly recorded;
// then its access tokens go on the deny list. The request's cancellation
// does not stop it. Should the transaction fail, the session is still
// revoked on its own (and the failure logged): it must end even when
// its record cannot be written. An error is returned only when the
// session could not be ended at all.
func (s *Service) endForRisk(ctx context.Context, sess store.Session, a *scoredRefresh, m httpapi.Meta) error {
	ctx = context.WithoutCancel(ctx)
	err := s.Store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.RevokeSession(ctx, sess.ID, ReasonRiskAnomaly, a.at); err != nil {
			return err
		}
		if err := tx.AppendAuditEvent(ctx, anomalyAudit(sess, a, true, m)); err != nil {
			return err
		}
		if s.Jobs != nil {
			u, err := tx.GetUser(ctx, sess.UserID)
			if err != nil {
				return err
			}
			args, err := mail.NewSendArgs(s.Keys, mail.SessionEndedRisk, u.Email, mail.Data{RecipientName: u.Name, Time: a.at, IP: m.IP, UserAgent: m.UserAgent}, "")
			if err != nil {
				return err
			}
			if _, err := s.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil); err != nil {
				return err
			}
		}
		return tx.Publish(ctx, anomalyEvent(sess, a, true, m))
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "could not record the end of a session blocked by a refresh's risk score; ending it without the record",
			"session_id", sess.ID, "error", err.Error())
		if _, rerr := s.Store.RevokeSession(ctx, sess.ID, ReasonRiskAnomaly, a.at); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	s.deny(ctx, sess.ID)
	return nil
}

// anomalyAudit is the audit event of a session anomaly.
func anomalyAudit(sess store.Session, a *scoredRefresh, revoked bool, m httpapi.Meta) store.AuditEvent {
	return store.AuditEvent{
		OccurredAt: a.at, SubjectID: sess.UserID, Action: "security.session_anomaly",
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
		Data: map[string]any{"session_id": sess.ID, "score": a.Score, "reasons": a.Codes(), "revoked": revoked},
	}
}

// anomalyEvent is the event of a session anomaly.
func anomalyEvent(sess store.Session, a *scoredRefresh, revoked bool, m httpapi.Meta) event.SessionAnomaly {
	reasons := make([]store.SecurityReason, len(a.Reasons))
	for i, r := range a.Reasons {
		reasons[i] = store.SecurityReason{Code: string(r.Code), Points: r.Points}
	}
	return event.SessionAnomaly{
		UserID: sess.UserID, SessionID: sess.ID, Score: a.Score, Reasons: reasons,
		Country: a.network.Country, City: a.network.City, ASN: uint32(a.network.ASN), Revoked: revoked, Meta: m,
	}
}
