package sqldb

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func (t *Tables) scanPermission(r sqlrow.Scanner) (store.Permission, error) {
	return sqlrow.ScanPermission(r, t.d.TimeDest)
}

func (t *Tables) scanGrant(r sqlrow.Scanner) (store.RoleGrant, error) {
	return sqlrow.ScanGrant(r, t.d.TimeDest, t.d.NullTimeDest)
}

// CreatePermission implements store.AuthzStore.
func (t *Tables) CreatePermission(ctx context.Context, p store.Permission) (store.Permission, error) {
	p, err := sqlrow.PreparePermission(p, t.now())
	if err != nil {
		return store.Permission{}, t.errorf("create permission: %w", err)
	}
	created, err := row(ctx, t, Write, t.scanPermission, `INSERT INTO permissions (`+sqlrow.PermissionColumns+`)
		VALUES ($1, $2, $3) RETURNING `+sqlrow.PermissionColumns, p.Name, sqlrow.Null(p.Description), t.d.TimeValue(p.CreatedAt))
	if err != nil {
		return store.Permission{}, t.errorf("create permission %q: %w", p.Name, t.d.MapErr(err))
	}
	return created, nil
}

// GetPermission implements store.AuthzStore, reading the primary.
func (t *Tables) GetPermission(ctx context.Context, name string) (store.Permission, error) {
	if !sqlrow.Storable(name) {
		return store.Permission{}, t.errorf("get permission %q: %w", name, store.ErrNotFound)
	}
	p, err := row(ctx, t, Primary, t.scanPermission, "SELECT "+sqlrow.PermissionColumns+" FROM permissions WHERE name = $1", name)
	if err != nil {
		return store.Permission{}, t.errorf("get permission %q: %w", name, t.d.MapErr(err))
	}
	return p, nil
}

// ListPermissions implements store.AuthzStore: by name compared by code
// point, from the primary.
func (t *Tables) ListPermissions(ctx context.Context) ([]store.Permission, error) {
	list, err := rows(ctx, t, Primary, t.scanPermission, "SELECT "+sqlrow.PermissionColumns+
		" FROM permissions ORDER BY name"+t.d.ByCodePoint)
	if err != nil {
		return nil, t.errorf("list permissions: %w", err)
	}
	return list, nil
}

