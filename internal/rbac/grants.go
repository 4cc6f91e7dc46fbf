package rbac

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// GrantInput is a grant to make. Role is a role ID or name (a name is
// looked up among OrganizationID's roles first, then the global ones);
// ValidFrom and ValidUntil are RFC 3339 times ("" for unbounded). UserID
// is used by bulk changes only (the single grant takes it from the path).
type GrantInput struct {
	UserID         string `json:"user_id,omitempty"`
	Role           string `json:"role"`
	OrganizationID string `json:"organization_id"`
	ValidFrom      string `json:"valid_from"`
	ValidUntil     string `json:"valid_until"`
	Condition      string `json:"condition"`
}

// checkGrant validates in (field names prefixed with prefix) and returns
// the grant to store with its role. userKnown is false when the user was
// not found (reported by the caller).
func (s *Service) checkGrant(ctx context.Context, tx Tx, f *fieldErrs, prefix string, in GrantInput) (store.RoleGrant, store.Role, error) {
	g := store.RoleGrant{UserID: in.UserID, OrganizationID: in.OrganizationID, Condition: in.Condition}
	var role store.Role
	if in.OrganizationID != "" {
		if _, err := tx.GetOrganization(ctx, in.OrganizationID); errors.Is(err, store.ErrNotFound) {
			f.add(prefix+"organization_id", "unknown", "No organisation has this ID.")
		} else if err != nil {
			return g, role, err
		}
	}
	if in.Role == "" {
		f.add(prefix+"role", "required", "role is required (a role ID or name).")
	} else {
		r, err := findRole(ctx, tx, in.Role, in.OrganizationID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			f.add(prefix+"role", "unknown", fmt.Sprintf("No role %q.", in.Role))
		case err != nil:
			return g, role, err
		case r.OrganizationID != "" && r.OrganizationID != in.OrganizationID:
			f.add(prefix+"role", "scope", fmt.Sprintf("The role %s belongs to organisation %s: grant it within that organisation.", in.Role, r.OrganizationID))
		default:
			role, g.RoleID = r, r.ID
		}
	}
	var err error
	if g.ValidFrom, err = parseTime(in.ValidFrom); err != nil {
		f.add(prefix+"valid_from", "format", "valid_from must be an RFC 3339 time.")
	}
	if g.ValidUntil, err = parseTime(in.ValidUntil); err != nil {
		f.add(prefix+"valid_until", "format", "valid_until must be an RFC 3339 time.")
	}
	if !g.ValidFrom.IsZero() && !g.ValidUntil.IsZero() && !g.ValidFrom.Before(g.ValidUntil) {
		f.add(prefix+"valid_until", "order", "valid_until must be after valid_from.")
	}
	s.compile(f, prefix+"condition", in.Condition)
	return g, role, nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// Grant gives a role to the user userID. The user is the path's: unknown,
// it is ErrNotFound (404); what the body names (role, organisation) is a
// 422 field error when unknown.
func (s *Service) Grant(ctx context.Context, m httpapi.Meta, userID string, in GrantInput) (GrantView, error) {
	in.UserID = userID
	var out GrantView
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.GetUser(ctx, userID); err != nil {
			return err
		}
		f := &fieldErrs{}
		g, role, err := s.checkGrant(ctx, tx, f, "", in)
		if err != nil {
			return err
		}
		if !f.empty() {
			return f.problem()
		}
		g.CreatedAt, g.CreatedBy = s.d.Now().UTC(), m.ActorID
		if g, err = tx.CreateGrant(ctx, g); err != nil {
			return err
		}
		out = grantView(g, role.Name)
		return tx.AppendAuditEvent(ctx, s.event(m, userID, "rbac.grant_created", nil, out, nil))
	})
	if err != nil {
		return GrantView{}, err
	}
	s.changed(ctx, Change{Users: []string{userID}})
	return out, nil
}

