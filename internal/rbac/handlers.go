package rbac

import (
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Permissions of the RBAC administration routes.
const (
	PermRead      = "rbac:read"
	PermWrite     = "rbac:write"
	PermUsersRead = "users:read"
)

// Handlers serves the RBAC administration API.
type Handlers struct {
	Admin   auth.Admin
	Service *Service
}

// Routes mounts the routes. Those about permissions, a user's grants and
// the reports need their permission globally. Those about roles and
// making or revoking grants are organisation-scoped: rbac:read or
// rbac:write globally allows everything, and for the roles and grants of
// an organisation, the permission within that organisation or being an
// owner or admin member of it is enough (checked inside the handler; the
// route still records its permission).
func (h *Handlers) Routes(rt *httpapi.Router) {
	a := h.Admin
	a.Handle(rt, "GET /v1/admin/permissions", PermRead, h.listPermissions)
	a.Handle(rt, "POST /v1/admin/permissions", PermWrite, h.createPermission)
	a.Handle(rt, "GET /v1/admin/permissions/{name}", PermRead, h.getPermission)
	a.Handle(rt, "DELETE /v1/admin/permissions/{name}", PermWrite, h.deletePermission)
	h.scoped(rt, "GET /v1/admin/roles", PermRead, h.listRoles)
	h.scoped(rt, "POST /v1/admin/roles", PermWrite, h.createRole)
	h.scoped(rt, "GET /v1/admin/roles/{id}", PermRead, h.getRole)
	h.scoped(rt, "PATCH /v1/admin/roles/{id}", PermWrite, h.updateRole)
	h.scoped(rt, "DELETE /v1/admin/roles/{id}", PermWrite, h.deleteRole)
	h.scoped(rt, "GET /v1/admin/roles/{id}/effective-permissions", PermRead, h.effective)
	a.Handle(rt, "GET /v1/admin/users/{id}/roles", PermRead, h.listGrants)
	h.scoped(rt, "POST /v1/admin/users/{id}/roles", PermWrite, h.grant)
	h.scoped(rt, "DELETE /v1/admin/users/{id}/roles/{grant_id}", PermWrite, h.revoke)
	h.scoped(rt, "POST /v1/admin/role-grants/bulk", PermWrite, h.bulk)
	a.Handle(rt, "GET /v1/admin/users/{id}/permissions", PermUsersRead, h.userPermissions)
	a.Handle(rt, "GET /v1/admin/authz/who-can", PermRead, h.whoCan)
}

// scoped mounts an organisation-scoped route: authenticated, its
// permission recorded, checked by the handler with allow.
func (h *Handlers) scoped(rt *httpapi.Router, pattern, permission string, fn httpapi.HandlerFunc) {
	rt.HandlePermission(pattern, permission, auth.Require(h.Admin.Authn, fn))
}

// allow checks that the caller holds permission for the roles and grants
// of orgID ("" for global ones): globally, within orgID, or as an owner or
// admin of orgID. It is nil when allowed, a 403 problem otherwise.
func (h *Handlers) allow(ctx context.Context, permission, orgID string) error {
	p, _ := auth.FromContext(ctx)
	ok, err := h.Admin.Allowed(ctx, p, permission, "")
	if err != nil || ok {
		return err
	}
	if orgID != "" {
		if ok, err = h.Admin.Allowed(ctx, p, permission, orgID); err != nil || ok {
			return err
		}
		if ok, err = h.Service.IsOrgAdmin(ctx, orgID, p.UserID); err != nil || ok {
			return err
		}
	}
	return auth.Forbidden(permission)
}

func (h *Handlers) listPermissions(w http.ResponseWriter, r *http.Request) error {
	ps, err := h.Service.ListPermissions(r.Context())
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"permissions": ps})
}

// PermissionInput is a permission to register.
type PermissionInput struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

func (h *Handlers) createPermission(w http.ResponseWriter, r *http.Request) error {
	var in PermissionInput
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	p, err := h.Service.CreatePermission(r.Context(), auth.RequestMeta(r), in.Name, in.Description)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, p)
}

func (h *Handlers) getPermission(w http.ResponseWriter, r *http.Request) error {
	p, err := h.Service.GetPermission(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, p)
}

func (h *Handlers) deletePermission(w http.ResponseWriter, r *http.Request) error {
	if err := h.Service.DeletePermission(r.Context(), auth.RequestMeta(r), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func boolParam(r *http.Request, name string) (bool, *httpapi.FieldError) {
	switch r.URL.Query().Get(name) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, &httpapi.FieldError{Field: name, Rule: "enum", Message: name + " must be true or false."}
}

// listRoles lists the roles: every role without filter, an organisation's
// with ?organization_id=, the global ones with ?global=true (both: the
// roles the organisation's members can be granted there).
func (h *Handlers) listRoles(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.RoleFilter{OrganizationID: q.Get("organization_id"), Cursor: q.Get("cursor")}
	var errs []httpapi.FieldError
	global, fe := boolParam(r, "global")
	if fe != nil {
		errs = append(errs, *fe)
	}
	f.Global = global
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxRoleLimit {
			errs = append(errs, httpapi.FieldError{Field: "limit", Rule: "range", Message: "limit must be between 1 and 200."})
		}
		f.Limit = n
	}
	if len(errs) > 0 {
		return httpapi.Validation(errs...)
	}
	if err := h.allow(r.Context(), PermRead, f.OrganizationID); err != nil {
		return err
	}
	roles, next, err := h.Service.ListRoles(r.Context(), f)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"roles": roles, "next_cursor": next})
}

