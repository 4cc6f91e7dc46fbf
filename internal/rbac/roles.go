package rbac

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// RoleInput is a role to create. Parents are role IDs or names (a name is
// looked up among the roles of OrganizationID first, then the global
// ones).
type RoleInput struct {
	Name           string   `json:"name"`
	Description    string   `json:"description"`
	Permissions    []Rule   `json:"permissions"`
	Deny           []Rule   `json:"deny"`
	Parents        []string `json:"parents"`
	OrganizationID string   `json:"organization_id"`
}

// RolePatch is a partial change of a role: the fields present replace the
// role's.
type RolePatch struct {
	Name        *string   `json:"name"`
	Description *string   `json:"description"`
	Permissions *[]Rule   `json:"permissions"`
	Deny        *[]Rule   `json:"deny"`
	Parents     *[]string `json:"parents"`
}

// fieldErrs collects the field errors of an input; condition records
// whether one of them is a condition the compiler refused, with its first
// message.
type fieldErrs struct {
	list      []httpapi.FieldError
	condition string
}

func (f *fieldErrs) add(field, rule, msg string) {
	f.list = append(f.list, httpapi.FieldError{Field: field, Rule: rule, Message: msg})
}

func (f *fieldErrs) empty() bool { return len(f.list) == 0 }

// problem is the 422 answer: invalid_condition when a condition does not
// compile, otherwise validation_failed.
func (f *fieldErrs) problem() error {
	if f.condition != "" {
		return invalid(CodeInvalidCondition, f.condition, f.list...)
	}
	return httpapi.Validation(f.list...)
}

// compile checks a condition at field; "" is no condition.
func (s *Service) compile(f *fieldErrs, field, expr string) {
	if expr == "" {
		return
	}
	_, err := s.d.Compiler.Compile(expr)
	if err == nil {
		return
	}
	var ce *authz.ConditionError
	msg := err.Error()
	if errors.As(err, &ce) {
		msg = ce.Message
	}
	if f.condition == "" {
		f.condition = msg
	}
	f.add(field, CodeInvalidCondition, msg)
}

func checkName(f *fieldErrs, name string) {
	switch {
	case name == "":
		f.add("name", "required", "name is required.")
	case strings.TrimSpace(name) != name:
		f.add("name", "format", "name must not start or end with spaces.")
	case utf8.RuneCountInString(name) > MaxNameLength:
		f.add("name", "max_length", fmt.Sprintf("name must be at most %d characters.", MaxNameLength))
	}
}

func checkDescription(f *fieldErrs, d string) {
	if utf8.RuneCountInString(d) > MaxDescriptionLength {
		f.add("description", "max_length", fmt.Sprintf("description must be at most %d characters.", MaxDescriptionLength))
	}
}

// rules checks the rules of field (permissions or deny): each a
// registered permission, once, with a condition that compiles.
func (s *Service) rules(ctx context.Context, tx Tx, f *fieldErrs, field string, in []Rule) ([]store.RolePermission, error) {
	if len(in) > MaxRules {
		f.add(field, "max_items", fmt.Sprintf("%s holds at most %d permissions.", field, MaxRules))
		return nil, nil
	}
	out := make([]store.RolePermission, 0, len(in))
	seen := map[string]bool{}
	for i, r := range in {
		at := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !authz.ValidPermission(r.Permission):
			f.add(at, "permission", fmt.Sprintf("%q is not a permission: resource:action, resource:* or *.", r.Permission))
			continue
		case seen[r.Permission]:
			f.add(at, "duplicate", fmt.Sprintf("%s is listed twice.", r.Permission))
			continue
		}
		seen[r.Permission] = true
		if _, err := tx.GetPermission(ctx, r.Permission); errors.Is(err, store.ErrNotFound) {
			f.add(at, "unknown", fmt.Sprintf("The permission %s is not registered.", r.Permission))
			continue
		} else if err != nil {
			return nil, err
		}
		s.compile(f, at+".condition", r.Condition)
		out = append(out, store.RolePermission{Permission: r.Permission, Condition: r.Condition})
	}
	return out, nil
}

