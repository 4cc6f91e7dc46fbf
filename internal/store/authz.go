package store

import (
	"context"
	"time"
)

// Permission is a registered "resource:action" string ("invoices:read",
// "invoices:*", "*"). The store keeps the name as it is given (the domain
// checks its form); roles can only name registered permissions.
type Permission struct {
	Name        string // unique, compared exactly
	Description string
	CreatedAt   time.Time
}

// RolePermission is one permission a role allows or denies, under an
// optional condition (a CEL expression the domain compiles; "" for none).
type RolePermission struct {
	Permission string // a registered Permission's Name
	Condition  string
}

// Role is a named set of allowed and denied permissions, which it also
// inherits from its parent roles.
type Role struct {
	ID          string // UUID; a UUIDv7 when created with ""
	Name        string // unique among the roles of its organisation, or among the global roles
	Description string
	// OrganizationID is the organisation the role belongs to, "" for a
	// global role. It never changes once the role is created. A role of an
	// organisation can only be granted within it and only be the parent
	// of that organisation's roles.
	OrganizationID string
	// Allow and Deny are kept in the caller's order; a permission appears
	// at most once in each (it may appear in both). Empty lists come back
	// nil.
	Allow, Deny []RolePermission
	// Parents are the IDs of the roles whose permissions this one
	// inherits, in the caller's order, each once and never the role
	// itself; a global role's parents are global, an organisation's role's
	// are global or of the same organisation. Empty comes back nil.
	Parents   []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RoleGrant gives a role to a user, globally or within an organisation,
// for a time window and under an optional condition.
type RoleGrant struct {
	ID     string // UUID; a UUIDv7 when created with ""
	UserID string
	RoleID string
	// OrganizationID is the organisation the grant applies in, "" for a
	// global grant. A role of an organisation is granted within that
	// organisation only.
	OrganizationID string
	// ValidFrom and ValidUntil bound the window in which the grant counts
	// (from inclusive, until exclusive); the zero time leaves that side
	// unbounded. When both are set ValidFrom is before ValidUntil. The
	// store keeps grants past their window: the domain decides what
	// counts at a given time.
	ValidFrom, ValidUntil time.Time
	Condition             string // CEL expression, "" for none
	CreatedAt             time.Time
	// CreatedBy is who made the grant (the acting user's or client's ID),
	// "" for the system. It is not a reference: it outlives its actor.
	CreatedBy string
}

// RoleFilter selects roles for ListRoles. With neither field set every
// role is listed.
type RoleFilter struct {
	// OrganizationID lists that organisation's roles (an ID that is not a
	// UUID matches none).
	OrganizationID string
	// Global lists the global roles; with OrganizationID, the global roles
	// and that organisation's: the roles its members can be granted there.
	Global bool
	// Cursor is the next-page cursor of a previous call with the same
	// filter; a foreign one is ErrInvalidCursor.
	Cursor string
	// Limit is the page size: DefaultRoleLimit when <= 0, at most
	// MaxRoleLimit.
	Limit int
}

// Role and grant listing page sizes.
const (
	DefaultRoleLimit  = 50
	MaxRoleLimit      = 200
	DefaultGrantLimit = 100
	MaxGrantLimit     = 1000
)

// MaxGrantRoles is the most role IDs ListGrantsOfRoles takes in one call.
const MaxGrantRoles = 1000

// RoleDeletion is what DeleteRole removed besides the role, for the audit
// trail of a forced deletion: the grants of the role and the roles that
// had it as a parent (which no longer do, and whose UpdatedAt is the time
// of the deletion). Both are empty when nothing referred to the role.
type RoleDeletion struct {
	Grants   []RoleGrant // oldest first
	Children []string    // role IDs, in ID order
}

// UserAuthz is everything a permission check needs about one user.
type UserAuthz struct {
	// Grants are all the user's grants, in or out of their window, oldest
	// first.
	Grants []RoleGrant
	// Roles are the roles of Grants and every role reachable from them
	// through Parents, by ID. A grant whose role is missing (deleted with
	// force between the two reads) gives nothing; a parent missing from
	// the map likewise.
	Roles map[string]Role
}

// AuthzStore keeps the role-based access control data: permissions, roles
// and grants. Every method works inside InTx, so the domain can record its
// audit events in the transaction of the change. Times are kept to the
// microsecond in UTC. Text that is not valid UTF-8 without NUL is
// ErrInvalidText when written and finds nothing (ErrNotFound, or an empty
// list) when looked up; so does an ID that is not a UUID.
type AuthzStore interface {
	// CreatePermission stores p (CreatedAt now when zero); ErrConflict when
	// the name is taken.
	CreatePermission(ctx context.Context, p Permission) (Permission, error)
	// GetPermission returns the permission with this name, or ErrNotFound.
	GetPermission(ctx context.Context, name string) (Permission, error)
	// ListPermissions returns every permission by name (compared by code
	// point).
	ListPermissions(ctx context.Context) ([]Permission, error)
	// DeletePermission removes the permission: ErrNotFound if absent,
	// ErrConflict while a role allows or denies it (the database refuses
	// it, so a concurrent role change cannot slip in).
	DeletePermission(ctx context.Context, name string) error

	// CreateRole stores r (ID a UUIDv7 when empty, CreatedAt now when zero,
	// UpdatedAt CreatedAt when zero) with its permissions and parents.
	// ErrConflict on a taken ID or name (in its organisation, or among the
	// global roles); ErrNotFound for an organisation, permission or parent
	// that does not exist, or a parent outside the role's scope.
	CreateRole(ctx context.Context, r Role) (Role, error)
	// GetRole returns the role with this ID, or ErrNotFound.
	GetRole(ctx context.Context, id string) (Role, error)
	// GetRoleByName returns the role named name in organisation orgID
	// ("" for the global roles), or ErrNotFound.
	GetRoleByName(ctx context.Context, name, orgID string) (Role, error)
	// ListRoles returns the roles matching f, oldest first (ties by ID),
	// and the cursor of the next page ("" on the last).
	ListRoles(ctx context.Context, f RoleFilter) ([]Role, string, error)
	// UpdateRole replaces the Name, Description, Allow, Deny and Parents
	// of the role with r.ID and sets its UpdatedAt (now when zero);
	// OrganizationID and CreatedAt stay. ErrNotFound if absent, and as
	// CreateRole for what it refers to; ErrConflict for a taken name, or
	// parents that would make the role its own ancestor (concurrent
	// updates included: updates that set parents run one after the
	// other). On error inside InTx the caller's transaction must roll
	// back: the role may be half written.
	UpdateRole(ctx context.Context, r Role) (Role, error)
	// DeleteRole removes the role. Without force it is ErrConflict while
	// the role is granted or is a parent of another role (the database
	// refuses it). With force it first removes the role's grants and
	// takes it out of its children's parents, and reports both.
	// ErrNotFound if absent.
	DeleteRole(ctx context.Context, id string, force bool) (RoleDeletion, error)

	// CreateGrant stores g (ID a UUIDv7 when empty, CreatedAt now when
	// zero). ErrNotFound for a user, role or organisation that does not
	// exist, or a role of an organisation granted outside it; ErrConflict
	// on a taken ID. A user may hold the same role several times (in
	// several windows, say).
	CreateGrant(ctx context.Context, g RoleGrant) (RoleGrant, error)
	// GetGrant returns the grant with this ID, or ErrNotFound.
	GetGrant(ctx context.Context, id string) (RoleGrant, error)
	// ListUserGrants returns every grant of the user, oldest first (ties
	// by ID); none for a user that does not exist.
	ListUserGrants(ctx context.Context, userID string) ([]RoleGrant, error)
	// ListGrantsOfRoles returns the grants of any of roleIDs (at most
	// MaxGrantRoles; none for an empty list), oldest first (ties by ID),
	// a page of limit (DefaultGrantLimit when <= 0, at most
	// MaxGrantLimit) after cursor ("" for the first), and the cursor of
	// the next page ("" on the last). It answers "who can": the domain
	// finds the roles that carry a permission and their descendants, then
	// pages through their grants.
	ListGrantsOfRoles(ctx context.Context, roleIDs []string, cursor string, limit int) ([]RoleGrant, string, error)
	// DeleteGrant removes the grant and returns it as it was; ErrNotFound
	// if absent.
	DeleteGrant(ctx context.Context, id string) (RoleGrant, error)
	// ListExpiredGrants returns the grants whose ValidUntil is in (after,
	// before], by ValidUntil then ID: those that expired since the last
	// run of the role.expired job. A zero after has no lower bound.
	ListExpiredGrants(ctx context.Context, after, before time.Time) ([]RoleGrant, error)

	// LoadUserAuthz returns the user's grants and every role they reach,
	// with two queries at most (none for an ID that is not a UUID, one
	// for a user without grants): the grants, then the roles, their
	// permissions and their parents in one statement walking the parents
	// recursively (a cycle ends the walk). It reads the primary (or the
	// transaction), so a check right after a change sees it. A disabled or
	// (soft-)deleted user holds nothing: no grants, though ListUserGrants
	// still lists them (they count again once the user is enabled).
	LoadUserAuthz(ctx context.Context, userID string) (UserAuthz, error)
}