// roleNames names the roles of grants.
func roleNames(ctx context.Context, tx Tx, grants []store.RoleGrant) (map[string]string, error) {
	out := map[string]string{}
	for _, g := range grants {
		if _, ok := out[g.RoleID]; ok {
			continue
		}
		r, err := tx.GetRole(ctx, g.RoleID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		out[g.RoleID] = r.Name
	}
	return out, nil
}

// UserGrants lists the grants of a user (ErrNotFound for an unknown user).
func (s *Service) UserGrants(ctx context.Context, userID string) ([]GrantView, error) {
	if _, err := s.d.Store.GetUser(ctx, userID); err != nil {
		return nil, err
	}
	grants, err := s.d.Store.ListUserGrants(ctx, userID)
	if err != nil {
		return nil, err
	}
	names, err := roleNames(ctx, s.d.Store, grants)
	if err != nil {
		return nil, err
	}
	out := make([]GrantView, len(grants))
	for i, g := range grants {
		out[i] = grantView(g, names[g.RoleID])
	}
	return out, nil
}

// UserGrant returns the user's grant grantID (ErrGrantNotFound when there
// is no such grant or it is another user's).
func (s *Service) UserGrant(ctx context.Context, userID, grantID string) (GrantView, error) {
	g, err := s.d.Store.GetGrant(ctx, grantID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && g.UserID != userID) {
		return GrantView{}, ErrGrantNotFound
	}
	if err != nil {
		return GrantView{}, err
	}
	names, err := roleNames(ctx, s.d.Store, []store.RoleGrant{g})
	if err != nil {
		return GrantView{}, err
	}
	return grantView(g, names[g.RoleID]), nil
}

// Revoke deletes the user's grant grantID (ErrGrantNotFound when there is
// no such grant or it is another user's).
func (s *Service) Revoke(ctx context.Context, m httpapi.Meta, userID, grantID string) error {
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		g, err := tx.GetGrant(ctx, grantID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && g.UserID != userID) {
			return ErrGrantNotFound
		}
		if err != nil {
			return err
		}
		names, err := roleNames(ctx, tx, []store.RoleGrant{g})
		if err != nil {
			return err
		}
		if _, err := tx.DeleteGrant(ctx, grantID); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, s.event(m, userID, "rbac.grant_revoked", grantView(g, names[g.RoleID]), nil, nil))
	})
	if err != nil {
		return err
	}
	s.changed(ctx, Change{Users: []string{userID}})
	return nil
}

// BulkInput is a bulk change: grants to make and grant IDs to revoke.
type BulkInput struct {
	Grant  []GrantInput `json:"grant"`
	Revoke []string     `json:"revoke"`
}

// BulkResult is what a bulk change did.
type BulkResult struct {
	Granted []GrantView `json:"granted"`
	Revoked []string    `json:"revoked"`
}

// Scope decides whether the caller may change the roles and grants of an
// organisation ("" for global ones): nil when it may, an error (a 403
// problem) when not.
type Scope func(ctx context.Context, orgID string) error

