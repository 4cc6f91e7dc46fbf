package apikey

import (
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Handlers serve the API key and service account routes.
type Handlers struct {
	Service *Service
	// Authn authenticates /v1/me/api-keys (the API key Authenticator, so
	// that a key's own caller is recognised and refused where it must be).
	Authn auth.Authenticator
	// Admin guards /v1/admin/service-accounts.
	Admin auth.Admin
}

// Routes mounts every route on rt.
func (h *Handlers) Routes(rt *httpapi.Router) {
	rt.Handle("POST /v1/me/api-keys", auth.Require(h.Authn, h.createMine))
	rt.Handle("GET /v1/me/api-keys", auth.Require(h.Authn, h.listMine))
	rt.Handle("DELETE /v1/me/api-keys/{id}", auth.Require(h.Authn, h.revokeMine))
	rt.Handle("POST /v1/me/api-keys/{id}/rotate", auth.Require(h.Authn, h.rotateMine))
	rt.Handle("GET /v1/me/api-keys/{id}/usage", auth.Require(h.Authn, h.usageMine))
	rt.Handle("POST /v1/api-keys/leaked", h.leaked)

	const read, write = "service-accounts:read", "service-accounts:write"
	h.Admin.Handle(rt, "POST /v1/admin/service-accounts", write, h.createSA)
	h.Admin.Handle(rt, "GET /v1/admin/service-accounts", read, h.listSA)
	h.Admin.Handle(rt, "GET /v1/admin/service-accounts/{id}", read, h.getSA)
	h.Admin.Handle(rt, "POST /v1/admin/service-accounts/{id}/keys", write, h.createSAKey)
	h.Admin.Handle(rt, "GET /v1/admin/service-accounts/{id}/keys", read, h.listSAKeys)
	h.Admin.Handle(rt, "DELETE /v1/admin/service-accounts/{id}/keys/{key_id}", write, h.revokeSAKey)
	h.Admin.Handle(rt, "POST /v1/admin/service-accounts/{id}/keys/{key_id}/rotate", write, h.rotateSAKey)
	h.Admin.Handle(rt, "GET /v1/admin/service-accounts/{id}/keys/{key_id}/usage", read, h.usageSAKey)
}

// KeyView is a key as the API shows it (never its secret).
type KeyView struct {
	ID            string     `json:"id"`
	Kind          string     `json:"kind"`
	Prefix        string     `json:"prefix"`
	Name          string     `json:"name"`
	Permissions   []string   `json:"permissions,omitempty"`
	AllowedCIDRs  []string   `json:"allowed_cidrs"`
	RateLimitTier string     `json:"rate_limit_tier,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     *time.Time `json:"expires_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
	LastUsedAt    *time.Time `json:"last_used_at"`
	LastUsedIP    string     `json:"last_used_ip,omitempty"`
	RotatedFrom   string     `json:"rotated_from,omitempty"`
}

// CreatedView is a new key with its secret, shown only in this answer.
type CreatedView struct {
	KeyView
	Key string `json:"key"`
}

// KeyList is the answer of a key listing.
type KeyList struct {
	APIKeys []KeyView `json:"api_keys"`
}

// UsageDay is one day of a key's use.
type UsageDay struct {
	Day      string `json:"day"` // YYYY-MM-DD (UTC)
	Requests int64  `json:"requests"`
	Refusals int64  `json:"refusals"`
	LastIP   string `json:"last_ip,omitempty"`
}

// UsageView is the answer of GET …/usage.
type UsageView struct {
	KeyID string     `json:"key_id"`
	Days  []UsageDay `json:"days"`
}

// ServiceAccountView is a service account as the API shows it.
type ServiceAccountView struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Description    string     `json:"description,omitempty"`
	OrganizationID string     `json:"organization_id,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	CreatedBy      string     `json:"created_by,omitempty"`
	Roles          []RoleView `json:"roles,omitempty"`
}

// RoleView names a role granted to a service account.
type RoleView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ServiceAccountList is the answer of GET /v1/admin/service-accounts.
type ServiceAccountList struct {
	ServiceAccounts []ServiceAccountView `json:"service_accounts"`
}

// RotateInput is the body of a rotation (all optional).
type RotateInput struct {
	Overlap string `json:"overlap,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func keyView(k store.APIKey) KeyView {
	v := KeyView{ID: k.ID, Kind: k.Kind, Prefix: k.Prefix, Name: k.Name, Permissions: k.Permissions,
		AllowedCIDRs: k.AllowedCIDRs, RateLimitTier: k.RateLimitTier, CreatedAt: k.CreatedAt,
		ExpiresAt: timePtr(k.ExpiresAt), RevokedAt: timePtr(k.RevokedAt), LastUsedAt: timePtr(k.LastUsedAt),
		LastUsedIP: k.LastUsedIP, RotatedFrom: k.RotatedFrom}
	if v.AllowedCIDRs == nil {
		v.AllowedCIDRs = []string{}
	}
	if k.Kind == store.APIKeyPersonal && v.Permissions == nil {
		v.Permissions = []string{}
	}
	return v
}

