package rbac

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gatehouse/gatehouse/internal/store"
)

// IDs of the built-in roles. They are fixed, so that migrations, the
// wiring and every node agree on them.
const (
	AdminRoleID         = "0192f000-0000-7000-8000-000000000001"
	UserAdminRoleID     = "0192f000-0000-7000-8000-000000000002"
	SecurityAdminRoleID = "0192f000-0000-7000-8000-000000000003"
	AuditorRoleID       = "0192f000-0000-7000-8000-000000000004"
)

// Names of the built-in roles.
const (
	AdminRole         = "admin"
	UserAdminRole     = "user-admin"
	SecurityAdminRole = "security-admin"
	AuditorRole       = "auditor"
)

// BuiltinPermissions are the permissions of Gatehouse's own administration
// API, each with its description.
var BuiltinPermissions = []store.Permission{
	{Name: "users:read", Description: "Read user accounts."},
	{Name: "users:write", Description: "Create, change, disable, unlock and delete user accounts."},
	{Name: "sessions:read", Description: "Read users' sessions."},
	{Name: "sessions:write", Description: "End users' sessions."},
	{Name: "clients:read", Description: "Read OAuth clients."},
	{Name: "clients:write", Description: "Register, change and delete OAuth clients."},
	{Name: "organizations:read", Description: "Read organisations and their members."},
	{Name: "organizations:write", Description: "Create, change and delete organisations and their memberships."},
	{Name: "apis:read", Description: "Read the registered APIs (resource servers)."},
	{Name: "apis:write", Description: "Register, change and delete APIs (resource servers)."},
	{Name: "webhooks:read", Description: "Read webhook endpoints and deliveries."},
	{Name: "webhooks:write", Description: "Create, change, delete and redeliver webhook endpoints."},
	{Name: "security:read", Description: "Read security events and incidents."},
	{Name: "security:write", Description: "Resolve security incidents."},
	{Name: "rate-limits:read", Description: "Read rate-limit rules and client tiers."},
	{Name: "rate-limits:write", Description: "Change rate-limit rules and client tiers."},
	{Name: "tokens:revoke", Description: "Revoke tokens and sessions issued before a time (the kill switch)."},
	{Name: "audit:read", Description: "Read the audit log."},
	{Name: "rbac:read", Description: "Read permissions, roles, grants and access reports."},
	{Name: "rbac:write", Description: "Create, change and delete permissions, roles and grants."},
	{Name: "service-accounts:read", Description: "List service accounts and their API keys."},
	{Name: "service-accounts:write", Description: "Create service accounts and create, rotate and revoke their API keys."},
}

// BuiltinRoles are the roles of Gatehouse's own administration API. They
// are global; only their permissions and names matter (CreatedAt is left
// to the store).
var BuiltinRoles = []store.Role{
	{
		ID: AdminRoleID, Name: AdminRole, Description: "Everything.",
		Allow: rules("*"),
	},
	{
		ID: UserAdminRoleID, Name: UserAdminRole, Description: "Manages users and their sessions.",
		Allow: rules("users:*", "sessions:*"),
	},
	{
		ID: SecurityAdminRoleID, Name: SecurityAdminRole, Description: "Handles security events, rate limits and the kill switch.",
		Allow: rules("security:*", "rate-limits:*", "tokens:revoke", "sessions:read", "users:read"),
	},
	{
		ID: AuditorRoleID, Name: AuditorRole, Description: "Reads users, sessions, the audit log and access reports; changes nothing.",
		Allow: rules("users:read", "sessions:read", "audit:read", "rbac:read", "security:read"),
	},
}

func rules(perms ...string) []store.RolePermission {
	out := make([]store.RolePermission, len(perms))
	for i, p := range perms {
		out[i] = store.RolePermission{Permission: p}
	}
	return out
}

// IsBuiltinRole reports whether id is the ID of a built-in role.
func IsBuiltinRole(id string) bool {
	return slices.ContainsFunc(BuiltinRoles, func(r store.Role) bool { return r.ID == id })
}

// BuiltinStore is what EnsureBuiltins writes through.
type BuiltinStore interface {
	GetPermission(ctx context.Context, name string) (store.Permission, error)
	CreatePermission(ctx context.Context, p store.Permission) (store.Permission, error)
	GetRole(ctx context.Context, id string) (store.Role, error)
	GetRoleByName(ctx context.Context, name, orgID string) (store.Role, error)
	CreateRole(ctx context.Context, r store.Role) (store.Role, error)
}

// EnsureBuiltins creates every built-in permission and role that is
// missing, leaving those that exist as they are: it is idempotent. A
// global role of another ID holding a built-in role's name is an error. The
// "*" permission of the admin role is registered too ("Everything."). It
// looks each one up before creating it, so that inside a PostgreSQL
// transaction (where a failed statement aborts the transaction) a second
// run does not fail; an ErrConflict from a concurrent run is ignored, but
// on PostgreSQL it leaves the caller's transaction aborted, so run it
// where runs are serialised (the migration lock) or retry.
func EnsureBuiltins(ctx context.Context, tx BuiltinStore) error {
	perms := append([]store.Permission{{Name: "*", Description: "Everything."}}, BuiltinPermissions...)
	for _, r := range BuiltinRoles {
		for _, rp := range r.Allow {
			if !slices.ContainsFunc(perms, func(p store.Permission) bool { return p.Name == rp.Permission }) {
				perms = append(perms, store.Permission{Name: rp.Permission, Description: "All " + rp.Permission[:len(rp.Permission)-2] + " permissions."})
			}
		}
	}
	for _, p := range perms {
		if _, err := tx.GetPermission(ctx, p.Name); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := tx.CreatePermission(ctx, p); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	for _, r := range BuiltinRoles {
		if _, err := tx.GetRole(ctx, r.ID); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if other, err := tx.GetRoleByName(ctx, r.Name, ""); err == nil {
			return fmt.Errorf("rbac: the global role %s (%s) holds the name of the built-in role %s: rename it", other.Name, other.ID, r.ID)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := tx.CreateRole(ctx, r); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}
