// Package security records security-relevant events (lockouts, refresh
// token reuse, risk decisions, MFA failures and locks, session anomalies,
// administrators' changes to security settings) in one model, correlates
// them into incidents in the transaction that records them, and serves
// both to administrators (/v1/admin/security-events,
// /v1/admin/security-incidents).
//
// Correlation rules (Rules, each with a threshold and a window; a zero
// threshold turns a rule off):
//
//   - credential_stuffing: one IP failing (FailureTypes) against
//     CredentialStuffing.Threshold distinct accounts (Event.Account: those
//     that do not exist count too) within its window; keyed by the IP.
//   - shared_device: one device fingerprint seen for SharedDevice.Threshold
//     distinct accounts; keyed by the fingerprint.
//   - account_under_attack: one account failing from
//     AccountUnderAttack.Threshold distinct IPs; keyed by the user ID.
//   - account_many_countries: one account in use (inUseTypes: a step-up
//     or block of a correct password, a session anomaly, a refresh token
//     reuse) from AccountManyCountries.Threshold distinct countries; keyed
//     by the user ID.
//
// While an incident of a type and key is open, every further matching
// event extends it (last_seen, ips, user_ids, event_count) instead of
// opening another; once resolved, the next crossing of the threshold opens
// a new one.
package security

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Event types. Failures (FailureTypes) feed the credential stuffing and
// account-under-attack rules.
const (
	TypeLoginFailed         = "login_failed"          // a sign-in failed (wrong password or code)
	TypeLockout             = "lockout"               // an account or address was locked out
	TypeRefreshReuse        = "refresh_reuse"         // a rotated refresh token came back
	TypeRiskStepUp          = "risk_step_up"          // the risk score asked for a second factor
	TypeRiskBlocked         = "risk_blocked"          // the risk score refused a sign-in
	TypeMFAFailed           = "mfa_failed"            // a second factor was wrong
	TypeMFALocked           = "mfa_locked"            // too many wrong second factors
	TypeSessionAnomaly      = "session_anomaly"       // a refresh from another country/ASN and user agent, impossible travel
	TypeAdminSecurityChange = "admin_security_change" // an administrator changed a security setting
	TypeAutomatedResponse   = "automated_response"    // an automatic action (a block, sessions ended), with the rule in Data
	TypeNotMe               = "not_me"                // the user disowned a sign-in ("this wasn't me"): every session ended, a password reset required
	TypeAPIKeyLeaked        = "api_key_leaked"        // a leak report named a live API key: it was revoked, its owner emailed
	TypePasskeyCloned       = "passkey_cloned"        // a passkey's sign count went backwards: flagged, refused from then on, its user emailed
)

// Incident types.
const (
	IncidentCredentialStuffing   = "credential_stuffing"
	IncidentSharedDevice         = "shared_device"
	IncidentAccountUnderAttack   = "account_under_attack"
	IncidentAccountManyCountries = "account_many_countries"
)

// FailureTypes are the event types that count as failures for the
// credential stuffing and account-under-attack rules.
var FailureTypes = []string{TypeLoginFailed, TypeLockout, TypeMFAFailed, TypeMFALocked, TypeRiskBlocked}

// defaultSeverity is the severity of an event recorded without one.
var defaultSeverity = map[string]string{
	TypeLoginFailed:         store.SeverityLow,
	TypeLockout:             store.SeverityMedium,
	TypeRefreshReuse:        store.SeverityHigh,
	TypeRiskStepUp:          store.SeverityMedium,
	TypeRiskBlocked:         store.SeverityHigh,
	TypeMFAFailed:           store.SeverityLow,
	TypeMFALocked:           store.SeverityMedium,
	TypeSessionAnomaly:      store.SeverityHigh,
	TypeAdminSecurityChange: store.SeverityMedium,
	TypeAutomatedResponse:   store.SeverityMedium,
	TypeNotMe:               store.SeverityHigh,
	TypeAPIKeyLeaked:        store.SeverityHigh,
	TypePasskeyCloned:       store.SeverityHigh,
}

// ValidSeverity reports whether s is one of the four severities.
func ValidSeverity(s string) bool {
	switch s {
	case store.SeverityLow, store.SeverityMedium, store.SeverityHigh, store.SeverityCritical:
		return true
	}
	return false
}

