package security

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Automated response rules: what an automated_response event names as the
// rule that fired.
const (
	// RuleBlockStuffingIP blocks the address of a credential-stuffing
	// incident from every sign-in route, for a growing period: each
	// failure from it once a block ended blocks it again, twice as long.
	RuleBlockStuffingIP = "credential_stuffing.block_ip"
	// RuleEndSessions ends every session of the account of an incident of
	// high severity or above (keyed by a user).
	RuleEndSessions = "account_incident.end_sessions"
)

// incidentSeverity is the severity of a new incident of each type: the
// account ones are high when they mean the account itself is in use from
// too many places, medium when they count failures only.
var incidentSeverity = map[string]string{
	IncidentCredentialStuffing:   store.SeverityHigh,
	IncidentAccountUnderAttack:   store.SeverityMedium,
	IncidentSharedDevice:         store.SeverityMedium,
	IncidentAccountManyCountries: store.SeverityHigh,
}

// severityRank orders the severities; an unknown one ranks 0.
func severityRank(s string) int {
	return map[string]int{store.SeverityLow: 1, store.SeverityMedium: 2, store.SeverityHigh: 3, store.SeverityCritical: 4}[s]
}

// AtLeast reports whether severity s is at or above min.
func AtLeast(s, min string) bool { return severityRank(s) >= severityRank(min) }

// ResponseSettings tune alerting and the automated responses; the wiring
// reads them from GATEHOUSE_SECURITY_*.
type ResponseSettings struct {
	// AlertSeverity: incidents and events at or above it notify the
	// administrators, by email and as webhook events
	// (GATEHOUSE_SECURITY_ALERT_SEVERITY, default high).
	AlertSeverity string
	// EscalateAfter: an incident notified and still open that long after
	// is notified again, and again every EscalateAfter while it stays open
	// (GATEHOUSE_SECURITY_ESCALATE_AFTER, default 4h; 0 never).
	EscalateAfter time.Duration
	// BlockIPs turns on RuleBlockStuffingIP (GATEHOUSE_SECURITY_BLOCK_IPS,
	// default true).
	BlockIPs bool
	// EndSessions turns on RuleEndSessions
	// (GATEHOUSE_SECURITY_END_SESSIONS, default true).
	EndSessions bool
}

// DefaultResponseSettings are the defaults.
func DefaultResponseSettings() ResponseSettings {
	return ResponseSettings{AlertSeverity: store.SeverityHigh, EscalateAfter: 4 * time.Hour, BlockIPs: true, EndSessions: true}
}

// ReactTx is the transaction a Responder reacts in: the one that recorded
// the event, so that notifications (mail jobs, webhook events) commit with
// it; the automated responses wait for its commit.
type ReactTx interface {
	Tx
	store.UserStore
	Publish(ctx context.Context, e event.Event) error
	AfterCommit(fn func(ctx context.Context))
	DriverTx() any
}