// findRole finds a role by ID, or by name among orgID's roles and then
// the global ones. ErrNotFound when there is none.
func findRole(ctx context.Context, tx Tx, ref, orgID string) (store.Role, error) {
	if _, err := uuid.Parse(ref); err == nil {
		r, err := tx.GetRole(ctx, ref)
		if !errors.Is(err, store.ErrNotFound) {
			return r, err
		}
	}
	if orgID != "" {
		r, err := tx.GetRoleByName(ctx, ref, orgID)
		if !errors.Is(err, store.ErrNotFound) {
			return r, err
		}
	}
	return tx.GetRoleByName(ctx, ref, "")
}

// parents resolves the parents of a role of orgID.
func parents(ctx context.Context, tx Tx, f *fieldErrs, in []string, orgID string) ([]string, error) {
	if len(in) > MaxRules {
		f.add("parents", "max_items", fmt.Sprintf("parents holds at most %d roles.", MaxRules))
		return nil, nil
	}
	out := make([]string, 0, len(in))
	for i, ref := range in {
		at := fmt.Sprintf("parents[%d]", i)
		p, err := findRole(ctx, tx, ref, orgID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			f.add(at, "unknown", fmt.Sprintf("No role %q.", ref))
			continue
		case err != nil:
			return nil, err
		case p.OrganizationID != "" && p.OrganizationID != orgID:
			f.add(at, "scope", fmt.Sprintf("The role %s belongs to another organisation.", ref))
			continue
		case contains(out, p.ID):
			f.add(at, "duplicate", fmt.Sprintf("The role %s is listed twice.", ref))
			continue
		}
		out = append(out, p.ID)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func toAuthz(r store.Role) authz.Role {
	conv := func(rs []store.RolePermission) []authz.PermissionRule {
		out := make([]authz.PermissionRule, len(rs))
		for i, x := range rs {
			out[i] = authz.PermissionRule{Permission: x.Permission, Condition: x.Condition}
		}
		return out
	}
	return authz.Role{ID: r.ID, Name: r.Name, OrganizationID: r.OrganizationID, Allow: conv(r.Allow), Deny: conv(r.Deny), Parents: r.Parents}
}

// listRoles pages through the roles of f.
func listRoles(ctx context.Context, tx Tx, f store.RoleFilter) ([]store.Role, error) {
	f.Limit = store.MaxRoleLimit
	var out []store.Role
	for {
		page, next, err := tx.ListRoles(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		f.Cursor = next
	}
}

// checkHierarchy refuses r if saving it would make a cycle or too deep a
// hierarchy.
func checkHierarchy(ctx context.Context, tx Tx, f *fieldErrs, r store.Role) (cycle *httpapi.Problem, err error) {
	all, err := listRoles(ctx, tx, store.RoleFilter{})
	if err != nil {
		return nil, err
	}
	roles := make(map[string]authz.Role, len(all))
	for _, x := range all {
		roles[x.ID] = toAuthz(x)
	}
	err = authz.CheckCycle(roles, toAuthz(r))
	switch {
	case errors.Is(err, authz.ErrRoleCycle):
		msg := strings.TrimPrefix(err.Error(), "authz: ")
		return invalid(CodeRoleCycle, "The parents would make a cycle: "+msg+".",
			httpapi.FieldError{Field: "parents", Rule: CodeRoleCycle, Message: msg}), nil
	case errors.Is(err, authz.ErrRoleTooDeep):
		f.add("parents", "depth", fmt.Sprintf("The hierarchy would be more than %d roles deep.", authz.MaxDepth))
	case err != nil:
		return nil, err
	}
	return nil, nil
}

// CreateRole creates a role.
func (s *Service) CreateRole(ctx context.Context, m httpapi.Meta, in RoleInput) (RoleView, error) {
	var out store.Role
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		f := &fieldErrs{}
		checkName(f, in.Name)
		checkDescription(f, in.Description)
		if in.OrganizationID != "" {
			if _, err := tx.GetOrganization(ctx, in.OrganizationID); errors.Is(err, store.ErrNotFound) {
				f.add("organization_id", "unknown", "No organisation has this ID.")
			} else if err != nil {
				return err
			}
		}
		r := store.Role{Name: in.Name, Description: in.Description, OrganizationID: in.OrganizationID, CreatedAt: s.d.Now().UTC()}
		var err error
		if r.Allow, err = s.rules(ctx, tx, f, "permissions", in.Permissions); err != nil {
			return err
		}
		if r.Deny, err = s.rules(ctx, tx, f, "deny", in.Deny); err != nil {
			return err
		}
		if r.Parents, err = parents(ctx, tx, f, in.Parents, in.OrganizationID); err != nil {
			return err
		}
		if !f.empty() {
			return f.problem()
		}
		// A new role is nobody's parent: it cannot close a cycle, but it
		// can make a chain too deep.
		r.ID = uuid.Must(uuid.NewV7()).String()
		if cyc, err := checkHierarchy(ctx, tx, f, r); err != nil {
			return err
		} else if cyc != nil {
			return cyc
		}
		if !f.empty() {
			return f.problem()
		}
		if _, err := tx.GetRoleByName(ctx, r.Name, r.OrganizationID); err == nil {
			return ErrRoleExists
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if out, err = tx.CreateRole(ctx, r); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return ErrRoleExists
			}
			return err
		}
		return tx.AppendAuditEvent(ctx, s.event(m, out.ID, "rbac.role_created", nil, ViewRole(out), nil))
	})
	if err != nil {
		return RoleView{}, err
	}
	return ViewRole(out), nil
}

