package postgres

import (
	"context"
	"fmt"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func scanOrganization(row sqlrow.Scanner) (store.Organization, error) {
	return sqlrow.ScanOrganization(row, timeDest)
}

// CreateOrganization implements store.OrgStore. A zero CreatedAt (and
// UpdatedAt) is now; nil Policy is stored as {}. A taken slug or ID is
// ErrConflict.
func (s *Store) CreateOrganization(ctx context.Context, o store.Organization) (store.Organization, error) {
	p, err := sqlrow.PrepareOrganization(o, s.now(), true)
	if err != nil {
		return store.Organization{}, fmt.Errorf("postgres: create organization: %w", err)
	}
	created, err := scanOrganization(s.q.QueryRow(ctx, `INSERT INTO organizations (`+sqlrow.OrganizationColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+sqlrow.OrganizationColumns,
		p.ID, p.Name, p.Slug, p.PolicyJSON, p.CreatedAt, p.UpdatedAt))
	if err != nil {
		return store.Organization{}, fmt.Errorf("postgres: create organization: %w", mapErr(err))
	}
	return created, nil
}

// GetOrganization implements store.OrgStore, reading the primary.
func (s *Store) GetOrganization(ctx context.Context, id string) (store.Organization, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.Organization{}, fmt.Errorf("postgres: get organization %q: %w", id, store.ErrNotFound)
	}
	o, err := scanOrganization(s.q.QueryRow(ctx, "SELECT "+sqlrow.OrganizationColumns+" FROM organizations WHERE id = $1", canon))
	if err != nil {
		return store.Organization{}, fmt.Errorf("postgres: get organization %s: %w", canon, mapErr(err))
	}
	return o, nil
}

// ListOrganizations implements store.OrgStore: by name compared by code
// point (as on SQLite, whatever the database's locale), ties broken by ID.
func (s *Store) ListOrganizations(ctx context.Context) ([]store.Organization, error) {
	list, err := s.queryOrganizations(ctx, "SELECT "+sqlrow.OrganizationColumns+
		` FROM organizations ORDER BY name COLLATE "C", id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list organizations: %w", err)
	}
	return list, nil
}

// UpdateOrganization implements store.OrgStore; UpdatedAt becomes now.
func (s *Store) UpdateOrganization(ctx context.Context, o store.Organization) (store.Organization, error) {
	p, err := sqlrow.PrepareOrganization(o, s.now(), false)
	if err != nil {
		return store.Organization{}, fmt.Errorf("postgres: update organization: %w", err)
	}
	updated, err := scanOrganization(s.q.QueryRow(ctx, `UPDATE organizations SET name = $2, slug = $3, policy = $4, updated_at = $5
		WHERE id = $1 RETURNING `+sqlrow.OrganizationColumns,
		p.ID, p.Name, p.Slug, p.PolicyJSON, sqlrow.Micro(s.now())))
	if err != nil {
		return store.Organization{}, fmt.Errorf("postgres: update organization %s: %w", p.ID, mapErr(err))
	}
	return updated, nil
}

// DeleteOrganization implements store.OrgStore; the memberships go with
// it (ON DELETE CASCADE). ErrNotFound if absent.
func (s *Store) DeleteOrganization(ctx context.Context, id string) error {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return fmt.Errorf("postgres: delete organization %q: %w", id, store.ErrNotFound)
	}
	tag, err := s.q.Exec(ctx, "DELETE FROM organizations WHERE id = $1", canon)
	if err != nil {
		return fmt.Errorf("postgres: delete organization %s: %w", canon, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete organization %s: %w", canon, store.ErrNotFound)
	}
	return nil
}

// SetMembership implements store.OrgStore with one upsert. A new
// membership gets CreatedAt (now when zero); a role change keeps the
// original. An organisation or user that does not exist is ErrNotFound.
func (s *Store) SetMembership(ctx context.Context, m store.OrgMembership) error {
	m, err := sqlrow.PrepareMembership(m, s.now())
	if err != nil {
		return fmt.Errorf("postgres: set membership: %w", err)
	}
	_, err = s.q.Exec(ctx, `INSERT INTO organization_members (`+sqlrow.MembershipColumns+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role`,
		m.OrgID, m.UserID, m.Role, m.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: set membership of user %s in organization %s: %w", m.UserID, m.OrgID, mapRefErr(err))
	}
	return nil
}

// RemoveMembership implements store.OrgStore.
func (s *Store) RemoveMembership(ctx context.Context, orgID, userID string) error {
	org, okOrg := sqlrow.ParseID(orgID)
	user, okUser := sqlrow.ParseID(userID)
	if !okOrg || !okUser {
		return fmt.Errorf("postgres: remove membership of user %q in organization %q: %w", userID, orgID, store.ErrNotFound)
	}
	tag, err := s.q.Exec(ctx, "DELETE FROM organization_members WHERE org_id = $1 AND user_id = $2", org, user)
	if err != nil {
		return fmt.Errorf("postgres: remove membership of user %s in organization %s: %w", user, org, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: remove membership of user %s in organization %s: %w", user, org, store.ErrNotFound)
	}
	return nil
}

// ListMembers implements store.OrgStore: oldest membership first, ties
// broken by user ID. An organisation that does not exist has no members.
func (s *Store) ListMembers(ctx context.Context, orgID string) ([]store.OrgMembership, error) {
	org, ok := sqlrow.ParseID(orgID)
	if !ok {
		return nil, nil
	}
	rows, err := s.q.Query(ctx, "SELECT "+sqlrow.MembershipColumns+
		" FROM organization_members WHERE org_id = $1"+
		" AND user_id NOT IN (SELECT id FROM users WHERE deleted_at IS NOT NULL) ORDER BY created_at, user_id", org)
	if err != nil {
		return nil, fmt.Errorf("postgres: list members of organization %s: %w", org, mapErr(err))
	}
	defer rows.Close()
	var list []store.OrgMembership
	for rows.Next() {
		m, err := sqlrow.ScanMembership(rows, timeDest)
		if err != nil {
			return nil, fmt.Errorf("postgres: list members of organization %s: %w", org, err)
		}
		list = append(list, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list members of organization %s: %w", org, mapErr(err))
	}
	return list, nil
}

// UserOrganizations implements store.OrgStore: ordered like
// ListOrganizations, read from the primary (a membership just removed must
// not lend its policy).
func (s *Store) UserOrganizations(ctx context.Context, userID string) ([]store.Organization, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID, so none belongs anywhere
	}
	list, err := s.queryOrganizations(ctx, userOrganizations, user)
	if err != nil {
		return nil, fmt.Errorf("postgres: organizations of user %s: %w", user, err)
	}
	return list, nil
}

// userOrganizations selects the organisations of user $1.
const userOrganizations = "SELECT " + sqlrow.OrganizationColumns + ` FROM organizations
	WHERE id IN (SELECT org_id FROM organization_members WHERE user_id = $1)
	ORDER BY name COLLATE "C", id`

func (s *Store) queryOrganizations(ctx context.Context, query string, args ...any) ([]store.Organization, error) {
	rows, err := s.q.Query(ctx, query, args...)
	return collect(rows, err, scanOrganization)
}
