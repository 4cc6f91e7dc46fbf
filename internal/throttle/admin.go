package throttle

import (
	"context"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/ratepolicy"
	"github.com/gatehouse/gatehouse/internal/store"
)

// AdminHandlers serves /v1/admin/rate-limits: the policy in force with
// each rule's refusals and most refused keys, and lifting a key's block.
type AdminHandlers struct {
	Admin    auth.Admin // each route needs the permission named in Routes
	Throttle *Throttle
	Audit    interface {
		AppendAuditEvent(ctx context.Context, e store.AuditEvent) error
	}
	Now func() time.Time
}

// Routes mounts the endpoints behind the admin check.
func (h *AdminHandlers) Routes(rt *httpapi.Router) {
	h.Admin.Handle(rt, "GET /v1/admin/rate-limits", "rate-limits:read", h.report)
	h.Admin.Handle(rt, "DELETE /v1/admin/rate-limits/keys/{rule}/{key}", "rate-limits:write", h.lift)
}

// RuleReport is a rule of the policy in force with its refusals.
type RuleReport struct {
	Name        string     `json:"name"`
	Routes      []string   `json:"routes"`
	Key         string     `json:"key"`
	Limit       string     `json:"limit"`
	Burst       int        `json:"burst"`
	Penalty     bool       `json:"penalty"`
	Silent      bool       `json:"silent"`
	Refusals1h  int64      `json:"refusals_1h"`
	Refusals24h int64      `json:"refusals_24h"`
	TopKeys     []KeyCount `json:"top_keys"`
}

// topKeys is how many of a rule's most refused keys the report lists.
const topKeys = 10

func (h *AdminHandlers) report(w http.ResponseWriter, r *http.Request) error {
	pol := h.Throttle.d.Policy()
	out := make([]RuleReport, 0, len(pol.Rules))
	for i := range pol.Rules {
		rule := &pol.Rules[i]
		st := RuleStats{TopKeys: []KeyCount{}}
		if h.Throttle.d.Stats != nil {
			var err error
			if st, err = h.Throttle.d.Stats.Report(r.Context(), rule.Name, topKeys); err != nil {
				return err
			}
		}
		out = append(out, RuleReport{
			Name: rule.Name, Routes: routeNames(rule.Routes), Key: rule.KeyString(),
			Limit: ratepolicy.FormatLimit(rule.Limit), Burst: rule.Limit.Burst, Penalty: rule.Penalty, Silent: rule.Silent,
			Refusals1h: st.Refusals1h, Refusals24h: st.Refusals24h, TopKeys: st.TopKeys,
		})
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"source": pol.Source, "rules": out})
}

func (h *AdminHandlers) lift(w http.ResponseWriter, r *http.Request) error {
	ruleName, key := r.PathValue("rule"), r.PathValue("key")
	pol := h.Throttle.d.Policy()
	if pol.Rule(ruleName) == nil && ruleName != BlockRule {
		return httpapi.NewProblem(http.StatusNotFound, "not_found", "The policy in force has no rule of this name.")
	}
	if key == "" {
		return httpapi.Validation(httpapi.FieldError{Field: "key", Rule: "required", Message: "A key is required."})
	}
	if err := h.Throttle.d.Limiter.Lift(r.Context(), ruleName+":"+key); err != nil {
		return err
	}
	p, _ := auth.FromContext(r.Context())
	m := httpapi.MetaOf(r, "")
	if err := h.Audit.AppendAuditEvent(r.Context(), store.AuditEvent{
		OccurredAt: h.Now(), ActorID: p.UserID, Action: "rate_limit.lifted",
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
		Data: map[string]any{"rule": ruleName, "key": key},
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func routeNames(routes []ratepolicy.Route) []string {
	out := make([]string, 0, len(routes))
	for _, rt := range routes {
		out = append(out, rt.String())
	}
	return out
}