func (h *Handlers) createRole(w http.ResponseWriter, r *http.Request) error {
	var in RoleInput
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	if err := h.allow(r.Context(), PermWrite, in.OrganizationID); err != nil {
		return err
	}
	role, err := h.Service.CreateRole(r.Context(), auth.RequestMeta(r), in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/admin/roles/"+role.ID)
	return httpapi.WriteJSON(w, http.StatusCreated, role)
}

// hideMissing answers err (something the path names was not found) as
// 403 to a caller without permission globally, who must not learn what
// exists outside the organisations they manage.
func (h *Handlers) hideMissing(ctx context.Context, permission string, err error) error {
	if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, ErrGrantNotFound) {
		return err
	}
	if denied := h.allow(ctx, permission, ""); denied != nil {
		return denied
	}
	return err
}

// role returns the role of the path once the caller is allowed permission
// on it.
func (h *Handlers) role(r *http.Request, permission string) (RoleView, error) {
	role, err := h.Service.GetRole(r.Context(), r.PathValue("id"))
	if err != nil {
		return RoleView{}, h.hideMissing(r.Context(), permission, err)
	}
	return role, h.allow(r.Context(), permission, role.OrganizationID)
}

func (h *Handlers) getRole(w http.ResponseWriter, r *http.Request) error {
	role, err := h.role(r, PermRead)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, role)
}

func (h *Handlers) updateRole(w http.ResponseWriter, r *http.Request) error {
	role, err := h.role(r, PermWrite)
	if err != nil {
		return err
	}
	var p RolePatch
	if err := httpapi.DecodeJSON(r, &p); err != nil {
		return err
	}
	out, err := h.Service.UpdateRole(r.Context(), auth.RequestMeta(r), role.ID, p)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (h *Handlers) deleteRole(w http.ResponseWriter, r *http.Request) error {
	force, fe := boolParam(r, "force")
	if fe != nil {
		return httpapi.Validation(*fe)
	}
	role, err := h.role(r, PermWrite)
	if err != nil {
		return err
	}
	if err := h.Service.DeleteRole(r.Context(), auth.RequestMeta(r), role.ID, force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) effective(w http.ResponseWriter, r *http.Request) error {
	role, err := h.role(r, PermRead)
	if err != nil {
		return err
	}
	out, err := h.Service.Effective(r.Context(), role.ID)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (h *Handlers) listGrants(w http.ResponseWriter, r *http.Request) error {
	grants, err := h.Service.UserGrants(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"grants": grants})
}

func (h *Handlers) grant(w http.ResponseWriter, r *http.Request) error {
	var in GrantInput
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	userID := r.PathValue("id")
	if in.UserID != "" && in.UserID != userID {
		return httpapi.Validation(httpapi.FieldError{Field: "user_id", Rule: "path", Message: "user_id, when given, must be the user of the path."})
	}
	if err := h.allow(r.Context(), PermWrite, in.OrganizationID); err != nil {
		return err
	}
	g, err := h.Service.Grant(r.Context(), auth.RequestMeta(r), userID, in)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, g)
}

func (h *Handlers) revoke(w http.ResponseWriter, r *http.Request) error {
	userID, grantID := r.PathValue("id"), r.PathValue("grant_id")
	g, err := h.Service.UserGrant(r.Context(), userID, grantID)
	if err != nil {
		return h.hideMissing(r.Context(), PermWrite, err)
	}
	if err := h.allow(r.Context(), PermWrite, g.OrganizationID); err != nil {
		return err
	}
	if err := h.Service.Revoke(r.Context(), auth.RequestMeta(r), userID, grantID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handlers) bulk(w http.ResponseWriter, r *http.Request) error {
	var in BulkInput
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	var scope Scope
	if err := h.allow(r.Context(), PermWrite, ""); err != nil {
		// Not allowed globally: every grant made or revoked must be of an
		// organisation the caller manages.
		scope = func(ctx context.Context, orgID string) error {
			if orgID == "" {
				return err
			}
			return h.allow(ctx, PermWrite, orgID)
		}
	}
	out, err := h.Service.Bulk(r.Context(), auth.RequestMeta(r), in, scope)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

// format reads ?format=: json (the default) or csv.
func format(r *http.Request) (csvOut bool, err error) {
	switch r.URL.Query().Get("format") {
	case "", "json":
		return false, nil
	case "csv":
		return true, nil
	}
	return false, errFormat
}

func writeCSV(w http.ResponseWriter, filename string, rows [][]string) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	w.WriteHeader(http.StatusOK)
	// The status is sent: a failed write (the client went away) has
	// nothing left to answer.
	_ = csv.NewWriter(w).WriteAll(rows)
	return nil
}

func (h *Handlers) userPermissions(w http.ResponseWriter, r *http.Request) error {
	asCSV, err := format(r)
	if err != nil {
		return err
	}
	out, err := h.Service.UserPermissions(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if asCSV {
		return writeCSV(w, "user-permissions.csv", out.CSV())
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (h *Handlers) whoCan(w http.ResponseWriter, r *http.Request) error {
	asCSV, err := format(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	out, err := h.Service.WhoCan(r.Context(), q.Get("permission"), q.Get("organization_id"))
	if err != nil {
		return err
	}
	if asCSV {
		return writeCSV(w, "who-can.csv", out.CSV())
	}
	return httpapi.WriteJSON(w, http.StatusOK, out)
}