// JobInserter enqueues a job inside a transaction (jobs.Queue).
type JobInserter interface {
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// ResponderDeps are what a Responder is built from.
type ResponderDeps struct {
	Settings ResponseSettings
	Recorder *Recorder
	// InTx runs fn in a transaction of its own that can publish events
	// (for the automated_response events, recorded once the action ran).
	InTx func(ctx context.Context, fn func(ReactTx) error) error
	// BlockIP blocks an address from signing in for a growing period
	// (throttle.BlockIP); nil turns RuleBlockStuffingIP off.
	BlockIP func(ctx context.Context, ip string) (level int, blocked time.Duration, err error)
	// Allowlisted reports whether an address is in the allowlist IP list:
	// it is never blocked. Nil: none is.
	Allowlisted func(ip string) bool
	// EndSessions ends every session of a user and denies its access
	// tokens, returning how many it ended; nil turns RuleEndSessions off.
	EndSessions func(ctx context.Context, userID, reason string) (int, error)
	Jobs        JobInserter
	Keys        *secret.Keyring
	Now         func() time.Time
	Log         *slog.Logger
}

// Responder reacts to what Recorder.Record did: it notifies the
// administrators of incidents and events at or above the alert severity
// (mail jobs and webhook events, in the recording transaction), runs the
// automated responses once it committed, records each as an
// automated_response event naming its rule, and escalates incidents left
// open (Escalate).
type Responder struct{ d ResponderDeps }

// NewResponder checks d.
func NewResponder(d ResponderDeps) (*Responder, error) {
	switch {
	case d.Recorder == nil || d.InTx == nil || d.Jobs == nil || d.Keys == nil:
		return nil, fmt.Errorf("security: a responder needs Recorder, InTx, Jobs and Keys")
	case !ValidSeverity(d.Settings.AlertSeverity):
		return nil, fmt.Errorf("security: unknown alert severity %q", d.Settings.AlertSeverity)
	case d.Settings.EscalateAfter < 0:
		return nil, fmt.Errorf("security: a negative escalation delay")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Responder{d: d}, nil
}

// Handle records e in tx (Recorder.Record) and reacts to it (React).
func (r *Responder) Handle(ctx context.Context, tx ReactTx, e Event) error {
	out, err := r.d.Recorder.Record(ctx, tx, e)
	if err != nil {
		return err
	}
	return r.React(ctx, tx, out)
}

// React notifies and responds to out, recorded in tx:
//
//   - an incident it opened at or above the alert severity is notified
//     (its NotifiedAt set, for escalation);
//   - the event itself is notified when at or above the alert severity,
//     unless it only extended an open incident (which was notified, or
//     not, when it opened): an attack of a thousand attempts is one alert;
//   - once tx committed: a failure from an address in a credential
//     stuffing incident blocks the address (RuleBlockStuffingIP), and a
//     new incident of high severity or above keyed by an account ends the
//     account's sessions (RuleEndSessions).
func (r *Responder) React(ctx context.Context, tx ReactTx, out Outcome) error {
	for i, inc := range out.Opened {
		if !AtLeast(inc.Severity, r.d.Settings.AlertSeverity) {
			continue
		}
		inc.NotifiedAt = r.d.Now().UTC()
		var err error
		if out.Opened[i], err = tx.UpdateSecurityIncident(ctx, inc); err != nil {
			return err
		}
		if err := r.notifyIncident(ctx, tx, out.Opened[i], false); err != nil {
			return err
		}
	}
	if AtLeast(out.Event.Severity, r.d.Settings.AlertSeverity) && len(out.Extended) == 0 {
		if err := r.notifyEvent(ctx, tx, out.Event); err != nil {
			return err
		}
	}
	ev := out.Event
	if r.d.Settings.BlockIPs && r.d.BlockIP != nil && ev.IP != "" && slices.Contains(FailureTypes, ev.Type) {
		for _, inc := range slices.Concat(out.Opened, out.Extended) {
			if inc.Type == IncidentCredentialStuffing && inc.Key == ev.IP {
				tx.AfterCommit(func(ctx context.Context) { r.blockIP(ctx, inc, ev.IP) })
				break
			}
		}
	}
	if r.d.Settings.EndSessions && r.d.EndSessions != nil {
		for _, inc := range out.Opened {
			if AtLeast(inc.Severity, store.SeverityHigh) && keyedByUser(inc.Type) {
				tx.AfterCommit(func(ctx context.Context) { r.endSessions(ctx, inc) })
			}
		}
	}
	return nil
}

// keyedByUser reports whether incidents of typ are keyed by a user ID.
func keyedByUser(typ string) bool {
	return typ == IncidentAccountUnderAttack || typ == IncidentAccountManyCountries
}

// blockIP runs RuleBlockStuffingIP for ip, of inc, and records it.
func (r *Responder) blockIP(ctx context.Context, inc store.SecurityIncident, ip string) {
	ctx = context.WithoutCancel(ctx)
	if r.d.Allowlisted != nil && r.d.Allowlisted(ip) {
		return
	}
	level, blocked, err := r.d.BlockIP(ctx, ip)
	if err != nil {
		r.d.Log.ErrorContext(ctx, "automated response failed: could not block an address", "rule", RuleBlockStuffingIP, "incident_id", inc.ID, "error", err.Error())
		return
	}
	if blocked <= 0 {
		return // a trusted network, never blocked
	}
	r.responded(ctx, Event{
		Type: TypeAutomatedResponse, IP: ip,
		Data: map[string]any{
			"rule": RuleBlockStuffingIP, "action": "block_ip", "incident_id": inc.ID,
			"level": level, "blocked_seconds": int(blocked.Round(time.Second).Seconds()),
		},
	})
}

// endSessions runs RuleEndSessions for the account of inc, and records it.
func (r *Responder) endSessions(ctx context.Context, inc store.SecurityIncident) {
	ctx = context.WithoutCancel(ctx)
	n, err := r.d.EndSessions(ctx, inc.Key, "security_incident")
	if err != nil {
		r.d.Log.ErrorContext(ctx, "automated response failed: could not end an account's sessions", "rule", RuleEndSessions, "incident_id", inc.ID, "error", err.Error())
		return
	}
	r.responded(ctx, Event{
		Type: TypeAutomatedResponse, UserID: inc.Key,
		Data: map[string]any{"rule": RuleEndSessions, "action": "end_sessions", "incident_id": inc.ID, "incident_type": inc.Type, "sessions_ended": n},
	})
}

// responded records an automated response in a transaction of its own.
func (r *Responder) responded(ctx context.Context, e Event) {
	err := r.d.InTx(ctx, func(tx ReactTx) error {
		out, err := r.d.Recorder.Record(ctx, tx, e)
		if err != nil {
			return err
		}
		if AtLeast(out.Event.Severity, r.d.Settings.AlertSeverity) {
			return r.notifyEvent(ctx, tx, out.Event)
		}
		return nil
	})
	if err != nil {
		r.d.Log.ErrorContext(ctx, "could not record an automated response", "rule", e.Data["rule"], "error", err.Error())
	}
}

// notifyIncident tells the administrators of inc: a webhook event and an
// email each.
func (r *Responder) notifyIncident(ctx context.Context, tx ReactTx, inc store.SecurityIncident, escalated bool) error {
	if err := tx.Publish(ctx, event.SecurityIncidentNotified{Incident: inc, Escalated: escalated}); err != nil {
		return err
	}
	what := "opened"
	if escalated {
		what = fmt.Sprintf("still open (reminder %d)", inc.Escalations)
	}
	text := fmt.Sprintf("Security incident %s (%s, severity %s) is %s: %d events since %s",
		inc.ID, strings.ReplaceAll(inc.Type, "_", " "), inc.Severity, what, inc.EventCount, inc.FirstSeen.UTC().Format(time.RFC3339))
	if len(inc.IPs) > 0 {
		text += fmt.Sprintf(", from %s", listed(inc.IPs))
	}
	if len(inc.UserIDs) > 0 {
		text += fmt.Sprintf(", against the accounts %s", listed(inc.UserIDs))
	}
	text += ". Resolve it with POST /v1/admin/security-incidents/" + inc.ID + "/resolve."
	return r.emailAdmins(ctx, tx, text, inc.LastSeen)
}

// notifyEvent tells the administrators of ev: a webhook event and an
// email each.
func (r *Responder) notifyEvent(ctx context.Context, tx ReactTx, ev store.SecurityEvent) error {
	if err := tx.Publish(ctx, event.SecurityAlerted{Event: ev}); err != nil {
		return err
	}
	text := fmt.Sprintf("Security event %s (%s, severity %s)", ev.ID, strings.ReplaceAll(ev.Type, "_", " "), ev.Severity)
	if ev.UserID != "" {
		text += " for the account " + ev.UserID
	}
	if ev.IP != "" {
		text += " from " + ev.IP
		if ev.Country != "" {
			text += " (" + strings.Trim(ev.City+", "+ev.Country, ", ") + ")"
		}
	}
	if ev.Score != nil {
		codes := make([]string, len(ev.Reasons))
		for i, re := range ev.Reasons {
			codes[i] = re.Code
		}
		text += fmt.Sprintf(", risk score %d (%s)", *ev.Score, strings.Join(codes, ", "))
	}
	text += ". See GET /v1/admin/security-events?type=" + ev.Type + "."
	return r.emailAdmins(ctx, tx, text, ev.OccurredAt)
}

// listed is up to five values of l, and how many more.
func listed(l []string) string {
	if len(l) <= 5 {
		return strings.Join(l, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(l[:5], ", "), len(l)-5)
}

// emailAdmins enqueues a security_alert email to every active
// administrator in tx.
func (r *Responder) emailAdmins(ctx context.Context, tx ReactTx, text string, at time.Time) error {
	sent, err := store.ForEachActiveAdmin(ctx, tx, func(a store.User) error {
		args, err := mail.NewSendArgs(r.d.Keys, mail.SecurityAlert, a.Email, mail.Data{RecipientName: a.Name, Event: text, Time: at}, "")
		if err != nil {
			return err
		}
		_, err = r.d.Jobs.InsertTx(ctx, tx.DriverTx(), args, nil)
		return err
	})
	if err != nil {
		return err
	}
	if sent == 0 {
		r.d.Log.WarnContext(ctx, "security alert, and no active administrator to email", "alert", text)
	}
	return nil
}

// Escalate notifies again every open incident notified at least
// EscalateAfter ago (at most limit of them), each in a transaction of its
// own that counts the escalation, and returns how many it escalated. A
// periodic job calls it. Without EscalateAfter it does nothing.
func (r *Responder) Escalate(ctx context.Context, limit int) (int, error) {
	if r.d.Settings.EscalateAfter <= 0 {
		return 0, nil
	}
	now := r.d.Now().UTC()
	var due []store.SecurityIncident
	err := r.d.InTx(ctx, func(tx ReactTx) error {
		var err error
		// Notified at or before now - EscalateAfter (times are kept to the
		// microsecond).
		due, err = tx.ListSecurityIncidentsToEscalate(ctx, now.Add(-r.d.Settings.EscalateAfter+time.Microsecond), limit)
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, inc := range due {
		err := r.d.InTx(ctx, func(tx ReactTx) error {
			cur, err := tx.GetSecurityIncidentForUpdate(ctx, inc.ID)
			if err != nil {
				return err
			}
			// Resolved or escalated by another node meanwhile: nothing to do.
			if cur.Status != store.IncidentOpen || cur.NotifiedAt.IsZero() || cur.NotifiedAt.After(now.Add(-r.d.Settings.EscalateAfter)) {
				return nil
			}
			cur.NotifiedAt, cur.Escalations = now, cur.Escalations+1
			if cur, err = tx.UpdateSecurityIncident(ctx, cur); err != nil {
				return err
			}
			if err := r.notifyIncident(ctx, tx, cur, true); err != nil {
				return err
			}
			n++
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("escalate security incident %s: %w", inc.ID, err)
		}
	}
	return n, nil
}
