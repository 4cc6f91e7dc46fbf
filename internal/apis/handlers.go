package apis

import (
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Handlers serves /v1/admin/apis.
type Handlers struct {
	Admin    auth.Admin // each route needs the permission named in Routes
	Registry *Registry
}

// Routes mounts the endpoints, each behind the admin check.
func (h *Handlers) Routes(rt *httpapi.Router) {
	h.Admin.Handle(rt, "GET /v1/admin/apis", "apis:read", h.list)
	h.Admin.Handle(rt, "POST /v1/admin/apis", "apis:write", h.create)
	h.Admin.Handle(rt, "GET /v1/admin/apis/{id}", "apis:read", h.get)
	h.Admin.Handle(rt, "PATCH /v1/admin/apis/{id}", "apis:write", h.update)
	h.Admin.Handle(rt, "DELETE /v1/admin/apis/{id}", "apis:write", h.delete)
}

// View is an API as the admin API shows it.
type View struct {
	ID         string    `json:"id"`
	Identifier string    `json:"identifier"`
	Name       string    `json:"name"`
	Scopes     []string  `json:"scopes"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ViewOf is a's view.
func ViewOf(a store.API) View {
	sc := a.Scopes
	if sc == nil {
		sc = []string{}
	}
	return View{ID: a.ID, Identifier: a.Identifier, Name: a.Name, Scopes: sc, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC()}
}

// actor is the administrator making the request, for the audit log.
func actor(r *http.Request) httpapi.Meta {
	p, _ := auth.FromContext(r.Context())
	m := httpapi.MetaOf(r, "")
	m.ActorID = p.UserID
	return m
}

func (h *Handlers) list(w http.ResponseWriter, r *http.Request) error {
	list, err := h.Registry.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]View, 0, len(list))
	for _, a := range list {
		out = append(out, ViewOf(a))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"apis": out})
}

func (h *Handlers) create(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Identifier string   `json:"identifier"`
		Name       string   `json:"name"`
		Scopes     []string `json:"scopes"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	a, err := h.Registry.Create(r.Context(), Input{Identifier: in.Identifier, Name: in.Name, Scopes: in.Scopes}, actor(r))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/admin/apis/"+a.ID)
	return httpapi.WriteJSON(w, http.StatusCreated, ViewOf(a))
}

func (h *Handlers) get(w http.ResponseWriter, r *http.Request) error {
	a, err := h.Registry.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ViewOf(a))
}

func (h *Handlers) update(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name   *string   `json:"name"`
		Scopes *[]string `json:"scopes"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	a, err := h.Registry.Update(r.Context(), r.PathValue("id"), in.Name, in.Scopes, actor(r))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ViewOf(a))
}

func (h *Handlers) delete(w http.ResponseWriter, r *http.Request) error {
	if err := h.Registry.Delete(r.Context(), r.PathValue("id"), actor(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
