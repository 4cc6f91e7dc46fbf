package admin

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// PolicyValidator checks an organisation policy document (the MFA package
// knows its keys).
type PolicyValidator func(doc map[string]any) []httpapi.FieldError

var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// OrgRoutes mounts the organisation endpoints.
func (h *Handlers) OrgRoutes(rt *httpapi.Router, validate PolicyValidator) {
	h.Admin.Handle(rt, "GET /v1/admin/organizations", "organizations:read", h.listOrgs)
	h.Admin.Handle(rt, "POST /v1/admin/organizations", "organizations:write", h.createOrg(validate))
	h.Admin.Handle(rt, "GET /v1/admin/organizations/{id}", "organizations:read", h.getOrg)
	h.Admin.Handle(rt, "PUT /v1/admin/organizations/{id}/policy", "organizations:write", h.setPolicy(validate))
	h.Admin.Handle(rt, "DELETE /v1/admin/organizations/{id}", "organizations:write", h.deleteOrg)
	h.Admin.Handle(rt, "PUT /v1/admin/organizations/{id}/members/{user_id}", "organizations:write", h.setMember)
	h.Admin.Handle(rt, "DELETE /v1/admin/organizations/{id}/members/{user_id}", "organizations:write", h.removeMember)
}

// OrgView is an organisation with its members.
type OrgView struct {
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	Slug      string           `json:"slug"`
	Policy    map[string]any   `json:"policy"`
	Members   []map[string]any `json:"members,omitempty"`
	CreatedAt string           `json:"created_at"`
}

func orgView(o store.Organization, members []store.OrgMembership) OrgView {
	pol := o.Policy
	if pol == nil {
		pol = map[string]any{}
	}
	v := OrgView{ID: o.ID, Name: o.Name, Slug: o.Slug, Policy: pol, CreatedAt: o.CreatedAt.UTC().Format("2006-01-02T15:04:05.999999Z07:00")}
	for _, m := range members {
		v.Members = append(v.Members, map[string]any{"user_id": m.UserID, "role": m.Role})
	}
	return v
}

func (h *Handlers) listOrgs(w http.ResponseWriter, r *http.Request) error {
	orgs, err := h.Service.ListOrganizations(r.Context())
	if err != nil {
		return err
	}
	out := make([]OrgView, 0, len(orgs))
	for _, o := range orgs {
		out = append(out, orgView(o, nil))
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"organizations": out})
}

func (h *Handlers) createOrg(validate PolicyValidator) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Name   string         `json:"name"`
			Slug   string         `json:"slug"`
			Policy map[string]any `json:"policy"`
		}
		if err := httpapi.DecodeJSON(r, &in); err != nil {
			return err
		}
		in.Name, in.Slug = strings.TrimSpace(in.Name), strings.TrimSpace(in.Slug)
		var fe []httpapi.FieldError
		if in.Name == "" || len(in.Name) > 200 {
			fe = append(fe, httpapi.FieldError{Field: "name", Rule: "required", Message: "A name of 1 to 200 characters is required."})
		}
		if !slugPattern.MatchString(in.Slug) {
			fe = append(fe, httpapi.FieldError{Field: "slug", Rule: "format", Message: "A slug of lower-case letters, digits and dashes is required."})
		}
		fe = append(fe, validate(in.Policy)...)
		if len(fe) > 0 {
			return httpapi.Validation(fe...)
		}
		o, err := h.Service.CreateOrganization(r.Context(), meta(r), store.Organization{Name: in.Name, Slug: in.Slug, Policy: in.Policy})
		if err != nil {
			return err
		}
		return httpapi.WriteJSON(w, http.StatusCreated, orgView(o, nil))
	}
}

func (h *Handlers) getOrg(w http.ResponseWriter, r *http.Request) error {
	o, members, err := h.Service.GetOrganization(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, orgView(o, members))
}

func (h *Handlers) setPolicy(validate PolicyValidator) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var policy map[string]any
		if err := httpapi.DecodeJSON(r, &policy); err != nil {
			return err
		}
		if fe := validate(policy); len(fe) > 0 {
			return httpapi.Validation(fe...)
		}
		o, err := h.Service.SetOrganizationPolicy(r.Context(), meta(r), r.PathValue("id"), policy)
		if err != nil {
			return err
		}
		return httpapi.WriteJSON(w, http.StatusOK, orgView(o, nil))
	}
}

func (h *Handlers) deleteOrg(w http.ResponseWriter, r *http.Request) error {
	if err := h.Service.DeleteOrganization(r.Context(), meta(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) setMember(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Role string `json:"role"`
	}
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	switch in.Role {
	case store.OrgOwner, store.OrgAdmin, store.OrgMember:
	default:
		return httpapi.Validation(httpapi.FieldError{Field: "role", Rule: "enum", Message: "role must be owner, admin or member."})
	}
	orgID, userID := r.PathValue("id"), r.PathValue("user_id")
	if err := h.Service.SetMember(r.Context(), meta(r), orgID, userID, in.Role); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"organization_id": orgID, "user_id": userID, "role": in.Role})
}

func (h *Handlers) removeMember(w http.ResponseWriter, r *http.Request) error {
	orgID, userID := r.PathValue("id"), r.PathValue("user_id")
	if err := h.Service.RemoveMember(r.Context(), meta(r), orgID, userID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