// GetRole returns a role.
func (s *Service) GetRole(ctx context.Context, id string) (RoleView, error) {
	r, err := s.d.Store.GetRole(ctx, id)
	if err != nil {
		return RoleView{}, err
	}
	return ViewRole(r), nil
}

// ListRoles returns a page of the roles of f and the next page's cursor.
func (s *Service) ListRoles(ctx context.Context, f store.RoleFilter) ([]RoleView, string, error) {
	rs, next, err := s.d.Store.ListRoles(ctx, f)
	if err != nil {
		return nil, "", err
	}
	out := make([]RoleView, len(rs))
	for i, r := range rs {
		out[i] = ViewRole(r)
	}
	return out, next, nil
}

// UpdateRole changes the fields of a role that p holds. Built-in roles
// cannot be changed (ErrBuiltinRole).
func (s *Service) UpdateRole(ctx context.Context, m httpapi.Meta, id string, p RolePatch) (RoleView, error) {
	if IsBuiltinRole(id) {
		return RoleView{}, ErrBuiltinRole
	}
	var out store.Role
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		before, err := tx.GetRole(ctx, id)
		if err != nil {
			return err
		}
		r := before
		f := &fieldErrs{}
		if p.Name != nil {
			r.Name = *p.Name
			checkName(f, r.Name)
		}
		if p.Description != nil {
			r.Description = *p.Description
			checkDescription(f, r.Description)
		}
		if p.Permissions != nil {
			if r.Allow, err = s.rules(ctx, tx, f, "permissions", *p.Permissions); err != nil {
				return err
			}
		}
		if p.Deny != nil {
			if r.Deny, err = s.rules(ctx, tx, f, "deny", *p.Deny); err != nil {
				return err
			}
		}
		if p.Parents != nil {
			if r.Parents, err = parents(ctx, tx, f, *p.Parents, r.OrganizationID); err != nil {
				return err
			}
		}
		if !f.empty() {
			return f.problem()
		}
		if p.Parents != nil {
			if cyc, err := checkHierarchy(ctx, tx, f, r); err != nil {
				return err
			} else if cyc != nil {
				return cyc
			}
			if !f.empty() {
				return f.problem()
			}
		}
		if r.Name != before.Name {
			if _, err := tx.GetRoleByName(ctx, r.Name, r.OrganizationID); err == nil {
				return ErrRoleExists
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		r.UpdatedAt = s.d.Now().UTC()
		if out, err = tx.UpdateRole(ctx, r); err != nil {
			if errors.Is(err, store.ErrConflict) {
				if p.Parents != nil {
					// A concurrent update closed the cycle first.
					return invalid(CodeRoleCycle, "The parents would make a cycle.",
						httpapi.FieldError{Field: "parents", Rule: CodeRoleCycle, Message: "The parents would make the role its own ancestor."})
				}
				return ErrRoleExists
			}
			return err
		}
		return tx.AppendAuditEvent(ctx, s.event(m, id, "rbac.role_updated", ViewRole(before), ViewRole(out), nil))
	})
	if err != nil {
		return RoleView{}, err
	}
	s.changed(ctx, Change{All: true})
	return ViewRole(out), nil
}

