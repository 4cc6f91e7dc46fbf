package sqlrow

import (
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// PermissionColumns is the column list ScanPermission expects, in order.
const PermissionColumns = "name, description, created_at"

// ScanPermission scans one row selected with PermissionColumns.
func ScanPermission(s Scanner, td TimeDest) (store.Permission, error) {
	var (
		p           store.Permission
		description *string
	)
	if err := s.Scan(&p.Name, &description, td(&p.CreatedAt)); err != nil {
		return store.Permission{}, err
	}
	p.Description = deref(description)
	utc(&p.CreatedAt)
	return p, nil
}

// PreparePermission validates p for CreatePermission and fills in
// CreatedAt (now when zero), to the microsecond. Text that no backend can
// store is store.ErrInvalidText.
func PreparePermission(p store.Permission, now time.Time) (store.Permission, error) {
	switch {
	case p.Name == "":
		return p, errors.New("permission: Name is required")
	case !validText(p.Name) || !validText(p.Description):
		return p, fmt.Errorf("permission: Name and Description: %w", store.ErrInvalidText)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	p.CreatedAt = Micro(p.CreatedAt)
	return p, nil
}

// Role effects: the effect column of role_permissions.
const (
	EffectAllow = "allow"
	EffectDeny  = "deny"
)

// PrepareRole validates r for CreateRole (create true: an empty ID becomes
// a UUIDv7; CreatedAt is now when zero and UpdatedAt CreatedAt when zero)
// or UpdateRole (create false: an ID that is not a UUID is
// store.ErrNotFound; UpdatedAt is now when zero). An organisation or
// parent ID that is not a UUID is store.ErrNotFound: no row has it. Text
// no backend can store is store.ErrInvalidText. IDs come back in canonical
// form, times in UTC to the microsecond, empty lists nil.
func PrepareRole(r store.Role, now time.Time, create bool) (store.Role, error) {
	if create {
		id, err := newID(r.ID)
		if err != nil {
			return r, fmt.Errorf("role: %w", err)
		}
		r.ID = id
		if r.CreatedAt.IsZero() {
			r.CreatedAt = now
		}
		if r.UpdatedAt.IsZero() {
			r.UpdatedAt = r.CreatedAt
		}
		r.CreatedAt = Micro(r.CreatedAt)
	} else {
		id, ok := ParseID(r.ID)
		if !ok {
			return r, fmt.Errorf("role %q: %w", r.ID, store.ErrNotFound)
		}
		r.ID = id
		if r.UpdatedAt.IsZero() {
			r.UpdatedAt = now
		}
	}
	r.UpdatedAt = Micro(r.UpdatedAt)
	switch {
	case r.Name == "":
		return r, errors.New("role: Name is required")
	case !validText(r.Name) || !validText(r.Description):
		return r, fmt.Errorf("role: Name and Description: %w", store.ErrInvalidText)
	}
	if create && r.OrganizationID != "" {
		org, ok := ParseID(r.OrganizationID)
		if !ok {
			return r, fmt.Errorf("role: organization %q: %w", r.OrganizationID, store.ErrNotFound)
		}
		r.OrganizationID = org
	}
	var err error
	if r.Allow, err = prepareRolePermissions("Allow", r.Allow); err != nil {
		return r, err
	}
	if r.Deny, err = prepareRolePermissions("Deny", r.Deny); err != nil {
		return r, err
	}
	seen := make(map[string]bool, len(r.Parents))
	parents := make([]string, 0, len(r.Parents))
	for _, p := range r.Parents {
		id, ok := ParseID(p)
		switch {
		case !ok:
			return r, fmt.Errorf("role: parent %q: %w", p, store.ErrNotFound)
		case id == r.ID:
			return r, errors.New("role: a role cannot be its own parent")
		case seen[id]:
			return r, fmt.Errorf("role: parent %s is listed twice", id)
		}
		seen[id] = true
		parents = append(parents, id)
	}
	r.Parents = nilIfEmpty(parents)
	return r, nil
}

func prepareRolePermissions(what string, l []store.RolePermission) ([]store.RolePermission, error) {
	if len(l) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool, len(l))
	for _, p := range l {
		switch {
		case p.Permission == "":
			return nil, fmt.Errorf("role: %s: Permission is required", what)
		case !validText(p.Permission) || !validText(p.Condition):
			return nil, fmt.Errorf("role: %s: Permission and Condition: %w", what, store.ErrInvalidText)
		case seen[p.Permission]:
			return nil, fmt.Errorf("role: %s: permission %q is listed twice", what, p.Permission)
		}
		seen[p.Permission] = true
	}
	return l, nil
}

// GrantColumns is the column list ScanGrant expects, in order; the values
// GrantValues returns are in the same order.
const GrantColumns = "id, user_id, role_id, organization_id, valid_from, valid_until, condition, created_at, created_by"

// ScanGrant scans one row selected with GrantColumns. td scans a NOT NULL
// time column, ntd a nullable one.
func ScanGrant(s Scanner, td, ntd TimeDest) (store.RoleGrant, error) {
	var (
		g                    store.RoleGrant
		org, cond, createdBy *string
	)
	err := s.Scan(&g.ID, &g.UserID, &g.RoleID, &org, ntd(&g.ValidFrom), ntd(&g.ValidUntil), &cond,
		td(&g.CreatedAt), &createdBy)
	if err != nil {
		return store.RoleGrant{}, err
	}
	g.OrganizationID, g.Condition, g.CreatedBy = deref(org), deref(cond), deref(createdBy)
	utc(&g.ValidFrom, &g.ValidUntil, &g.CreatedAt)
	return g, nil
}

// GrantValues returns the values of the GrantColumns columns of a grant
// PrepareGrant returned, in order.
func GrantValues(g store.RoleGrant, tv TimeValue) []any {
	return []any{
		g.ID, g.UserID, g.RoleID, Null(g.OrganizationID), tv(g.ValidFrom), tv(g.ValidUntil), Null(g.Condition),
		tv(g.CreatedAt), Null(g.CreatedBy),
	}
}

// PrepareGrant validates g for CreateGrant and fills in what the store
// sets: the ID (a UUIDv7 when empty) and CreatedAt (now when zero). A user,
// role or organisation ID that is not a UUID is store.ErrNotFound; text no
// backend can store is store.ErrInvalidText. IDs come back in canonical
// form and times in UTC to the microsecond.
func PrepareGrant(g store.RoleGrant, now time.Time) (store.RoleGrant, error) {
	id, err := newID(g.ID)
	if err != nil {
		return g, fmt.Errorf("grant: %w", err)
	}
	g.ID = id
	for _, ref := range []struct {
		what string
		id   *string
	}{{"user", &g.UserID}, {"role", &g.RoleID}, {"organization", &g.OrganizationID}} {
		if ref.what == "organization" && *ref.id == "" {
			continue
		}
		canon, ok := ParseID(*ref.id)
		if !ok {
			return g, fmt.Errorf("grant: %s %q: %w", ref.what, *ref.id, store.ErrNotFound)
		}
		*ref.id = canon
	}
	if !validText(g.Condition) || !validText(g.CreatedBy) {
		return g, fmt.Errorf("grant: Condition and CreatedBy: %w", store.ErrInvalidText)
	}
	g.ValidFrom, g.ValidUntil = microOrZero(g.ValidFrom), microOrZero(g.ValidUntil)
	if !g.ValidFrom.IsZero() && !g.ValidUntil.IsZero() && !g.ValidFrom.Before(g.ValidUntil) {
		return g, errors.New("grant: ValidFrom must be before ValidUntil")
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = now
	}
	g.CreatedAt = Micro(g.CreatedAt)
	return g, nil
}

// RoleLimit and GrantLimit apply a listing's default and maximum to a
// requested page size.
func RoleLimit(n int) int  { return PageLimit(n, store.DefaultRoleLimit, store.MaxRoleLimit) }
func GrantLimit(n int) int { return PageLimit(n, store.DefaultGrantLimit, store.MaxGrantLimit) }

// Cursor prefixes of the role and grant listings.
const (
	roleCursorVersion  = "r1"
	grantCursorVersion = "g1"
)

// EncodeRoleCursor and EncodeGrantCursor return the opaque keyset cursor
// positioned after the role or grant created at t with this id.
func EncodeRoleCursor(t time.Time, id string) string {
	return EncodeKeyCursor(roleCursorVersion, t, id)
}

func EncodeGrantCursor(t time.Time, id string) string {
	return EncodeKeyCursor(grantCursorVersion, t, id)
}

// DecodeRoleCursor and DecodeGrantCursor reverse EncodeRoleCursor and
// EncodeGrantCursor. Malformed input, another listing's cursor or an ID
// that is not a UUID is an error wrapping store.ErrInvalidCursor.
func DecodeRoleCursor(s string) (time.Time, string, error) {
	return decodeIDCursor(roleCursorVersion, s)
}

func DecodeGrantCursor(s string) (time.Time, string, error) {
	return decodeIDCursor(grantCursorVersion, s)
}

func decodeIDCursor(prefix, s string) (time.Time, string, error) {
	t, id, err := DecodeKeyCursor(prefix, s)
	if err != nil {
		return t, id, err
	}
	canon, ok := ParseID(id)
	if !ok || canon != id {
		return time.Time{}, "", fmt.Errorf("%w: bad id", store.ErrInvalidCursor)
	}
	return t, id, nil
}
