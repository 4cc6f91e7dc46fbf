package webhook

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Handlers serves /v1/admin/webhooks.
type Handlers struct {
	Admin   auth.Admin // each route needs the permission named in Routes
	Service *Service
}

// Routes mounts the endpoints, each behind the admin check.
func (h *Handlers) Routes(rt *httpapi.Router) {
	h.Admin.Handle(rt, "GET /v1/admin/webhooks", "webhooks:read", h.list)
	h.Admin.Handle(rt, "POST /v1/admin/webhooks", "webhooks:write", h.create)
	h.Admin.Handle(rt, "GET /v1/admin/webhooks/{id}", "webhooks:read", h.get)
	h.Admin.Handle(rt, "PATCH /v1/admin/webhooks/{id}", "webhooks:write", h.update)
	h.Admin.Handle(rt, "DELETE /v1/admin/webhooks/{id}", "webhooks:write", h.delete)
	h.Admin.Handle(rt, "POST /v1/admin/webhooks/{id}/rotate-secret", "webhooks:write", h.rotateSecret)
	h.Admin.Handle(rt, "POST /v1/admin/webhooks/{id}/test", "webhooks:write", h.test)
	h.Admin.Handle(rt, "GET /v1/admin/webhooks/{id}/deliveries", "webhooks:read", h.deliveries)
	h.Admin.Handle(rt, "POST /v1/admin/webhooks/{id}/replay", "webhooks:write", h.replay)
	h.Admin.Handle(rt, "GET /v1/admin/webhooks/{id}/stats", "webhooks:read", h.stats)
	h.Admin.Handle(rt, "POST /v1/admin/webhooks/deliveries/{id}/retry", "webhooks:write", h.retry)
}