// DeleteRole deletes a role. Without force a role that is granted or is
// another's parent is ErrRoleInUse; with force its grants go and its
// children lose it as a parent. Built-in roles cannot be deleted
// (ErrBuiltinRole).
func (s *Service) DeleteRole(ctx context.Context, m httpapi.Meta, id string, force bool) error {
	if IsBuiltinRole(id) {
		return ErrBuiltinRole
	}
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		before, err := tx.GetRole(ctx, id)
		if err != nil {
			return err
		}
		del, err := tx.DeleteRole(ctx, id, force)
		if err != nil {
			if errors.Is(err, store.ErrConflict) {
				return ErrRoleInUse
			}
			return err
		}
		grants := make([]GrantView, len(del.Grants))
		for i, g := range del.Grants {
			grants[i] = grantView(g, before.Name)
		}
		children := del.Children
		if children == nil {
			children = []string{}
		}
		return tx.AppendAuditEvent(ctx, s.event(m, id, "rbac.role_deleted", ViewRole(before), nil,
			map[string]any{"force": force, "revoked_grants": grants, "children": children}))
	})
	if err != nil {
		return err
	}
	s.changed(ctx, Change{All: true})
	return nil
}

// EffectiveRule is one rule a role has, itself or through its ancestors:
// RoleID and Role name the role that holds it, Via the chain of role names
// from the role asked about to that one.
type EffectiveRule struct {
	Permission string   `json:"permission"`
	Effect     string   `json:"effect"`
	Condition  string   `json:"condition,omitempty"`
	RoleID     string   `json:"role_id"`
	Role       string   `json:"role"`
	Via        []string `json:"via"`
}

// EffectivePermissions is a role's effective rules.
type EffectivePermissions struct {
	RoleID      string          `json:"role_id"`
	Permissions []EffectiveRule `json:"permissions"`
}

// ancestors loads the role id and every role it inherits from.
func ancestors(ctx context.Context, tx Tx, id string) (map[string]store.Role, error) {
	out := map[string]store.Role{}
	queue := []string{id}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		if _, ok := out[next]; ok {
			continue
		}
		r, err := tx.GetRole(ctx, next)
		if errors.Is(err, store.ErrNotFound) && next != id {
			continue // deleted meanwhile: Effective reports it
		}
		if err != nil {
			return nil, err
		}
		out[r.ID] = r
		queue = append(queue, r.Parents...)
	}
	return out, nil
}

// effective lists the rules of roleID in roles, with names.
func effective(roleID string, roles map[string]store.Role, conv map[string]authz.Role) ([]EffectiveRule, error) {
	eff, err := authz.Effective(roleID, conv)
	if err != nil {
		return nil, err
	}
	out := make([]EffectiveRule, len(eff))
	for i, e := range eff {
		holder := e.Via[len(e.Via)-1]
		out[i] = EffectiveRule{
			Permission: e.Permission, Effect: string(e.Effect), Condition: e.Condition,
			RoleID: holder, Role: roles[holder].Name, Via: names(e.Via, roles),
		}
	}
	return out, nil
}

func names(ids []string, roles map[string]store.Role) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if r, ok := roles[id]; ok {
			out[i] = r.Name
		} else {
			out[i] = id
		}
	}
	return out
}

func convert(roles map[string]store.Role) map[string]authz.Role {
	out := make(map[string]authz.Role, len(roles))
	for id, r := range roles {
		out[id] = toAuthz(r)
	}
	return out
}

// Effective lists the rules of the role id and of its ancestors, each with
// where it comes from.
func (s *Service) Effective(ctx context.Context, id string) (EffectivePermissions, error) {
	roles, err := ancestors(ctx, s.d.Store, id)
	if err != nil {
		return EffectivePermissions{}, err
	}
	rules, err := effective(id, roles, convert(roles))
	if err != nil {
		return EffectivePermissions{}, err
	}
	return EffectivePermissions{RoleID: id, Permissions: rules}, nil
}

// IsOrgAdmin reports whether the user is an owner or an admin of the
// organisation.
func (s *Service) IsOrgAdmin(ctx context.Context, orgID, userID string) (bool, error) {
	if orgID == "" || userID == "" {
		return false, nil
	}
	members, err := s.d.Store.ListMembers(ctx, orgID)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if m.UserID == userID && (m.Role == store.OrgOwner || m.Role == store.OrgAdmin) {
			return true, nil
		}
	}
	return false, nil
}