// DeletePermission implements store.AuthzStore. role_permissions refers to
// permissions without ON DELETE: the database refuses to remove one in
// use, whatever runs concurrently.
func (t *Tables) DeletePermission(ctx context.Context, name string) error {
	if !sqlrow.Storable(name) {
		return t.errorf("delete permission %q: %w", name, store.ErrNotFound)
	}
	n, err := t.x.Exec(ctx, "DELETE FROM permissions WHERE name = $1", name)
	switch {
	case err != nil:
		return t.errorf("delete permission %q (a role may use it): %w", name, t.d.MapInUseErr(err))
	case n == 0:
		return t.errorf("delete permission %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// Row kinds of roleParts, in the order a role's rows come.
const (
	partRole = iota
	partAllow
	partDeny
	partParent
)

// roleParts selects every row the roles whose IDs roots selects are
// assembled from (roots is a subquery or a list of placeholders; it is
// repeated, so its placeholders must be numbered): the role itself, each
// permission it allows or denies, each parent. The columns are role_id,
// kind, then by kind name or permission or parent ID, description or
// condition, organization_id, created_at, updated_at, and the position in
// the role's list.
func roleParts(with, roots string) string {
	return with + `
	SELECT r.id, ` + fmt.Sprint(partRole) + `, r.name, r.description, CAST(r.organization_id AS TEXT), r.created_at, r.updated_at, 0
		FROM roles r WHERE r.id IN (` + roots + `)
	UNION ALL
	SELECT p.role_id, CASE WHEN p.effect = '` + sqlrow.EffectAllow + `' THEN ` + fmt.Sprint(partAllow) + ` ELSE ` + fmt.Sprint(partDeny) + ` END,
		p.permission, p.condition, NULL, NULL, NULL, p.position
		FROM role_permissions p WHERE p.role_id IN (` + roots + `)
	UNION ALL
	SELECT a.role_id, ` + fmt.Sprint(partParent) + `, CAST(a.parent_id AS TEXT), NULL, NULL, NULL, NULL, a.position
		FROM role_parents a WHERE a.role_id IN (` + roots + `)
	ORDER BY 1, 2, 8`
}

// loadRoles runs roleParts and assembles the roles, oldest first (ties by
// ID). Errors are mapped.
func (t *Tables) loadRoles(ctx context.Context, with, roots string, args ...any) ([]store.Role, error) {
	var (
		list []store.Role
		cur  *store.Role
	)
	err := t.x.Rows(ctx, Primary, roleParts(with, roots), args, func(r sqlrow.Scanner) error {
		var (
			id, text1            string
			kind, position       int
			text2, org           *string
			createdAt, updatedAt time.Time
		)
		if err := r.Scan(&id, &kind, &text1, &text2, &org, t.d.NullTimeDest(&createdAt), t.d.NullTimeDest(&updatedAt), &position); err != nil {
			return err
		}
		if kind == partRole {
			list = append(list, store.Role{
				ID: id, Name: text1, Description: deref(text2), OrganizationID: deref(org),
				CreatedAt: createdAt.UTC(), UpdatedAt: updatedAt.UTC(),
			})
			cur = &list[len(list)-1]
			return nil
		}
		// A role's own row sorts first; rows of a role deleted between the
		// branches of the statement have none and are skipped.
		if cur == nil || cur.ID != id {
			return nil
		}
		switch kind {
		case partAllow:
			cur.Allow = append(cur.Allow, store.RolePermission{Permission: text1, Condition: deref(text2)})
		case partDeny:
			cur.Deny = append(cur.Deny, store.RolePermission{Permission: text1, Condition: deref(text2)})
		case partParent:
			cur.Parents = append(cur.Parents, text1)
		}
		return nil
	})
	if err != nil {
		return nil, t.d.MapErr(err)
	}
	slices.SortFunc(list, func(a, b store.Role) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return list, nil
}

// CreateRoleTx is store.AuthzStore's CreateRole without the transaction
// its several statements need: the backends run it in one (theirs, or the
// caller's inside InTx).
func (t *Tables) CreateRoleTx(ctx context.Context, r store.Role) (store.Role, error) {
	r, err := sqlrow.PrepareRole(r, t.now(), true)
	if err != nil {
		return store.Role{}, t.errorf("create role: %w", err)
	}
	_, err = t.x.Exec(ctx, `INSERT INTO roles (id, name, description, organization_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, r.ID, r.Name, sqlrow.Null(r.Description), sqlrow.Null(r.OrganizationID),
		t.d.TimeValue(r.CreatedAt), t.d.TimeValue(r.UpdatedAt))
	if err != nil {
		return store.Role{}, t.errorf("create role %q: %w", r.Name, t.d.MapRefErr(err))
	}
	if err := t.writeRoleLinks(ctx, r, false); err != nil {
		return store.Role{}, t.errorf("create role %q: %w", r.Name, err)
	}
	return r, nil
}

// UpdateRoleTx is store.AuthzStore's UpdateRole without the transaction
// its several statements need. Its UPDATE comes first: on PostgreSQL it
// locks the role's row, so concurrent updates of one role run one after
// the other. An update that sets parents then locks role_parents against
// other writers (LockWrites) until it commits: the cycle check reads every
// link committed before, so two concurrent updates cannot each pass it
// and together close a cycle.
func (t *Tables) UpdateRoleTx(ctx context.Context, r store.Role) (store.Role, error) {
	r, err := sqlrow.PrepareRole(r, t.now(), false)
	if err != nil {
		return store.Role{}, t.errorf("update role: %w", err)
	}
	var org *string
	err = t.x.Row(ctx, Write, `UPDATE roles SET name = $2, description = $3, updated_at = $4
		WHERE id = $1 RETURNING CAST(organization_id AS TEXT), created_at`,
		r.ID, r.Name, sqlrow.Null(r.Description), t.d.TimeValue(r.UpdatedAt)).Scan(&org, t.d.TimeDest(&r.CreatedAt))
	if err != nil {
		return store.Role{}, t.errorf("update role %s: %w", r.ID, t.d.MapErr(err))
	}
	r.OrganizationID, r.CreatedAt = deref(org), r.CreatedAt.UTC()
	if len(r.Parents) > 0 && t.d.LockWrites != nil {
		if _, err := t.x.Exec(ctx, t.d.LockWrites("role_parents")); err != nil {
			return store.Role{}, t.errorf("update role %s: lock parents: %w", r.ID, t.d.MapErr(err))
		}
	}
	if err := t.writeRoleLinks(ctx, r, true); err != nil {
		return store.Role{}, t.errorf("update role %s: %w", r.ID, err)
	}
	return r, nil
}

// roleLinkChunk is how many rows one INSERT of writeRoleLinks stores (at most 5
// parameters each, well below either engine's limit on parameters).
const roleLinkChunk = 500

// writeRoleLinks stores the permissions and parents of r (replacing those
// it had when replace is set), then checks that every parent is in the
// role's scope and, on a replace, that the role is not its own ancestor.
// Errors are mapped.
func (t *Tables) writeRoleLinks(ctx context.Context, r store.Role, replace bool) error {
	if replace {
		if _, err := t.x.Exec(ctx, "DELETE FROM role_permissions WHERE role_id = $1", r.ID); err != nil {
			return t.d.MapErr(err)
		}
		if _, err := t.x.Exec(ctx, "DELETE FROM role_parents WHERE role_id = $1", r.ID); err != nil {
			return t.d.MapErr(err)
		}
	}
	type perm struct {
		effect string
		store.RolePermission
	}
	perms := make([]perm, 0, len(r.Allow)+len(r.Deny))
	for _, p := range r.Allow {
		perms = append(perms, perm{sqlrow.EffectAllow, p})
	}
	for _, p := range r.Deny {
		perms = append(perms, perm{sqlrow.EffectDeny, p})
	}
	err := insertChunks(ctx, t, "role_permissions (role_id, effect, permission, condition, position)", 5, len(perms), func(i int) []any {
		p := perms[i]
		pos := i
		if p.effect == sqlrow.EffectDeny {
			pos -= len(r.Allow)
		}
		return []any{r.ID, p.effect, p.Permission, sqlrow.Null(p.Condition), pos}
	})
	if err != nil {
		return fmt.Errorf("permissions: %w", err)
	}
	err = insertChunks(ctx, t, "role_parents (role_id, parent_id, organization_id, position)", 4, len(r.Parents), func(i int) []any {
		return []any{r.ID, r.Parents[i], sqlrow.Null(r.OrganizationID), i}
	})
	if err != nil {
		return fmt.Errorf("parents: %w", err)
	}
	if len(r.Parents) == 0 {
		return nil
	}
	var n int
	err = t.x.Row(ctx, Primary, `SELECT COUNT(*) FROM role_parents a
		JOIN roles c ON c.id = a.role_id JOIN roles p ON p.id = a.parent_id
		WHERE a.role_id = $1 AND p.organization_id IS NOT NULL
		AND (c.organization_id IS NULL OR c.organization_id <> p.organization_id)`, r.ID).Scan(&n)
	if err != nil {
		return t.d.MapErr(err)
	}
	if n > 0 {
		return fmt.Errorf("a parent belongs to another organisation than the role: %w", store.ErrNotFound)
	}
	if !replace {
		return nil // nothing refers to a new role yet
	}
	err = t.x.Row(ctx, Primary, `WITH RECURSIVE up (id) AS (
			SELECT parent_id FROM role_parents WHERE role_id = $1
			UNION
			SELECT a.parent_id FROM role_parents a JOIN up ON a.role_id = up.id
		) SELECT COUNT(*) FROM up WHERE id = $1`, r.ID).Scan(&n)
	if err != nil {
		return t.d.MapErr(err)
	}
	if n > 0 {
		return fmt.Errorf("the role would be its own ancestor: %w", store.ErrConflict)
	}
	return nil
}

// insertChunks inserts n rows of width values each into table (a table
// name and its column list), roleLinkChunk rows per statement. Errors are
// mapped with MapRefErr: a row referring to nothing is ErrNotFound.
func insertChunks(ctx context.Context, t *Tables, table string, width, n int, values func(i int) []any) error {
	for start := 0; start < n; start += roleLinkChunk {
		end := min(n, start+roleLinkChunk)
		var q strings.Builder
		args := make([]any, 0, width*(end-start))
		q.WriteString("INSERT INTO " + table + " VALUES ")
		for i := start; i < end; i++ {
			if i > start {
				q.WriteString(", ")
			}
			q.WriteString("(")
			for j := range width {
				if j > 0 {
					q.WriteString(", ")
				}
				fmt.Fprintf(&q, "$%d", len(args)+j+1)
			}
			q.WriteString(")")
			args = append(args, values(i)...)
		}
		if _, err := t.x.Exec(ctx, q.String(), args...); err != nil {
			return t.d.MapRefErr(err)
		}
	}
	return nil
}

// GetRole implements store.AuthzStore in one statement, from the primary.
func (t *Tables) GetRole(ctx context.Context, id string) (store.Role, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.Role{}, t.errorf("get role %q: %w", id, store.ErrNotFound)
	}
	list, err := t.loadRoles(ctx, "", "$1", canon)
	if err != nil {
		return store.Role{}, t.errorf("get role %s: %w", canon, err)
	}
	if len(list) == 0 {
		return store.Role{}, t.errorf("get role %s: %w", canon, store.ErrNotFound)
	}
	return list[0], nil
}

// GetRoleByName implements store.AuthzStore in one statement, from the
// primary.
func (t *Tables) GetRoleByName(ctx context.Context, name, orgID string) (store.Role, error) {
	var (
		list []store.Role
		err  error
	)
	switch org, ok := sqlrow.ParseID(orgID); {
	case !sqlrow.Storable(name) || (orgID != "" && !ok):
		return store.Role{}, t.errorf("get role %q of organization %q: %w", name, orgID, store.ErrNotFound)
	case orgID == "":
		list, err = t.loadRoles(ctx, "", "SELECT id FROM roles WHERE name = $1 AND organization_id IS NULL", name)
	default:
		list, err = t.loadRoles(ctx, "", "SELECT id FROM roles WHERE name = $1 AND organization_id = $2", name, org)
	}
	if err == nil && len(list) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Role{}, t.errorf("get role %q of organization %q: %w", name, orgID, err)
	}
	return list[0], nil
}

// ListRoles implements store.AuthzStore by keyset cursor on (created_at,
// id), in one statement (the page's IDs are its roots), from the primary.
func (t *Tables) ListRoles(ctx context.Context, f store.RoleFilter) ([]store.Role, string, error) {
	limit := sqlrow.RoleLimit(f.Limit)
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Cursor != "" {
		at, id, err := sqlrow.DecodeRoleCursor(f.Cursor)
		if err != nil {
			return nil, "", t.errorf("list roles: %w", err)
		}
		where = append(where, fmt.Sprintf("(created_at, id) > (%s, %s)", arg(t.d.TimeValue(at)), arg(id)))
	}
	if f.OrganizationID != "" {
		org, ok := sqlrow.ParseID(f.OrganizationID)
		switch {
		case !ok && !f.Global:
			return nil, "", nil // no organisation has this ID
		case !ok:
			where = append(where, "organization_id IS NULL")
		case f.Global:
			where = append(where, "(organization_id IS NULL OR organization_id = "+arg(org)+")")
		default:
			where = append(where, "organization_id = "+arg(org))
		}
	} else if f.Global {
		where = append(where, "organization_id IS NULL")
	}
	roots := "SELECT id FROM roles"
	if len(where) > 0 {
		roots += " WHERE " + strings.Join(where, " AND ")
	}
	roots += " ORDER BY created_at, id LIMIT " + arg(limit+1)
	list, err := t.loadRoles(ctx, "", roots, args...)
	if err != nil {
		return nil, "", t.errorf("list roles: %w", err)
	}
	list, next := sqlrow.Page(list, limit, func(r store.Role) string { return sqlrow.EncodeRoleCursor(r.CreatedAt, r.ID) })
	return list, next, nil
}

// DeleteRoleTx is store.AuthzStore's DeleteRole without the transaction
// a forced deletion needs (the backends run it in one). Without force it
// is a single DELETE the foreign keys of role_grants and role_parents
// refuse while anything refers to the role. With force it locks the
// role's row first (on PostgreSQL: a concurrent grant of the role waits
// for the deletion, then finds no role), then removes the grants and
// links.
func (t *Tables) DeleteRoleTx(ctx context.Context, id string, force bool) (store.RoleDeletion, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.RoleDeletion{}, t.errorf("delete role %q: %w", id, store.ErrNotFound)
	}
	what := "delete role " + canon
	if !force {
		n, err := t.x.Exec(ctx, "DELETE FROM roles WHERE id = $1", canon)
		switch {
		case err != nil:
			return store.RoleDeletion{}, t.errorf("%s (granted, or a parent of another role): %w", what, t.d.MapInUseErr(err))
		case n == 0:
			return store.RoleDeletion{}, t.errorf("%s: %w", what, store.ErrNotFound)
		}
		return store.RoleDeletion{}, nil
	}
	var locked string
	if err := t.x.Row(ctx, Primary, "SELECT id FROM roles WHERE id = $1"+t.d.ForUpdate, canon).Scan(&locked); err != nil {
		return store.RoleDeletion{}, t.errorf("%s: %w", what, t.d.MapErr(err))
	}
	var (
		del store.RoleDeletion
		err error
	)
	del.Grants, err = rows(ctx, t, Write, t.scanGrant, "DELETE FROM role_grants WHERE role_id = $1 RETURNING "+sqlrow.GrantColumns, canon)
	if err != nil {
		return store.RoleDeletion{}, t.errorf("%s: grants: %w", what, err)
	}
	slices.SortFunc(del.Grants, func(a, b store.RoleGrant) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	del.Children, err = rows(ctx, t, Write, scanString, `UPDATE roles SET updated_at = $2
		WHERE id IN (SELECT role_id FROM role_parents WHERE parent_id = $1) RETURNING id`, canon, t.d.TimeValue(t.now()))
	if err != nil {
		return store.RoleDeletion{}, t.errorf("%s: children: %w", what, err)
	}
	slices.Sort(del.Children)
	if _, err := t.x.Exec(ctx, "DELETE FROM role_parents WHERE parent_id = $1", canon); err != nil {
		return store.RoleDeletion{}, t.errorf("%s: children: %w", what, t.d.MapErr(err))
	}
	if _, err := t.x.Exec(ctx, "DELETE FROM roles WHERE id = $1", canon); err != nil {
		return store.RoleDeletion{}, t.errorf("%s: %w", what, t.d.MapInUseErr(err))
	}
	return del, nil
}

func scanString(r sqlrow.Scanner) (string, error) {
	var s string
	err := r.Scan(&s)
	return s, err
}

// CreateGrant implements store.AuthzStore with two statements that need
// no transaction: the role's organisation (which never changes) is read to
// check the grant's scope, then the grant is inserted; a role deleted in
// between fails the insert's foreign key.
func (t *Tables) CreateGrant(ctx context.Context, g store.RoleGrant) (store.RoleGrant, error) {
	g, err := sqlrow.PrepareGrant(g, t.now())
	if err != nil {
		return store.RoleGrant{}, t.errorf("create grant: %w", err)
	}
	var org *string
	if err := t.x.Row(ctx, Primary, "SELECT CAST(organization_id AS TEXT) FROM roles WHERE id = $1", g.RoleID).Scan(&org); err != nil {
		return store.RoleGrant{}, t.errorf("create grant of role %s: %w", g.RoleID, t.d.MapErr(err))
	}
	if org != nil && *org != g.OrganizationID {
		return store.RoleGrant{}, t.errorf("create grant of role %s: the role belongs to organization %s: %w",
			g.RoleID, *org, store.ErrNotFound)
	}
	created, err := row(ctx, t, Write, t.scanGrant, `INSERT INTO role_grants (`+sqlrow.GrantColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+sqlrow.GrantColumns, sqlrow.GrantValues(g, t.d.TimeValue)...)
	if err != nil {
		return store.RoleGrant{}, t.errorf("create grant of role %s to user %s: %w", g.RoleID, g.UserID, t.d.MapRefErr(err))
	}
	return created, nil
}

// GetGrant implements store.AuthzStore, reading the primary.
func (t *Tables) GetGrant(ctx context.Context, id string) (store.RoleGrant, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.RoleGrant{}, t.errorf("get grant %q: %w", id, store.ErrNotFound)
	}
	g, err := row(ctx, t, Primary, t.scanGrant, "SELECT "+sqlrow.GrantColumns+" FROM role_grants WHERE id = $1", canon)
	if err != nil {
		return store.RoleGrant{}, t.errorf("get grant %s: %w", canon, t.d.MapErr(err))
	}
	return g, nil
}

// userGrants selects the grants of user $1, oldest first.
const userGrants = "SELECT " + sqlrow.GrantColumns + " FROM role_grants WHERE user_id = $1 ORDER BY created_at, id"

// liveUserGrants are userGrants of a user who is neither disabled nor
// deleted (none otherwise), in the same one statement.
const liveUserGrants = "SELECT " + sqlrow.GrantColumns + " FROM role_grants WHERE user_id = $1" +
	" AND EXISTS (SELECT 1 FROM users u WHERE u.id = $1 AND u.status <> 'disabled' AND u.deleted_at IS NULL)" +
	" ORDER BY created_at, id"

// ListUserGrants implements store.AuthzStore, from the primary.
func (t *Tables) ListUserGrants(ctx context.Context, userID string) ([]store.RoleGrant, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID
	}
	list, err := rows(ctx, t, Primary, t.scanGrant, userGrants, user)
	if err != nil {
		return nil, t.errorf("list grants of user %s: %w", user, err)
	}
	return list, nil
}

// ListGrantsOfRoles implements store.AuthzStore by keyset cursor on
// (created_at, id), from the primary.
func (t *Tables) ListGrantsOfRoles(ctx context.Context, roleIDs []string, cursor string, limit int) ([]store.RoleGrant, string, error) {
	if len(roleIDs) > store.MaxGrantRoles {
		return nil, "", t.errorf("list grants of roles: %d roles, at most %d", len(roleIDs), store.MaxGrantRoles)
	}
	limit = sqlrow.GrantLimit(limit)
	var (
		args   []any
		params []string
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	for _, id := range roleIDs {
		if canon, ok := sqlrow.ParseID(id); ok { // other IDs match no role
			params = append(params, arg(canon))
		}
	}
	where := "role_id IN (" + strings.Join(params, ", ") + ")"
	if cursor != "" {
		at, id, err := sqlrow.DecodeGrantCursor(cursor)
		if err != nil {
			return nil, "", t.errorf("list grants of roles: %w", err)
		}
		where += fmt.Sprintf(" AND (created_at, id) > (%s, %s)", arg(t.d.TimeValue(at)), arg(id))
	}
	if len(params) == 0 {
		return nil, "", nil
	}
	list, err := rows(ctx, t, Primary, t.scanGrant, "SELECT "+sqlrow.GrantColumns+" FROM role_grants WHERE "+where+
		" ORDER BY created_at, id LIMIT "+arg(limit+1), args...)
	if err != nil {
		return nil, "", t.errorf("list grants of roles: %w", err)
	}
	list, next := sqlrow.Page(list, limit, func(g store.RoleGrant) string { return sqlrow.EncodeGrantCursor(g.CreatedAt, g.ID) })
	return list, next, nil
}

// DeleteGrant implements store.AuthzStore.
func (t *Tables) DeleteGrant(ctx context.Context, id string) (store.RoleGrant, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.RoleGrant{}, t.errorf("delete grant %q: %w", id, store.ErrNotFound)
	}
	g, err := row(ctx, t, Write, t.scanGrant, "DELETE FROM role_grants WHERE id = $1 RETURNING "+sqlrow.GrantColumns, canon)
	if err != nil {
		return store.RoleGrant{}, t.errorf("delete grant %s: %w", canon, t.d.MapErr(err))
	}
	return g, nil
}

// ListExpiredGrants implements store.AuthzStore from the index on
// valid_until, reading the primary.
func (t *Tables) ListExpiredGrants(ctx context.Context, after, before time.Time) ([]store.RoleGrant, error) {
	if before.IsZero() {
		return nil, t.errorf("list expired grants: zero time")
	}
	q := "SELECT " + sqlrow.GrantColumns + " FROM role_grants WHERE valid_until <= $1"
	args := []any{t.d.TimeValue(before)}
	if !after.IsZero() {
		q += " AND valid_until > $2"
		args = append(args, t.d.TimeValue(after))
	}
	list, err := rows(ctx, t, Primary, t.scanGrant, q+" ORDER BY valid_until, id", args...)
	if err != nil {
		return nil, t.errorf("list expired grants: %w", err)
	}
	return list, nil
}

// reachableRoles walks the parents up from the roles granted to user $1.
// UNION (not UNION ALL) drops a role met twice, so a diamond is read once
// and a cycle ends the walk.
const reachableRoles = `WITH RECURSIVE reach (id) AS (
		SELECT role_id FROM role_grants WHERE user_id = $1
		UNION
		SELECT a.parent_id FROM role_parents a JOIN reach ON a.role_id = reach.id
	)`

// LoadUserAuthz implements store.AuthzStore with two statements on the
// primary: the user's grants, then (when there are some) roleParts over
// the roles reachable from them.
func (t *Tables) LoadUserAuthz(ctx context.Context, userID string) (store.UserAuthz, error) {
	ua := store.UserAuthz{Roles: map[string]store.Role{}}
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return ua, nil // no user has this ID
	}
	var err error
	if ua.Grants, err = rows(ctx, t, Primary, t.scanGrant, liveUserGrants, user); err != nil {
		return store.UserAuthz{}, t.errorf("load authz of user %s: grants: %w", user, err)
	}
	if len(ua.Grants) == 0 {
		return ua, nil
	}
	roles, err := t.loadRoles(ctx, reachableRoles, "SELECT id FROM reach", user)
	if err != nil {
		return store.UserAuthz{}, t.errorf("load authz of user %s: roles: %w", user, err)
	}
	for _, r := range roles {
		ua.Roles[r.ID] = r
	}
	return ua, nil
}