// Bulk applies in one transaction the grants and revocations of in (at
// most MaxBulkItems together), after validating all of them: any invalid
// item and nothing changes, the answer being a 422 bulk_failed problem
// whose field errors name each item ("grant[3].role", "revoke[0]").
// scope, when not nil, is asked about the organisation of every grant
// made or revoked.
func (s *Service) Bulk(ctx context.Context, m httpapi.Meta, in BulkInput, scope Scope) (BulkResult, error) {
	if n := len(in.Grant) + len(in.Revoke); n > MaxBulkItems {
		return BulkResult{}, invalid(CodeBulkFailed, fmt.Sprintf("A bulk change holds at most %d items, not %d; nothing was changed.", MaxBulkItems, n),
			httpapi.FieldError{Field: "grant", Rule: "max_items", Message: fmt.Sprintf("grant and revoke hold at most %d items together.", MaxBulkItems)})
	}
	out := BulkResult{Granted: []GrantView{}, Revoked: []string{}}
	var users []string
	addUser := func(id string) {
		if !contains(users, id) {
			users = append(users, id)
		}
	}
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		f := &fieldErrs{}
		type planned struct {
			g    store.RoleGrant
			role string
		}
		var plan []planned
		for i, item := range in.Grant {
			prefix := fmt.Sprintf("grant[%d].", i)
			if item.UserID == "" {
				f.add(prefix+"user_id", "required", "user_id is required.")
			} else if _, err := tx.GetUser(ctx, item.UserID); errors.Is(err, store.ErrNotFound) {
				f.add(prefix+"user_id", "unknown", "No user has this ID.")
			} else if err != nil {
				return err
			}
			g, role, err := s.checkGrant(ctx, tx, f, prefix, item)
			if err != nil {
				return err
			}
			if scope != nil {
				if err := scope(ctx, item.OrganizationID); err != nil {
					return err
				}
			}
			plan = append(plan, planned{g: g, role: role.Name})
		}
		var revoke []GrantView
		for i, id := range in.Revoke {
			at := fmt.Sprintf("revoke[%d]", i)
			if contains(in.Revoke[:i], id) {
				f.add(at, "duplicate", "This grant is listed twice.")
				continue
			}
			g, err := tx.GetGrant(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				f.add(at, "unknown", "No grant has this ID.")
				continue
			} else if err != nil {
				return err
			}
			if scope != nil {
				if err := scope(ctx, g.OrganizationID); err != nil {
					return err
				}
			}
			names, err := roleNames(ctx, tx, []store.RoleGrant{g})
			if err != nil {
				return err
			}
			revoke = append(revoke, grantView(g, names[g.RoleID]))
		}
		if !f.empty() {
			return invalid(CodeBulkFailed, "The bulk change has invalid items; nothing was changed.", f.list...)
		}
		now := s.d.Now().UTC()
		for i, p := range plan {
			p.g.CreatedAt, p.g.CreatedBy = now, m.ActorID
			g, err := tx.CreateGrant(ctx, p.g)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
				// Changed since it was checked.
				return invalid(CodeBulkFailed, "The bulk change has invalid items; nothing was changed.",
					httpapi.FieldError{Field: fmt.Sprintf("grant[%d]", i), Rule: "conflict", Message: "The user, role or organisation changed meanwhile."})
			} else if err != nil {
				return err
			}
			out.Granted = append(out.Granted, grantView(g, p.role))
			addUser(g.UserID)
		}
		for i, g := range revoke {
			if _, err := tx.DeleteGrant(ctx, g.ID); errors.Is(err, store.ErrNotFound) {
				return invalid(CodeBulkFailed, "The bulk change has invalid items; nothing was changed.",
					httpapi.FieldError{Field: fmt.Sprintf("revoke[%d]", i), Rule: "unknown", Message: "The grant was revoked meanwhile."})
			} else if err != nil {
				return err
			}
			out.Revoked = append(out.Revoked, g.ID)
			addUser(g.UserID)
		}
		if revoke == nil {
			revoke = []GrantView{}
		}
		return tx.AppendAuditEvent(ctx, s.event(m, "", "rbac.grants_bulk",
			map[string]any{"revoked": revoke}, map[string]any{"granted": out.Granted}, nil))
	})
	if err != nil {
		return BulkResult{}, err
	}
	if len(users) > 0 {
		s.changed(ctx, Change{Users: users})
	}
	return out, nil
}

// RevokeAllOf deletes every grant of a user inside the caller's
// transaction tx, each with its rbac.grant_revoked audit event (reason
// in the event's data): a deleted account keeps no access that a check
// for its ID could still report. The caller invalidates the user's cached
// permissions once tx commits.
func (s *Service) RevokeAllOf(ctx context.Context, tx Tx, m httpapi.Meta, userID, reason string) error {
	grants, err := tx.ListUserGrants(ctx, userID)
	if err != nil || len(grants) == 0 {
		return err
	}
	names, err := roleNames(ctx, tx, grants)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if _, err := tx.DeleteGrant(ctx, g.ID); err != nil {
			return err
		}
		if err := tx.AppendAuditEvent(ctx, s.event(m, userID, "rbac.grant_revoked", grantView(g, names[g.RoleID]), nil, map[string]any{"reason": reason})); err != nil {
			return err
		}
	}
	return nil
}
