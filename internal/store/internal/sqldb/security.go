package sqldb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// securityEventColumns is the column list scanSecurityEvent expects.
const securityEventColumns = "id, type, severity, occurred_at, user_id, actor_id, ip, country, city, asn, device, " +
	"score, reasons, incident_id, data, account"

// securityIncidentColumns is the column list scanSecurityIncident expects.
const securityIncidentColumns = "id, type, status, key, first_seen, last_seen, ips, user_ids, event_count, " +
	"resolved_at, resolved_by, note, severity, notified_at, escalations"

// securityFields maps the fields correlation may name to their columns:
// a column name is never taken from the caller.
var securityFields = map[store.SecurityField]string{
	store.SecurityFieldIP:      "ip",
	store.SecurityFieldUserID:  "user_id",
	store.SecurityFieldDevice:  "device",
	store.SecurityFieldCountry: "country",
	store.SecurityFieldAccount: "account",
}

func validSeverity(s string) bool {
	switch s {
	case store.SeverityLow, store.SeverityMedium, store.SeverityHigh, store.SeverityCritical:
		return true
	}
	return false
}

func (t *Tables) scanSecurityEvent(r sqlrow.Scanner) (store.SecurityEvent, error) {
	var (
		ev                                                          store.SecurityEvent
		user, actor, ip, country, city, device, incidentID, account *string
		asn, score                                                  *int64
		reasons, data                                               []byte
	)
	if err := r.Scan(&ev.ID, &ev.Type, &ev.Severity, t.d.TimeDest(&ev.OccurredAt), &user, &actor, &ip, &country, &city,
		&asn, &device, &score, &reasons, &incidentID, &data, &account); err != nil {
		return store.SecurityEvent{}, err
	}
	ev.UserID, ev.ActorID, ev.IP, ev.Country, ev.City, ev.Device, ev.IncidentID, ev.Account =
		deref(user), deref(actor), deref(ip), deref(country), deref(city), deref(device), deref(incidentID), deref(account)
	if asn != nil {
		ev.ASN = *asn
	}
	if score != nil {
		s := int(*score)
		ev.Score = &s
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	if err := json.Unmarshal(reasons, &ev.Reasons); err != nil {
		return store.SecurityEvent{}, fmt.Errorf("decode reasons of security event %s: %w", ev.ID, err)
	}
	if len(ev.Reasons) == 0 {
		ev.Reasons = nil
	}
	ev.Data = map[string]any{}
	if err := json.Unmarshal(data, &ev.Data); err != nil {
		return store.SecurityEvent{}, fmt.Errorf("decode data of security event %s: %w", ev.ID, err)
	}
	return ev, nil
}

func (t *Tables) scanSecurityIncident(r sqlrow.Scanner) (store.SecurityIncident, error) {
	var (
		inc                    store.SecurityIncident
		by, note               *string
		resolvedAt, notifiedAt time.Time
	)
	if err := r.Scan(&inc.ID, &inc.Type, &inc.Status, &inc.Key, t.d.TimeDest(&inc.FirstSeen), t.d.TimeDest(&inc.LastSeen),
		t.d.ListDest(&inc.IPs), t.d.ListDest(&inc.UserIDs), &inc.EventCount, t.d.NullTimeDest(&resolvedAt), &by, &note,
		&inc.Severity, t.d.NullTimeDest(&notifiedAt), &inc.Escalations); err != nil {
		return store.SecurityIncident{}, err
	}
	if !notifiedAt.IsZero() {
		inc.NotifiedAt = notifiedAt.UTC()
	}
	inc.ResolvedBy, inc.Note = deref(by), deref(note)
	inc.FirstSeen, inc.LastSeen = inc.FirstSeen.UTC(), inc.LastSeen.UTC()
	if !resolvedAt.IsZero() {
		inc.ResolvedAt = resolvedAt.UTC()
	}
	if len(inc.IPs) == 0 {
		inc.IPs = nil
	}
	if len(inc.UserIDs) == 0 {
		inc.UserIDs = nil
	}
	return inc, nil
}

// optionalText reports whether every s is "" or storable text.
func optionalText(ss ...string) bool {
	for _, s := range ss {
		if s != "" && !sqlrow.Storable(s) {
			return false
		}
	}
	return true
}

// CreateSecurityEvent implements store.SecurityStore.
func (t *Tables) CreateSecurityEvent(ctx context.Context, ev store.SecurityEvent) error {
	switch {
	case !sqlrow.Storable(ev.ID) || !sqlrow.Storable(ev.Type):
		return t.errorf("create security event: ID and Type are required (UTF-8 text without NUL)")
	case !validSeverity(ev.Severity):
		return t.errorf("create security event %q: unknown severity %q", ev.ID, ev.Severity)
	case !optionalText(ev.UserID, ev.Account, ev.ActorID, ev.IP, ev.Country, ev.City, ev.Device, ev.IncidentID):
		return t.errorf("create security event %q: %w", ev.ID, store.ErrInvalidText)
	case ev.ASN < 0 || ev.Score != nil && (*ev.Score < 0 || *ev.Score > 100):
		return t.errorf("create security event %q: ASN must be positive and Score within 0–100", ev.ID)
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = t.now()
	}
	reasons := ev.Reasons
	if reasons == nil {
		reasons = []store.SecurityReason{}
	}
	rj, err := json.Marshal(reasons)
	if err != nil {
		return t.errorf("create security event %q: reasons: %w", ev.ID, err)
	}
	data := ev.Data
	if data == nil {
		data = map[string]any{}
	}
	dj, err := json.Marshal(data)
	if err != nil {
		return t.errorf("create security event %q: data: %w", ev.ID, err)
	}
	var asn, score any
	if ev.ASN != 0 {
		asn = ev.ASN
	}
	if ev.Score != nil {
		score = int64(*ev.Score)
	}
	_, err = t.x.Exec(ctx, `INSERT INTO security_events (`+securityEventColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		ev.ID, ev.Type, ev.Severity, t.d.TimeValue(sqlrow.Micro(ev.OccurredAt)), sqlrow.Null(ev.UserID), sqlrow.Null(ev.ActorID),
		sqlrow.Null(ev.IP), sqlrow.Null(ev.Country), sqlrow.Null(ev.City), asn, sqlrow.Null(ev.Device), score,
		string(rj), sqlrow.Null(ev.IncidentID), string(dj), sqlrow.Null(ev.Account))
	if err != nil {
		return t.errorf("create security event %q: %w", ev.ID, t.d.MapRefErr(err))
	}
	return nil
}

// ListSecurityEvents implements store.SecurityStore by keyset cursor on
// (occurred_at, id), from the primary.
func (t *Tables) ListSecurityEvents(ctx context.Context, f store.SecurityEventFilter) ([]store.SecurityEvent, string, error) {
	limit := sqlrow.PageLimit(f.Limit, store.DefaultSecurityLimit, store.MaxSecurityLimit)
	// Text no row can hold matches nothing (and PostgreSQL would refuse it).
	if !optionalText(f.Type, f.Severity, f.UserID, f.IP, f.IncidentID) {
		return nil, "", nil
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Cursor != "" {
		at, id, err := sqlrow.DecodeKeyCursor(eventCursor, f.Cursor)
		if err != nil {
			return nil, "", t.errorf("list security events: %w", err)
		}
		where = append(where, fmt.Sprintf("(occurred_at, id) < (%s, %s)", arg(t.d.TimeValue(at)), arg(id)))
	}
	for _, c := range [...]struct{ col, v string }{
		{"type", f.Type}, {"severity", f.Severity}, {"user_id", f.UserID}, {"ip", f.IP}, {"incident_id", f.IncidentID},
	} {
		if c.v != "" {
			where = append(where, c.col+" = "+arg(c.v))
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "occurred_at >= "+arg(t.d.TimeValue(sqlrow.Micro(f.Since))))
	}
	if !f.Until.IsZero() {
		where = append(where, "occurred_at < "+arg(t.d.TimeValue(sqlrow.Micro(f.Until))))
	}
	q := "SELECT " + securityEventColumns + " FROM security_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY occurred_at DESC, id DESC LIMIT " + arg(limit+1)
	list, err := rows(ctx, t, Primary, t.scanSecurityEvent, q, args...)
	if err != nil {
		return nil, "", t.errorf("list security events: %w", err)
	}
	if len(list) <= limit {
		return list, "", nil
	}
	list = list[:limit]
	last := list[limit-1]
	return list, sqlrow.EncodeKeyCursor(eventCursor, last.OccurredAt, last.ID), nil
}

// matchWhere returns the conditions selecting the events m matches, with
// their arguments appended through arg.
func (t *Tables) matchWhere(m store.SecurityEventMatch, arg func(any) string) (where []string, err error) {
	col, ok := securityFields[m.Field]
	if !ok {
		return nil, fmt.Errorf("unknown field %q", m.Field)
	}
	if !sqlrow.Storable(m.Value) {
		return nil, fmt.Errorf("the value of %s is required (UTF-8 text without NUL)", col)
	}
	where = append(where, col+" = "+arg(m.Value))
	if !m.Since.IsZero() {
		where = append(where, "occurred_at >= "+arg(t.d.TimeValue(sqlrow.Micro(m.Since))))
	}
	if len(m.Types) > 0 {
		ps := make([]string, 0, len(m.Types))
		for _, typ := range m.Types {
			if !sqlrow.Storable(typ) {
				return nil, fmt.Errorf("type %q: %w", typ, store.ErrInvalidText)
			}
			ps = append(ps, arg(typ))
		}
		where = append(where, "type IN ("+strings.Join(ps, ", ")+")")
	}
	return where, nil
}

// DistinctSecurityEventValues implements store.SecurityStore.
func (t *Tables) DistinctSecurityEventValues(ctx context.Context, m store.SecurityEventMatch, field store.SecurityField, limit int) ([]string, error) {
	col, ok := securityFields[field]
	if !ok {
		return nil, t.errorf("distinct security event values: unknown field %q", field)
	}
	if limit <= 0 {
		return nil, nil
	}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	where, err := t.matchWhere(m, arg)
	if err != nil {
		return nil, t.errorf("distinct security event values: %w", err)
	}
	q := "SELECT DISTINCT " + col + " FROM security_events WHERE " + strings.Join(where, " AND ") +
		" AND " + col + " IS NOT NULL LIMIT " + arg(limit)
	vals, err := rows(ctx, t, Primary, func(r sqlrow.Scanner) (string, error) {
		var v string
		err := r.Scan(&v)
		return v, err
	}, q, args...)
	if err != nil {
		return nil, t.errorf("distinct security event values: %w", err)
	}
	return vals, nil
}

// AttachSecurityEvents implements store.SecurityStore.
func (t *Tables) AttachSecurityEvents(ctx context.Context, incidentID string, m store.SecurityEventMatch) (int, error) {
	if !sqlrow.Storable(incidentID) {
		return 0, t.errorf("attach security events to %q: %w", incidentID, store.ErrNotFound)
	}
	args := []any{incidentID}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	where, err := t.matchWhere(m, arg)
	if err != nil {
		return 0, t.errorf("attach security events to %q: %w", incidentID, err)
	}
	n, err := t.x.Exec(ctx, "UPDATE security_events SET incident_id = $1 WHERE incident_id IS NULL AND "+
		strings.Join(where, " AND "), args...)
	if err != nil {
		return 0, t.errorf("attach security events to %q: %w", incidentID, t.d.MapRefErr(err))
	}
	return int(n), nil
}

// prepareIncident validates inc and normalises its times and lists.
func prepareIncident(inc store.SecurityIncident) (store.SecurityIncident, error) {
	switch {
	case !sqlrow.Storable(inc.ID) || !sqlrow.Storable(inc.Type) || !sqlrow.Storable(inc.Key):
		return inc, errors.New("ID, Type and Key are required (UTF-8 text without NUL)")
	case inc.Status != store.IncidentOpen && inc.Status != store.IncidentResolved:
		return inc, fmt.Errorf("unknown status %q", inc.Status)
	case (inc.Status == store.IncidentResolved) == inc.ResolvedAt.IsZero():
		return inc, errors.New("a resolved incident, and only one, has ResolvedAt")
	case inc.FirstSeen.IsZero() || inc.LastSeen.IsZero():
		return inc, errors.New("FirstSeen and LastSeen are required")
	case inc.EventCount < 0 || inc.Escalations < 0:
		return inc, errors.New("negative EventCount or Escalations")
	case inc.Severity != "" && !validSeverity(inc.Severity):
		return inc, fmt.Errorf("unknown severity %q", inc.Severity)
	case !optionalText(inc.ResolvedBy, inc.Note):
		return inc, store.ErrInvalidText
	}
	for _, l := range [][]string{inc.IPs, inc.UserIDs} {
		for _, v := range l {
			if !sqlrow.Storable(v) {
				return inc, errors.New("IPs and UserIDs must be non-empty UTF-8 text without NUL")
			}
		}
	}
	if inc.IPs == nil {
		inc.IPs = []string{}
	}
	if inc.UserIDs == nil {
		inc.UserIDs = []string{}
	}
	if inc.Severity == "" {
		inc.Severity = store.SeverityMedium
	}
	inc.FirstSeen, inc.LastSeen = sqlrow.Micro(inc.FirstSeen), sqlrow.Micro(inc.LastSeen)
	if !inc.NotifiedAt.IsZero() {
		inc.NotifiedAt = sqlrow.Micro(inc.NotifiedAt)
	}
	if !inc.ResolvedAt.IsZero() {
		inc.ResolvedAt = sqlrow.Micro(inc.ResolvedAt)
	}
	return inc, nil
}

// OpenSecurityIncident implements store.SecurityStore with INSERT … ON
// CONFLICT DO NOTHING on the partial unique index of open incidents, then
// the open one read FOR UPDATE: should it be resolved in between, the
// insert is tried again.
func (t *Tables) OpenSecurityIncident(ctx context.Context, inc store.SecurityIncident) (store.SecurityIncident, bool, error) {
	inc.Status = store.IncidentOpen
	inc, err := prepareIncident(inc)
	if err != nil {
		return store.SecurityIncident{}, false, t.errorf("open security incident: %w", err)
	}
	tv := t.d.TimeValue
	for range 3 {
		created, err := row(ctx, t, Write, t.scanSecurityIncident, `INSERT INTO security_incidents (`+securityIncidentColumns+`)
			VALUES ($1, $2, 'open', $3, $4, $5, $6, $7, $8, NULL, NULL, NULL, $9, $10, $11)
			ON CONFLICT (type, key) WHERE status = 'open' DO NOTHING RETURNING `+securityIncidentColumns,
			inc.ID, inc.Type, inc.Key, tv(inc.FirstSeen), tv(inc.LastSeen), t.d.ListValue(inc.IPs), t.d.ListValue(inc.UserIDs), inc.EventCount,
			inc.Severity, tv(inc.NotifiedAt), inc.Escalations)
		if err == nil {
			return created, true, nil
		}
		if err = t.d.MapErr(err); !notFound(err) {
			return store.SecurityIncident{}, false, t.errorf("open security incident %q: %w", inc.ID, err)
		}
		open, err := t.FindOpenSecurityIncident(ctx, inc.Type, inc.Key)
		if err == nil {
			return open, false, nil
		}
		if !notFound(err) {
			return store.SecurityIncident{}, false, err
		}
	}
	return store.SecurityIncident{}, false, t.errorf("open security incident %q: %w", inc.ID, store.ErrConflict)
}

// GetSecurityIncident implements store.SecurityStore, reading the primary.
func (t *Tables) GetSecurityIncident(ctx context.Context, id string) (store.SecurityIncident, error) {
	return t.getSecurityIncident(ctx, id, "")
}

// GetSecurityIncidentForUpdate implements store.SecurityStore with SELECT
// … FOR UPDATE where the dialect has it.
func (t *Tables) GetSecurityIncidentForUpdate(ctx context.Context, id string) (store.SecurityIncident, error) {
	return t.getSecurityIncident(ctx, id, t.d.ForUpdate)
}

func (t *Tables) getSecurityIncident(ctx context.Context, id, lock string) (store.SecurityIncident, error) {
	if !sqlrow.Storable(id) {
		return store.SecurityIncident{}, t.errorf("get security incident %q: %w", id, store.ErrNotFound)
	}
	inc, err := row(ctx, t, Primary, t.scanSecurityIncident, "SELECT "+securityIncidentColumns+
		" FROM security_incidents WHERE id = $1"+lock, id)
	if err != nil {
		return store.SecurityIncident{}, t.errorf("get security incident %q: %w", id, t.d.MapErr(err))
	}
	return inc, nil
}

// FindOpenSecurityIncident implements store.SecurityStore.
func (t *Tables) FindOpenSecurityIncident(ctx context.Context, typ, key string) (store.SecurityIncident, error) {
	if !sqlrow.Storable(typ) || !sqlrow.Storable(key) {
		return store.SecurityIncident{}, t.errorf("find open security incident: %w", store.ErrNotFound)
	}
	inc, err := row(ctx, t, Primary, t.scanSecurityIncident, "SELECT "+securityIncidentColumns+
		" FROM security_incidents WHERE type = $1 AND key = $2 AND status = 'open'"+t.d.ForUpdate, typ, key)
	if err != nil {
		return store.SecurityIncident{}, t.errorf("find open %s incident: %w", quote(typ), t.d.MapErr(err))
	}
	return inc, nil
}

// UpdateSecurityIncident implements store.SecurityStore.
func (t *Tables) UpdateSecurityIncident(ctx context.Context, inc store.SecurityIncident) (store.SecurityIncident, error) {
	if !sqlrow.Storable(inc.ID) {
		return store.SecurityIncident{}, t.errorf("update security incident %q: %w", inc.ID, store.ErrNotFound)
	}
	// Type, Key and FirstSeen are not updated: placeholders for the check.
	check := inc
	check.Type, check.Key = "-", "-"
	if check.FirstSeen.IsZero() {
		check.FirstSeen = inc.LastSeen
	}
	inc, err := prepareIncident(check)
	if err != nil {
		return store.SecurityIncident{}, t.errorf("update security incident %q: %w", check.ID, err)
	}
	tv := t.d.TimeValue
	updated, err := row(ctx, t, Write, t.scanSecurityIncident, `UPDATE security_incidents SET
		status = $2, last_seen = $3, ips = $4, user_ids = $5, event_count = $6, resolved_at = $7, resolved_by = $8, note = $9,
		severity = $10, notified_at = $11, escalations = $12
		WHERE id = $1 RETURNING `+securityIncidentColumns,
		inc.ID, inc.Status, tv(inc.LastSeen), t.d.ListValue(inc.IPs), t.d.ListValue(inc.UserIDs), inc.EventCount,
		tv(inc.ResolvedAt), sqlrow.Null(inc.ResolvedBy), sqlrow.Null(inc.Note), inc.Severity, tv(inc.NotifiedAt), inc.Escalations)
	if err != nil {
		return store.SecurityIncident{}, t.errorf("update security incident %q: %w", inc.ID, t.d.MapErr(err))
	}
	return updated, nil
}

// ListSecurityIncidentsToEscalate implements store.SecurityStore, from the
// primary.
func (t *Tables) ListSecurityIncidentsToEscalate(ctx context.Context, before time.Time, limit int) ([]store.SecurityIncident, error) {
	if limit <= 0 {
		return nil, nil
	}
	list, err := rows(ctx, t, Primary, t.scanSecurityIncident, "SELECT "+securityIncidentColumns+
		" FROM security_incidents WHERE status = 'open' AND notified_at IS NOT NULL AND notified_at < $1"+
		" ORDER BY notified_at, id LIMIT $2", t.d.TimeValue(sqlrow.Micro(before)), limit)
	if err != nil {
		return nil, t.errorf("list security incidents to escalate: %w", err)
	}
	return list, nil
}

// ListSecurityIncidents implements store.SecurityStore by keyset cursor on
// (first_seen, id), from the primary.
func (t *Tables) ListSecurityIncidents(ctx context.Context, f store.SecurityIncidentFilter) ([]store.SecurityIncident, string, error) {
	limit := sqlrow.PageLimit(f.Limit, store.DefaultSecurityLimit, store.MaxSecurityLimit)
	if !optionalText(f.Status, f.Type) {
		return nil, "", nil
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Cursor != "" {
		at, id, err := sqlrow.DecodeKeyCursor(incidentCursor, f.Cursor)
		if err != nil {
			return nil, "", t.errorf("list security incidents: %w", err)
		}
		where = append(where, fmt.Sprintf("(first_seen, id) < (%s, %s)", arg(t.d.TimeValue(at)), arg(id)))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(f.Status))
	}
	if f.Type != "" {
		where = append(where, "type = "+arg(f.Type))
	}
	q := "SELECT " + securityIncidentColumns + " FROM security_incidents"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY first_seen DESC, id DESC LIMIT " + arg(limit+1)
	list, err := rows(ctx, t, Primary, t.scanSecurityIncident, q, args...)
	if err != nil {
		return nil, "", t.errorf("list security incidents: %w", err)
	}
	if len(list) <= limit {
		return list, "", nil
	}
	list = list[:limit]
	last := list[limit-1]
	return list, sqlrow.EncodeKeyCursor(incidentCursor, last.FirstSeen, last.ID), nil
}

// Cursor prefixes of the two security listings: one listing's cursor does
// not decode as the other's (nor as another listing's).
const (
	eventCursor    = "se1"
	incidentCursor = "si1"
)
