package security

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Handlers serves /v1/admin/security-events and
// /v1/admin/security-incidents.
type Handlers struct {
	Admin   auth.Admin // each route needs the permission named in Routes
	Service *Service
}

// Routes mounts the endpoints, each behind the admin check.
func (h *Handlers) Routes(rt *httpapi.Router) {
	h.Admin.Handle(rt, "GET /v1/admin/security-events", "security:read", h.events)
	h.Admin.Handle(rt, "GET /v1/admin/security-incidents", "security:read", h.incidents)
	h.Admin.Handle(rt, "GET /v1/admin/security-incidents/{id}", "security:read", h.incident)
	h.Admin.Handle(rt, "POST /v1/admin/security-incidents/{id}/resolve", "security:write", h.resolve)
}

// Location is where an event came from, as geolocation placed it.
type Location struct {
	Country string `json:"country,omitempty"`
	City    string `json:"city,omitempty"`
}

// EventView is a security event as the admin API shows it. Absent values
// are null.
type EventView struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Severity   string    `json:"severity"`
	OccurredAt time.Time `json:"occurred_at"`
	UserID     *string   `json:"user_id"`
	ActorID    *string   `json:"actor_id"`
	IP         *string   `json:"ip"`
	Location   *Location `json:"location"`
	ASN        *int64    `json:"asn"`
	Device     *string   `json:"device"`
	Score      *int      `json:"score"`
	// Reasons are the codes of the score, with what each added.
	Reasons    []store.SecurityReason `json:"reasons"`
	IncidentID *string                `json:"incident_id"`
	// Data is what the type adds: an automated response's rule and action,
	// a lock's duration, a session's ID …
	Data map[string]any `json:"data"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// EventViewOf is ev's view.
func EventViewOf(ev store.SecurityEvent) EventView {
	v := EventView{
		ID: ev.ID, Type: ev.Type, Severity: ev.Severity, OccurredAt: ev.OccurredAt.UTC(),
		UserID: optional(ev.UserID), ActorID: optional(ev.ActorID), IP: optional(ev.IP), Device: optional(ev.Device),
		Score: ev.Score, Reasons: ev.Reasons, IncidentID: optional(ev.IncidentID), Data: ev.Data,
	}
	if v.Data == nil {
		v.Data = map[string]any{}
	}
	if ev.Country != "" || ev.City != "" {
		v.Location = &Location{Country: ev.Country, City: ev.City}
	}
	if ev.ASN != 0 {
		asn := ev.ASN
		v.ASN = &asn
	}
	if v.Reasons == nil {
		v.Reasons = []store.SecurityReason{}
	}
	return v
}

// IncidentView is a security incident as the admin API shows it.
type IncidentView struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Status     string    `json:"status"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	IPs        []string  `json:"ips"`
	UserIDs    []string  `json:"user_ids"`
	EventCount int       `json:"event_count"`
	Severity   string    `json:"severity"`
	// NotifiedAt is when administrators were last told (null: never, the
	// incident being below the alert severity), Escalations how many
	// reminders followed.
	NotifiedAt  *time.Time `json:"notified_at"`
	Escalations int        `json:"escalations"`
	ResolvedAt  *time.Time `json:"resolved_at"`
	ResolvedBy  *string    `json:"resolved_by"`
	Note        *string    `json:"note"`
}

// IncidentViewOf is inc's view.
func IncidentViewOf(inc store.SecurityIncident) IncidentView {
	v := IncidentView{
		ID: inc.ID, Type: inc.Type, Status: inc.Status, FirstSeen: inc.FirstSeen.UTC(), LastSeen: inc.LastSeen.UTC(),
		IPs: inc.IPs, UserIDs: inc.UserIDs, EventCount: inc.EventCount, Severity: inc.Severity, Escalations: inc.Escalations,
		ResolvedBy: optional(inc.ResolvedBy), Note: optional(inc.Note),
	}
	if !inc.NotifiedAt.IsZero() {
		at := inc.NotifiedAt.UTC()
		v.NotifiedAt = &at
	}
	if !inc.ResolvedAt.IsZero() {
		at := inc.ResolvedAt.UTC()
		v.ResolvedAt = &at
	}
	if v.IPs == nil {
		v.IPs = []string{}
	}
	if v.UserIDs == nil {
		v.UserIDs = []string{}
	}
	return v
}