func keyList(keys []store.APIKey) KeyList {
	out := KeyList{APIKeys: make([]KeyView, len(keys))}
	for i, k := range keys {
		out.APIKeys[i] = keyView(k)
	}
	return out
}

func saView(sa store.ServiceAccount, roles []store.Role) ServiceAccountView {
	v := ServiceAccountView{ID: sa.ID, Name: sa.Name, Description: sa.Description, OrganizationID: sa.OrganizationID,
		CreatedAt: sa.CreatedAt, CreatedBy: sa.CreatedBy}
	for _, r := range roles {
		v.Roles = append(v.Roles, RoleView{ID: r.ID, Name: r.Name})
	}
	return v
}

func usageView(id string, rows []store.APIKeyUsage) UsageView {
	out := UsageView{KeyID: id, Days: make([]UsageDay, len(rows))}
	for i, u := range rows {
		out.Days[i] = UsageDay{Day: u.Day.UTC().Format(time.DateOnly), Requests: u.Requests, Refusals: u.Refusals, LastIP: u.LastIP}
	}
	return out
}

// person returns the caller, refusing one authenticated with an API key.
func person(r *http.Request) (auth.Principal, error) {
	p, _ := auth.FromContext(r.Context())
	if p.APIKeyID != "" {
		return p, ErrKeyCaller
	}
	return p, nil
}

func (h *Handlers) createMine(w http.ResponseWriter, r *http.Request) error {
	p, err := person(r)
	if err != nil {
		return err
	}
	var in KeyInput
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	c, err := h.Service.CreatePersonal(r.Context(), auth.RequestMeta(r), p.UserID, in)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, CreatedView{KeyView: keyView(c.Key), Key: c.Secret})
}

func (h *Handlers) listMine(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	keys, err := h.Service.List(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, keyList(keys))
}

func (h *Handlers) revokeMine(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	if err := h.Service.Revoke(r.Context(), auth.RequestMeta(r), p.UserID, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) rotate(w http.ResponseWriter, r *http.Request, ownerID, id string) error {
	var in RotateInput
	if r.ContentLength != 0 {
		if err := httpapi.DecodeJSON(r, &in); err != nil {
			return err
		}
	}
	overlap, err := ParseOverlap(in.Overlap)
	if err != nil {
		return err
	}
	c, err := h.Service.Rotate(r.Context(), auth.RequestMeta(r), ownerID, id, overlap)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, CreatedView{KeyView: keyView(c.Key), Key: c.Secret})
}

func (h *Handlers) rotateMine(w http.ResponseWriter, r *http.Request) error {
	p, err := person(r)
	if err != nil {
		return err
	}
	return h.rotate(w, r, p.UserID, r.PathValue("id"))
}

func (h *Handlers) usageMine(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	rows, err := h.Service.Usage(r.Context(), p.UserID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, usageView(r.PathValue("id"), rows))
}

func (h *Handlers) createSA(w http.ResponseWriter, r *http.Request) error {
	var in ServiceAccountInput
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	out, err := h.Service.CreateServiceAccount(r.Context(), auth.RequestMeta(r), in)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, saView(out.Account, out.Roles))
}

func (h *Handlers) listSA(w http.ResponseWriter, r *http.Request) error {
	list, err := h.Service.ListServiceAccounts(r.Context(), r.URL.Query().Get("organization_id"))
	if err != nil {
		return err
	}
	out := ServiceAccountList{ServiceAccounts: make([]ServiceAccountView, len(list))}
	for i, sa := range list {
		out.ServiceAccounts[i] = saView(sa, nil)
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (h *Handlers) getSA(w http.ResponseWriter, r *http.Request) error {
	sa, err := h.Service.GetServiceAccount(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, saView(sa, nil))
}

func (h *Handlers) createSAKey(w http.ResponseWriter, r *http.Request) error {
	if p, _ := auth.FromContext(r.Context()); p.APIKeyID != "" {
		return ErrKeyCaller
	}
	var in KeyInput
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	c, err := h.Service.CreateServiceKey(r.Context(), auth.RequestMeta(r), r.PathValue("id"), in)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, CreatedView{KeyView: keyView(c.Key), Key: c.Secret})
}

func (h *Handlers) listSAKeys(w http.ResponseWriter, r *http.Request) error {
	if _, err := h.Service.GetServiceAccount(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	keys, err := h.Service.List(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, keyList(keys))
}

func (h *Handlers) revokeSAKey(w http.ResponseWriter, r *http.Request) error {
	if err := h.Service.Revoke(r.Context(), auth.RequestMeta(r), r.PathValue("id"), r.PathValue("key_id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) rotateSAKey(w http.ResponseWriter, r *http.Request) error {
	if p, _ := auth.FromContext(r.Context()); p.APIKeyID != "" {
		return ErrKeyCaller
	}
	return h.rotate(w, r, r.PathValue("id"), r.PathValue("key_id"))
}

func (h *Handlers) usageSAKey(w http.ResponseWriter, r *http.Request) error {
	rows, err := h.Service.Usage(r.Context(), r.PathValue("id"), r.PathValue("key_id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, usageView(r.PathValue("key_id"), rows))
}