// EndpointView is an endpoint as the admin API shows it: never its
// secrets (the create answer adds the new one, once).
type EndpointView struct {
	ID             string     `json:"id"`
	URL            string     `json:"url"`
	Events         []string   `json:"events"`
	Description    string     `json:"description"`
	OrganizationID *string    `json:"organization_id"`
	Enabled        bool       `json:"enabled"`
	DisabledReason *string    `json:"disabled_reason"` // admin, gone or failing; null while enabled
	FailingSince   *time.Time `json:"failing_since"`
	// PreviousSecretExpiresAt is when the secret replaced by the last
	// rotation stops signing; null when it has.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// ViewOf is e's view. A previous secret whose overlap ended by now is
// not shown.
func ViewOf(e store.WebhookEndpoint, now time.Time) EndpointView {
	ev := e.Events
	if ev == nil {
		ev = []string{}
	}
	v := EndpointView{
		ID: e.ID, URL: e.URL, Events: ev, Description: e.Description, OrganizationID: nullString(e.OrganizationID),
		Enabled: e.Enabled, DisabledReason: nullString(e.DisabledReason), FailingSince: nullTime(e.FailingSince),
		CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC(),
	}
	if e.PreviousSecretExpiresAt.After(now) {
		v.PreviousSecretExpiresAt = nullTime(e.PreviousSecretExpiresAt)
	}
	return v
}

// createdView is the answer of POST /v1/admin/webhooks: the endpoint and
// its signing secret, shown this once.
type createdView struct {
	EndpointView
	Secret string `json:"secret"`
}

// DeliveryView is a delivery as the admin API shows it.
type DeliveryView struct {
	ID         string        `json:"id"`
	EndpointID string        `json:"endpoint_id"`
	EventID    string        `json:"event_id"`
	EventType  string        `json:"event_type"`
	Status     string        `json:"status"`
	Attempts   []AttemptView `json:"attempts"`
	// NextAttemptAt is when a pending delivery is tried next; null unless
	// pending.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
}

// AttemptView is one attempt of a delivery.
type AttemptView struct {
	At         time.Time `json:"at"`
	StatusCode *int      `json:"status_code"` // null: no HTTP answer
	LatencyMS  int64     `json:"latency_ms"`
	Error      string    `json:"error"`
	Response   string    `json:"response"` // the first 4 KiB of the body
}

// DeliveryViewOf is d's view.
func DeliveryViewOf(d store.WebhookDelivery) DeliveryView {
	v := DeliveryView{
		ID: d.ID, EndpointID: d.EndpointID, EventID: d.EventID, EventType: d.EventType, Status: d.Status,
		Attempts: make([]AttemptView, 0, len(d.Attempts)), CreatedAt: d.CreatedAt.UTC(),
	}
	if d.Status == store.DeliveryPending {
		v.NextAttemptAt = nullTime(d.NextAttemptAt)
	}
	for _, a := range d.Attempts {
		av := AttemptView{At: a.At.UTC(), LatencyMS: a.Latency.Milliseconds(), Error: a.Error, Response: a.Response}
		if a.StatusCode != 0 {
			code := a.StatusCode
			av.StatusCode = &code
		}
		v.Attempts = append(v.Attempts, av)
	}
	return v
}

func (h *Handlers) now() time.Time { return h.Service.now() }

func (h *Handlers) list(w http.ResponseWriter, r *http.Request) error {
	list, err := h.Service.ListEndpoints(r.Context())
	if err != nil {
		return err
	}
	now := h.now()
	out := make([]EndpointView, 0, len(list))
	for _, e := range list {
		out = append(out, ViewOf(e, now))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": out})
}

func (h *Handlers) create(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		URL            string   `json:"url"`
		Events         []string `json:"events"`
		Description    string   `json:"description"`
		OrganizationID string   `json:"organization_id"`
		Enabled        *bool    `json:"enabled"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	e, secret, err := h.Service.CreateEndpoint(r.Context(), auth.RequestMeta(r), EndpointInput{
		URL: in.URL, Events: in.Events, Description: in.Description, OrganizationID: in.OrganizationID, Enabled: in.Enabled,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/admin/webhooks/"+e.ID)
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusCreated, createdView{EndpointView: ViewOf(e, h.now()), Secret: secret})
}

func (h *Handlers) get(w http.ResponseWriter, r *http.Request) error {
	e, err := h.Service.GetEndpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ViewOf(e, h.now()))
}

func (h *Handlers) update(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		URL         *string   `json:"url"`
		Events      *[]string `json:"events"`
		Description *string   `json:"description"`
		Enabled     *bool     `json:"enabled"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	e, err := h.Service.UpdateEndpoint(r.Context(), auth.RequestMeta(r), r.PathValue("id"), EndpointPatch{
		URL: in.URL, Events: in.Events, Description: in.Description, Enabled: in.Enabled,
	})
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ViewOf(e, h.now()))
}

func (h *Handlers) delete(w http.ResponseWriter, r *http.Request) error {
	if err := h.Service.DeleteEndpoint(r.Context(), auth.RequestMeta(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	secret, err := h.Service.RotateSecret(r.Context(), auth.RequestMeta(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"secret": secret})
}

func (h *Handlers) test(w http.ResponseWriter, r *http.Request) error {
	d, err := h.Service.SendTest(r.Context(), auth.RequestMeta(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusAccepted, DeliveryViewOf(d))
}

func (h *Handlers) deliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.WebhookDeliveryFilter{EndpointID: r.PathValue("id"), Status: q.Get("status"), EventType: q.Get("event_type"), Cursor: q.Get("cursor")}
	// Text no backend can take (NUL, invalid UTF-8) never gets here: the
	// router refuses it in any query parameter (422, rule text).
	var errs []httpapi.FieldError
	switch f.Status {
	case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
	default:
		errs = append(errs, httpapi.FieldError{Field: "status", Rule: "enum", Message: "status must be pending, delivered or failed."})
	}
	if len(f.EventType) > 200 {
		errs = append(errs, httpapi.FieldError{Field: "event_type", Rule: "max", Message: "event_type is at most 200 bytes."})
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			errs = append(errs, httpapi.FieldError{Field: "since", Rule: "date_time", Message: "since must be an RFC 3339 time, such as 2026-12-01T00:00:00Z."})
		}
		f.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxDeliveryLimit {
			errs = append(errs, httpapi.FieldError{Field: "limit", Rule: "range", Message: "limit must be between 1 and 200."})
		}
		f.Limit = n
	}
	if len(errs) > 0 {
		return httpapi.Validation(errs...)
	}
	list, next, err := h.Service.Deliveries(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]DeliveryView, 0, len(list))
	for _, d := range list {
		out = append(out, DeliveryViewOf(d))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": out, "next_cursor": next})
}

func (h *Handlers) retry(w http.ResponseWriter, r *http.Request) error {
	d, err := h.Service.RetryDelivery(r.Context(), auth.RequestMeta(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusAccepted, DeliveryViewOf(d))
}

func (h *Handlers) replay(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Since  time.Time `json:"since"`
		Until  time.Time `json:"until"`
		Status string    `json:"status"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	n, err := h.Service.Replay(r.Context(), auth.RequestMeta(r), r.PathValue("id"), ReplayInput{Since: in.Since, Until: in.Until, Status: in.Status})
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusAccepted, map[string]int{"replayed": n})
}

// windowView is WindowStats as GET /v1/admin/webhooks/{id}/stats shows
// them; estimates that have nothing to estimate from are null.
type windowView struct {
	Since             time.Time      `json:"since"`
	Deliveries        int            `json:"deliveries"`
	Delivered         int            `json:"delivered"`
	Failed            int            `json:"failed"`
	Pending           int            `json:"pending"`
	SuccessRate       *float64       `json:"success_rate"`
	Attempts          int            `json:"attempts"`
	AttemptsSucceeded int            `json:"attempts_succeeded"`
	LatencyP50MS      *int64         `json:"latency_p50_ms"`
	LatencyP95MS      *int64         `json:"latency_p95_ms"`
	FailuresByStatus  map[string]int `json:"failures_by_status"`
}

func windowViewOf(w WindowStats) windowView {
	v := windowView{
		Since: w.Since.UTC(), Deliveries: w.Deliveries, Delivered: w.Delivered, Failed: w.Failed, Pending: w.Pending,
		Attempts: w.Attempts, AttemptsSucceeded: w.AttemptsSucceeded, FailuresByStatus: make(map[string]int, len(w.FailuresByStatus)),
	}
	if w.SuccessRate >= 0 {
		rate := w.SuccessRate
		v.SuccessRate = &rate
	}
	ms := func(d time.Duration) *int64 {
		if d < 0 {
			return nil
		}
		n := d.Milliseconds()
		return &n
	}
	v.LatencyP50MS, v.LatencyP95MS = ms(w.LatencyP50), ms(w.LatencyP95)
	for code, n := range w.FailuresByStatus {
		v.FailuresByStatus[strconv.Itoa(code)] = n
	}
	return v
}

func (h *Handlers) stats(w http.ResponseWriter, r *http.Request) error {
	st, err := h.Service.Stats(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]windowView{"24h": windowViewOf(st.Day), "7d": windowViewOf(st.Week)})
}