// maxFilterLen bounds the free-text filters.
const maxFilterLen = 200

// pageQuery reads cursor and limit.
func pageQuery(r *http.Request, errs *[]httpapi.FieldError) (cursor string, limit int) {
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxSecurityLimit {
			*errs = append(*errs, httpapi.FieldError{Field: "limit", Rule: "range", Message: "limit must be between 1 and 200."})
		}
		limit = n
	}
	return q.Get("cursor"), limit
}

func timeQuery(r *http.Request, name string, errs *[]httpapi.FieldError) time.Time {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		*errs = append(*errs, httpapi.FieldError{Field: name, Rule: "date_time", Message: name + " must be an RFC 3339 time, such as 2026-12-01T00:00:00Z."})
	}
	return t
}

func (h *Handlers) events(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	// Text no backend can take (NUL, invalid UTF-8) never gets here: the
	// router refuses it in any query parameter.
	f := store.SecurityEventFilter{Type: q.Get("type"), Severity: q.Get("severity"), UserID: q.Get("user_id"), IP: q.Get("ip")}
	var errs []httpapi.FieldError
	if f.Severity != "" && !ValidSeverity(f.Severity) {
		errs = append(errs, httpapi.FieldError{Field: "severity", Rule: "enum", Message: "severity must be low, medium, high or critical."})
	}
	for name, v := range map[string]string{"type": f.Type, "user_id": f.UserID, "ip": f.IP} {
		if len(v) > maxFilterLen {
			errs = append(errs, httpapi.FieldError{Field: name, Rule: "max", Message: name + " is at most 200 bytes."})
		}
	}
	f.Since, f.Until = timeQuery(r, "since", &errs), timeQuery(r, "until", &errs)
	f.Cursor, f.Limit = pageQuery(r, &errs)
	if len(errs) > 0 {
		return httpapi.Validation(errs...)
	}
	list, next, err := h.Service.Events(r.Context(), f)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": eventViews(list), "next_cursor": next})
}

func eventViews(list []store.SecurityEvent) []EventView {
	out := make([]EventView, 0, len(list))
	for _, ev := range list {
		out = append(out, EventViewOf(ev))
	}
	return out
}

func (h *Handlers) incidents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.SecurityIncidentFilter{Status: q.Get("status"), Type: q.Get("type")}
	var errs []httpapi.FieldError
	switch f.Status {
	case "", store.IncidentOpen, store.IncidentResolved:
	default:
		errs = append(errs, httpapi.FieldError{Field: "status", Rule: "enum", Message: "status must be open or resolved."})
	}
	if len(f.Type) > maxFilterLen {
		errs = append(errs, httpapi.FieldError{Field: "type", Rule: "max", Message: "type is at most 200 bytes."})
	}
	f.Cursor, f.Limit = pageQuery(r, &errs)
	if len(errs) > 0 {
		return httpapi.Validation(errs...)
	}
	list, next, err := h.Service.Incidents(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]IncidentView, 0, len(list))
	for _, inc := range list {
		out = append(out, IncidentViewOf(inc))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"incidents": out, "next_cursor": next})
}

// IncidentDetail is an incident with a page of its events, newest first;
// next_cursor pages on through them (?cursor=), "" on the last page.
type IncidentDetail struct {
	IncidentView
	Events     []EventView `json:"events"`
	NextCursor string      `json:"next_cursor"`
}

func (h *Handlers) incident(w http.ResponseWriter, r *http.Request) error {
	inc, events, next, err := h.Service.Incident(r.Context(), r.PathValue("id"), r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, IncidentDetail{IncidentViewOf(inc), eventViews(events), next})
}

// maxNote bounds a resolution's note.
const maxNote = 2000

func (h *Handlers) resolve(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Note string `json:"note"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	if len(in.Note) > maxNote {
		return httpapi.Validation(httpapi.FieldError{Field: "note", Rule: "max", Message: "note is at most 2000 bytes."})
	}
	p, _ := auth.FromContext(r.Context())
	m := httpapi.MetaOf(r, "")
	m.ActorID = p.UserID
	inc, err := h.Service.Resolve(r.Context(), r.PathValue("id"), in.Note, m)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, IncidentViewOf(inc))
}