// Rule is one correlation rule's setting: an incident opens when
// Threshold distinct values are seen for one key within Window. A zero
// Threshold turns the rule off.
type Rule struct {
	Threshold int
	Window    time.Duration
}

// Rules are the correlation settings (see the package documentation).
// The wiring reads them from configuration; DefaultRules are the
// defaults:
//
//	rule                     threshold              window
//	CredentialStuffing       20 distinct accounts   1h
//	SharedDevice             5 distinct accounts    24h
//	AccountUnderAttack       10 distinct IPs        1h
//	AccountManyCountries     3 distinct countries   24h
type Rules struct {
	CredentialStuffing   Rule // distinct accounts failing from one IP
	SharedDevice         Rule // distinct accounts on one device fingerprint
	AccountUnderAttack   Rule // distinct IPs failing against one account
	AccountManyCountries Rule // distinct countries of one account
}

// DefaultRules are the default correlation settings.
func DefaultRules() Rules {
	return Rules{
		CredentialStuffing:   Rule{Threshold: 20, Window: time.Hour},
		SharedDevice:         Rule{Threshold: 5, Window: 24 * time.Hour},
		AccountUnderAttack:   Rule{Threshold: 10, Window: time.Hour},
		AccountManyCountries: Rule{Threshold: 3, Window: 24 * time.Hour},
	}
}

// MaxListed caps an incident's IPs and UserIDs: an incident listing a
// botnet stops growing its lists there (event_count keeps counting).
const MaxListed = 1000

// Event is what a domain records. Type is required; a Severity left empty
// is the type's default (low for a type this package does not know);
// OccurredAt is now when zero.
type Event struct {
	Type       string
	Severity   string
	OccurredAt time.Time
	UserID     string
	// Account is the account a sign-in tried, what credential stuffing
	// counts: the user's ID, or a keyed hash of a login name with no
	// account. Empty: UserID.
	Account string
	ActorID string
	IP      string
	Country string
	City    string
	ASN     int64
	Device  string
	Score   *int
	Reasons []store.SecurityReason
	Data    map[string]any
}

// Tx is the storage Record writes to: the caller's transaction, so that
// the event and its incident commit with the change they describe.
type Tx interface {
	store.SecurityStore
}

// Outcome is what Record did.
type Outcome struct {
	Event store.SecurityEvent // as stored, with its incident
	// Opened are the incidents this event opened, Extended those it
	// extended: what alerting reacts to.
	Opened, Extended []store.SecurityIncident
}

// Recorder writes security events and correlates them.
type Recorder struct {
	rules Rules
	now   func() time.Time
}

