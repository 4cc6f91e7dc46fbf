package sqldb

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func (t *Tables) scanOrganization(r sqlrow.Scanner) (store.Organization, error) {
	return sqlrow.ScanOrganization(r, t.d.TimeDest)
}

// CreateOrganization implements store.OrgStore. A zero CreatedAt (and
// UpdatedAt) is now; nil Policy is stored as {}. A taken slug or ID is
// ErrConflict.
func (t *Tables) CreateOrganization(ctx context.Context, o store.Organization) (store.Organization, error) {
	p, err := sqlrow.PrepareOrganization(o, t.now(), true)
	if err != nil {
		return store.Organization{}, t.errorf("create organization: %w", err)
	}
	created, err := row(ctx, t, Write, t.scanOrganization, `INSERT INTO organizations (`+sqlrow.OrganizationColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+sqlrow.OrganizationColumns,
		p.ID, p.Name, p.Slug, p.PolicyJSON, t.d.TimeValue(p.CreatedAt), t.d.TimeValue(p.UpdatedAt))
	if err != nil {
		return store.Organization{}, t.errorf("create organization: %w", t.d.MapErr(err))
	}
	return created, nil
}

// GetOrganization implements store.OrgStore, reading the primary.
func (t *Tables) GetOrganization(ctx context.Context, id string) (store.Organization, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.Organization{}, t.errorf("get organization %q: %w", id, store.ErrNotFound)
	}
	o, err := row(ctx, t, Primary, t.scanOrganization, "SELECT "+sqlrow.OrganizationColumns+" FROM organizations WHERE id = $1", canon)
	if err != nil {
		return store.Organization{}, t.errorf("get organization %s: %w", canon, t.d.MapErr(err))
	}
	return o, nil
}

// ListOrganizations implements store.OrgStore: by name compared by code
// point (whatever a PostgreSQL database's locale), ties broken by ID, from
// the primary.
func (t *Tables) ListOrganizations(ctx context.Context) ([]store.Organization, error) {
	list, err := rows(ctx, t, Primary, t.scanOrganization, "SELECT "+sqlrow.OrganizationColumns+
		" FROM organizations ORDER BY name"+t.d.ByCodePoint+", id")
	if err != nil {
		return nil, t.errorf("list organizations: %w", err)
	}
	return list, nil
}

// UpdateOrganization implements store.OrgStore; UpdatedAt becomes now.
func (t *Tables) UpdateOrganization(ctx context.Context, o store.Organization) (store.Organization, error) {
	p, err := sqlrow.PrepareOrganization(o, t.now(), false)
	if err != nil {
		return store.Organization{}, t.errorf("update organization: %w", err)
	}
	updated, err := row(ctx, t, Write, t.scanOrganization, `UPDATE organizations SET name = $2, slug = $3, policy = $4, updated_at = $5
		WHERE id = $1 RETURNING `+sqlrow.OrganizationColumns,
		p.ID, p.Name, p.Slug, p.PolicyJSON, t.d.TimeValue(t.now()))
	if err != nil {
		return store.Organization{}, t.errorf("update organization %s: %w", p.ID, t.d.MapErr(err))
	}
	return updated, nil
}

// DeleteOrganization implements store.OrgStore; the memberships go with
// it (ON DELETE CASCADE). ErrNotFound if absent.
func (t *Tables) DeleteOrganization(ctx context.Context, id string) error {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return t.errorf("delete organization %q: %w", id, store.ErrNotFound)
	}
	return t.deleteOne(ctx, "delete organization "+canon, "DELETE FROM organizations WHERE id = $1", canon)
}

// SetMembership implements store.OrgStore with one upsert. A new
// membership gets CreatedAt (now when zero); a role change keeps the
// original. An organisation or user that does not exist is ErrNotFound.
func (t *Tables) SetMembership(ctx context.Context, m store.OrgMembership) error {
	m, err := sqlrow.PrepareMembership(m, t.now())
	if err != nil {
		return t.errorf("set membership: %w", err)
	}
	_, err = t.x.Exec(ctx, `INSERT INTO organization_members (`+sqlrow.MembershipColumns+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role`,
		m.OrgID, m.UserID, m.Role, t.d.TimeValue(m.CreatedAt))
	if err != nil {
		return t.errorf("set membership of user %s in organization %s: %w", m.UserID, m.OrgID, t.d.MapRefErr(err))
	}
	return nil
}

// RemoveMembership implements store.OrgStore.
func (t *Tables) RemoveMembership(ctx context.Context, orgID, userID string) error {
	org, okOrg := sqlrow.ParseID(orgID)
	user, okUser := sqlrow.ParseID(userID)
	if !okOrg || !okUser {
		return t.errorf("remove membership of user %q in organization %q: %w", userID, orgID, store.ErrNotFound)
	}
	return t.deleteOne(ctx, "remove membership of user "+user+" in organization "+org,
		"DELETE FROM organization_members WHERE org_id = $1 AND user_id = $2", org, user)
}

// ListMembers implements store.OrgStore: oldest membership first, ties
// broken by user ID, from the primary. An organisation that does not exist
// has no members.
func (t *Tables) ListMembers(ctx context.Context, orgID string) ([]store.OrgMembership, error) {
	org, ok := sqlrow.ParseID(orgID)
	if !ok {
		return nil, nil
	}
	list, err := rows(ctx, t, Primary, t.scanMembership, "SELECT "+sqlrow.MembershipColumns+
		" FROM organization_members WHERE org_id = $1"+
		" AND user_id NOT IN (SELECT id FROM users WHERE deleted_at IS NOT NULL) ORDER BY created_at, user_id", org)
	if err != nil {
		return nil, t.errorf("list members of organization %s: %w", org, err)
	}
	return list, nil
}

func (t *Tables) scanMembership(r sqlrow.Scanner) (store.OrgMembership, error) {
	return sqlrow.ScanMembership(r, t.d.TimeDest)
}

// UserOrganizations implements store.OrgStore: ordered like
// ListOrganizations, read from the primary (a membership just removed must
// not lend its policy).
func (t *Tables) UserOrganizations(ctx context.Context, userID string) ([]store.Organization, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID, so none belongs anywhere
	}
	list, err := rows(ctx, t, Primary, t.scanOrganization, "SELECT "+sqlrow.OrganizationColumns+` FROM organizations
		WHERE id IN (SELECT org_id FROM organization_members WHERE user_id = $1)
		ORDER BY name`+t.d.ByCodePoint+`, id`, user)
	if err != nil {
		return nil, t.errorf("organizations of user %s: %w", user, err)
	}
	return list, nil
}
