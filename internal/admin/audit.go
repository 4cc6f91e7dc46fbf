package admin

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// AuditEventView is an entry of the audit trail as the API shows it.
type AuditEventView struct {
	ID         string         `json:"id"`
	OccurredAt string         `json:"occurred_at"`
	Action     string         `json:"action"`
	ActorID    *string        `json:"actor_id"`
	SubjectID  *string        `json:"subject_id"`
	IP         *string        `json:"ip"`
	UserAgent  *string        `json:"user_agent"`
	RequestID  *string        `json:"request_id"`
	Data       map[string]any `json:"data"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func auditView(e store.AuditEvent) AuditEventView {
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	return AuditEventView{
		ID: e.ID, OccurredAt: e.OccurredAt.UTC().Format("2006-01-02T15:04:05.999999Z07:00"), Action: e.Action,
		ActorID: optional(e.ActorID), SubjectID: optional(e.SubjectID), IP: optional(e.IP),
		UserAgent: optional(e.UserAgent), RequestID: optional(e.RequestID), Data: data,
	}
}

// ListAuditEvents returns a page of the audit trail, newest first.
func (s *Service) ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, string, error) {
	return s.d.Store.ListAuditEvents(ctx, f)
}

// listAudit serves GET /v1/admin/audit-events: the audit trail, newest
// first, optionally of one subject or one actor.
func (h *Handlers) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.AuditFilter{SubjectID: q.Get("subject_id"), ActorID: q.Get("actor_id"), Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxAuditLimit {
			return httpapi.Validation(httpapi.FieldError{Field: "limit", Rule: "range", Message: "limit must be between 1 and " + strconv.Itoa(store.MaxAuditLimit) + "."})
		}
		f.Limit = n
	}
	events, next, err := h.Service.ListAuditEvents(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]AuditEventView, 0, len(events))
	for _, e := range events {
		out = append(out, auditView(e))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": out, "next_cursor": next})
}