// NewRecorder returns a Recorder with these rules; now is the clock
// (time.Now when nil).
func NewRecorder(rules Rules, now func() time.Time) (*Recorder, error) {
	for name, r := range map[string]Rule{"CredentialStuffing": rules.CredentialStuffing, "SharedDevice": rules.SharedDevice,
		"AccountUnderAttack": rules.AccountUnderAttack, "AccountManyCountries": rules.AccountManyCountries} {
		if r.Threshold < 0 || r.Threshold > 0 && r.Window <= 0 {
			return nil, fmt.Errorf("security: rule %s: the threshold must not be negative and an active rule needs a positive window", name)
		}
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{rules: rules, now: now}, nil
}

// rule is one correlation rule at work: which events it looks at, what
// keys them and what it counts.
type rule struct {
	incident string
	Rule
	types   []string // nil: every type but admin changes and automated responses
	key     store.SecurityField
	counted store.SecurityField
}

func (r *Recorder) active() []rule {
	all := []rule{
		{IncidentCredentialStuffing, r.rules.CredentialStuffing, FailureTypes, store.SecurityFieldIP, store.SecurityFieldAccount},
		{IncidentAccountUnderAttack, r.rules.AccountUnderAttack, FailureTypes, store.SecurityFieldUserID, store.SecurityFieldIP},
		{IncidentSharedDevice, r.rules.SharedDevice, nil, store.SecurityFieldDevice, store.SecurityFieldUserID},
		{IncidentAccountManyCountries, r.rules.AccountManyCountries, inUseTypes, store.SecurityFieldUserID, store.SecurityFieldCountry},
	}
	return slices.DeleteFunc(all, func(ru rule) bool { return ru.Threshold == 0 })
}

// inUseTypes are the events that show an account in use (its password
// or its session), which account_many_countries counts: failures do not,
// or anyone could make a victim's account look spread across the world.
var inUseTypes = []string{TypeRiskStepUp, TypeRiskBlocked, TypeSessionAnomaly, TypeRefreshReuse}

// correlatedTypes are the types the rules without a type list look at.
var correlatedTypes = []string{
	TypeLoginFailed, TypeLockout, TypeRefreshReuse, TypeRiskStepUp, TypeRiskBlocked,
	TypeMFAFailed, TypeMFALocked, TypeSessionAnomaly,
}

func field(ev store.SecurityEvent, f store.SecurityField) string {
	switch f {
	case store.SecurityFieldIP:
		return ev.IP
	case store.SecurityFieldUserID:
		return ev.UserID
	case store.SecurityFieldDevice:
		return ev.Device
	case store.SecurityFieldCountry:
		return ev.Country
	case store.SecurityFieldAccount:
		return ev.Account
	}
	return ""
}

// ErrInvalidEvent is an event Record refuses: no type, an unknown
// severity or a score outside 0–100.
var ErrInvalidEvent = errors.New("security: invalid event")

// Record writes e in tx and correlates it: it extends the open incident
// of each rule it matches, or opens one when it takes a rule over its
// threshold (then attaching the earlier events of the window that have no
// incident). The event belongs to the first incident it was correlated
// into, in the order credential_stuffing, account_under_attack,
// shared_device, account_many_countries. An incident's EventCount counts
// the events correlated into it: the one that opened it, the earlier
// events of the window it attached (those already in another incident stay
// there) and every later one that extended it.
//
// Run it inside the caller's transaction: the open incident is locked
// until it ends, so concurrent events extend it one after the other, and
// two events crossing the threshold together open one incident. Events
// recorded concurrently do not see each other's uncommitted rows, so a
// crossing made only by them is noticed at the next matching event.
//
// Cost: per matching rule one locked read of the open incident and, when
// none is open, one DISTINCT query over the key's index; then the insert.
func (r *Recorder) Record(ctx context.Context, tx Tx, e Event) (Outcome, error) {
	if e.Severity == "" {
		e.Severity = defaultSeverity[e.Type]
		if e.Severity == "" {
			e.Severity = store.SeverityLow
		}
	}
	if e.Type == "" || !ValidSeverity(e.Severity) || e.Score != nil && (*e.Score < 0 || *e.Score > 100) {
		return Outcome{}, fmt.Errorf("%w: type %q, severity %q", ErrInvalidEvent, e.Type, e.Severity)
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = r.now()
	}
	if e.Account == "" {
		e.Account = e.UserID
	}
	id, err := newID("sev_")
	if err != nil {
		return Outcome{}, err
	}
	ev := store.SecurityEvent{
		ID: id, Type: e.Type, Severity: e.Severity, OccurredAt: e.OccurredAt.UTC().Truncate(time.Microsecond),
		UserID: e.UserID, Account: e.Account, ActorID: e.ActorID, IP: e.IP, Country: e.Country, City: e.City, ASN: e.ASN, Device: e.Device,
		Score: e.Score, Reasons: e.Reasons, Data: e.Data,
	}
	var (
		out    Outcome
		opened []rule // the rule of each of out.Opened
	)
	for _, ru := range r.active() {
		types := ru.types
		if types == nil {
			types = correlatedTypes
		}
		key := field(ev, ru.key)
		if key == "" || field(ev, ru.counted) == "" || !slices.Contains(types, ev.Type) {
			continue
		}
		inc, isNew, err := r.correlate(ctx, tx, ev, ru, types, key)
		if err != nil {
			return Outcome{}, err
		}
		if inc.ID == "" {
			continue
		}
		if ev.IncidentID == "" {
			ev.IncidentID = inc.ID
		}
		if isNew {
			out.Opened = append(out.Opened, inc)
			ru.types = types
			opened = append(opened, ru)
		} else {
			out.Extended = append(out.Extended, inc)
		}
	}
	if err := tx.CreateSecurityEvent(ctx, ev); err != nil {
		return Outcome{}, err
	}
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	out.Event = ev
	// The earlier events of each new incident's window that have no
	// incident join it.
	for i, inc := range out.Opened {
		ru := opened[i]
		n, err := tx.AttachSecurityEvents(ctx, inc.ID, store.SecurityEventMatch{
			Types: ru.types, Field: ru.key, Value: inc.Key, Since: ev.OccurredAt.Add(-ru.Window),
		})
		if err != nil {
			return Outcome{}, err
		}
		if n > 0 {
			inc.EventCount += n
			if out.Opened[i], err = tx.UpdateSecurityIncident(ctx, inc); err != nil {
				return Outcome{}, err
			}
		}
	}
	return out, nil
}

// correlate extends the open incident of ru for key with ev, or opens one
// when ev takes the rule over its threshold; it returns a zero incident
// when neither. An opened incident counts ev alone so far (Record adds
// the earlier events it attaches).
func (r *Recorder) correlate(ctx context.Context, tx Tx, ev store.SecurityEvent, ru rule, types []string, key string) (store.SecurityIncident, bool, error) {
	inc, err := tx.FindOpenSecurityIncident(ctx, ru.incident, key)
	switch {
	case err == nil:
		inc, err = tx.UpdateSecurityIncident(ctx, extend(inc, ev))
		return inc, false, err
	case !errors.Is(err, store.ErrNotFound):
		return store.SecurityIncident{}, false, err
	}
	m := store.SecurityEventMatch{Types: types, Field: ru.key, Value: key, Since: ev.OccurredAt.Add(-ru.Window)}
	// Enough to list them all in the incident, and to tell the threshold.
	seen, err := tx.DistinctSecurityEventValues(ctx, m, ru.counted, MaxListed)
	if err != nil {
		return store.SecurityIncident{}, false, err
	}
	seen = addListed(seen, field(ev, ru.counted))
	if len(seen) < ru.Threshold {
		return store.SecurityIncident{}, false, nil
	}
	slices.Sort(seen)
	id, err := newID("sinc_")
	if err != nil {
		return store.SecurityIncident{}, false, err
	}
	inc = store.SecurityIncident{
		ID: id, Type: ru.incident, Key: key, FirstSeen: ev.OccurredAt, LastSeen: ev.OccurredAt, EventCount: 1,
		Severity: incidentSeverity[ru.incident],
	}
	// The incident lists IPs and accounts: what the rule counted, or the
	// key, and the event's own.
	switch {
	case ru.counted == store.SecurityFieldIP:
		inc.IPs = seen
	case ru.key == store.SecurityFieldIP:
		inc.IPs = []string{key}
	default:
		if inc.IPs, err = tx.DistinctSecurityEventValues(ctx, m, store.SecurityFieldIP, MaxListed); err != nil {
			return store.SecurityIncident{}, false, err
		}
		slices.Sort(inc.IPs)
	}
	switch {
	case ru.counted == store.SecurityFieldUserID:
		inc.UserIDs = seen
	case ru.key == store.SecurityFieldUserID:
		inc.UserIDs = []string{key}
	default:
		// The accounts that exist (credential stuffing counts those
		// that do not too, by a hash of the name tried).
		if inc.UserIDs, err = tx.DistinctSecurityEventValues(ctx, m, store.SecurityFieldUserID, MaxListed); err != nil {
			return store.SecurityIncident{}, false, err
		}
		slices.Sort(inc.UserIDs)
	}
	inc.IPs, inc.UserIDs = addListed(inc.IPs, ev.IP), addListed(inc.UserIDs, ev.UserID)
	got, opened, err := tx.OpenSecurityIncident(ctx, inc)
	if err != nil || opened {
		return got, opened, err
	}
	// Opened meanwhile by a concurrent event: extend that one.
	got, err = tx.UpdateSecurityIncident(ctx, extend(got, ev))
	return got, false, err
}

// extend adds ev to inc.
func extend(inc store.SecurityIncident, ev store.SecurityEvent) store.SecurityIncident {
	inc.EventCount++
	if ev.OccurredAt.After(inc.LastSeen) {
		inc.LastSeen = ev.OccurredAt
	}
	inc.IPs = addListed(inc.IPs, ev.IP)
	inc.UserIDs = addListed(inc.UserIDs, ev.UserID)
	return inc
}

// addListed appends v to l unless it is empty, listed already or l is
// full (MaxListed).
func addListed(l []string, v string) []string {
	if v == "" || len(l) >= MaxListed || slices.Contains(l, v) {
		return l
	}
	return append(l, v)
}

func newID(prefix string) (string, error) {
	tok, err := secret.NewToken(16)
	if err != nil {
		return "", err
	}
	return prefix + tok, nil
}
