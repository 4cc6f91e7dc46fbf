package rbac

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// userInput is what a decision needs about a user: their grants and roles
// (store.LoadUserAuthz) and the user as conditions see them.
func (s *Service) userInput(ctx context.Context, u store.User) (authz.Input, store.UserAuthz, error) {
	ua, err := s.d.Store.LoadUserAuthz(ctx, u.ID)
	if err != nil {
		return authz.Input{}, ua, err
	}
	orgs, err := s.d.Store.UserOrganizations(ctx, u.ID)
	if err != nil {
		return authz.Input{}, ua, err
	}
	in := authz.Input{
		Grants: make([]authz.Grant, len(ua.Grants)),
		Roles:  convert(ua.Roles),
		User:   Subject(u, orgs),
	}
	for i, g := range ua.Grants {
		in.Grants[i] = authz.Grant{ID: g.ID, RoleID: g.RoleID, OrganizationID: g.OrganizationID, ValidFrom: g.ValidFrom, ValidUntil: g.ValidUntil, Condition: g.Condition}
	}
	return in, ua, nil
}

// Subject is the user u, a member of orgs, as conditions see them
// (user.*). Metadata is the account's AppMetadata, which only
// administrators can change: a condition over metadata the user edits
// themselves would let them grant themselves access. The check API must
// build its subject the same way, so that who-can lists exactly whom the
// check allows.
func Subject(u store.User, orgs []store.Organization) authz.User {
	out := authz.User{ID: u.ID, EmailVerified: !u.EmailVerifiedAt.IsZero(), Metadata: u.AppMetadata}
	for _, o := range orgs {
		out.Organizations = append(out.Organizations, o.ID)
	}
	return out
}

// Decide decides, as the check API does (uncached), whether the user
// userID holds permission on a resource of the organisation orgID ("" for
// a global one) in the request req (req.Time is the instant; Now when
// zero). It also returns the user's grants and roles, to name the roles of
// the decision. An unknown user is ErrNotFound.
func (s *Service) Decide(ctx context.Context, userID, permission, orgID string, req authz.Request) (authz.Decision, store.UserAuthz, error) {
	u, err := s.d.Store.GetUser(ctx, userID)
	if err != nil {
		return authz.Decision{}, store.UserAuthz{}, err
	}
	in, ua, err := s.userInput(ctx, u)
	if err != nil {
		return authz.Decision{}, ua, err
	}
	if req.Time.IsZero() {
		req.Time = s.d.Now()
	}
	in.Permission, in.Resource, in.Request = permission, authz.Resource{OrganizationID: orgID}, req
	return s.d.Engine.Decide(in), ua, nil
}

// Authorize implements auth.Authorizer with Decide, uncached: whether the
// caller's user holds permission for orgID's resources now (request.mfa
// from the token's amr). The wiring normally uses the cached check; tests
// and tools use this one.
func (s *Service) Authorize(ctx context.Context, p auth.Principal, permission, orgID string) (bool, error) {
	if p.UserID == "" {
		return false, nil
	}
	d, _, err := s.Decide(ctx, p.UserID, permission, orgID, authz.Request{Time: s.d.Now(), MFA: slices.Contains(p.AMR, "mfa")})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return d.Allowed, err
}

// UserPermission is one rule a user holds through one of their grants
// valid now: Role and RoleID name the role holding the rule, Via the chain
// of role names from the granted role to it.
type UserPermission struct {
	Permission     string     `json:"permission"`
	Effect         string     `json:"effect"`
	Condition      string     `json:"condition,omitempty"`
	GrantID        string     `json:"grant_id"`
	GrantCondition string     `json:"grant_condition,omitempty"`
	Role           string     `json:"role"`
	RoleID         string     `json:"role_id"`
	OrganizationID string     `json:"organization_id,omitempty"`
	ValidFrom      *time.Time `json:"valid_from,omitempty"`
	ValidUntil     *time.Time `json:"valid_until,omitempty"`
	Via            []string   `json:"via"`
}

// UserPermissions is a user's effective permissions.
type UserPermissions struct {
	UserID      string           `json:"user_id"`
	Permissions []UserPermission `json:"permissions"`
}

// validNow reports whether g counts at now, to the second as
// authz.Engine.Decide compares.
func validNow(g store.RoleGrant, now time.Time) bool {
	t := now.Unix()
	return (g.ValidFrom.IsZero() || t >= g.ValidFrom.Unix()) && (g.ValidUntil.IsZero() || t < g.ValidUntil.Unix())
}

// UserPermissions lists the rules the user holds through their grants
// valid now, expanded through the role hierarchy, grant by grant (oldest
// first). Conditions are shown, not evaluated. A grant whose hierarchy
// cannot be resolved (a role deleted meanwhile) is left out and logged.
func (s *Service) UserPermissions(ctx context.Context, userID string) (UserPermissions, error) {
	if _, err := s.d.Store.GetUser(ctx, userID); err != nil {
		return UserPermissions{}, err
	}
	ua, err := s.d.Store.LoadUserAuthz(ctx, userID)
	if err != nil {
		return UserPermissions{}, err
	}
	conv := convert(ua.Roles)
	now := s.d.Now()
	out := UserPermissions{UserID: userID, Permissions: []UserPermission{}}
	for _, g := range ua.Grants {
		if !validNow(g, now) {
			continue
		}
		rules, err := effective(g.RoleID, ua.Roles, conv)
		if err != nil {
			s.d.Log.WarnContext(ctx, "rbac: a grant's role hierarchy cannot be resolved", "grant_id", g.ID, "error", err.Error())
			continue
		}
		for _, r := range rules {
			out.Permissions = append(out.Permissions, UserPermission{
				Permission: r.Permission, Effect: r.Effect, Condition: r.Condition,
				GrantID: g.ID, GrantCondition: g.Condition, Role: r.Role, RoleID: r.RoleID,
				OrganizationID: g.OrganizationID, ValidFrom: optTime(g.ValidFrom), ValidUntil: optTime(g.ValidUntil), Via: r.Via,
			})
		}
	}
	return out, nil
}

// WhoCanRow is one way a user holds the permission: the grant, the role
// holding the allow rule that matched, and the chain of role names from
// the granted role to it.
type WhoCanRow struct {
	UserID  string   `json:"user_id"`
	Email   string   `json:"email"`
	GrantID string   `json:"grant_id"`
	Role    string   `json:"role"`
	Via     []string `json:"via"`
}

// WhoCan is the answer of who-can.
type WhoCan struct {
	Permission     string      `json:"permission"`
	OrganizationID string      `json:"organization_id,omitempty"`
	Users          []WhoCanRow `json:"users"`
}

// WhoCan lists the users who hold permission (a permission without
// wildcard) on a resource of the organisation orgID ("" for a global
// resource) now: those for whom the check (Decide, with a request that
// has only its time) allows, one row per rule that matched. Candidates
// are the grantees of the roles whose effective rules allow the
// permission; users that no longer exist (or are deleted) are left out.
func (s *Service) WhoCan(ctx context.Context, permission, orgID string) (WhoCan, error) {
	f := &fieldErrs{}
	switch {
	case permission == "":
		f.add("permission", "required", "permission is required.")
	case !authz.ValidPermission(permission) || strings.Contains(permission, authz.Wildcard):
		f.add("permission", "permission", "permission must be resource:action, without wildcard.")
	}
	if orgID != "" {
		if _, err := s.d.Store.GetOrganization(ctx, orgID); errors.Is(err, store.ErrNotFound) {
			f.add("organization_id", "unknown", "No organisation has this ID.")
		} else if err != nil {
			return WhoCan{}, err
		}
	}
	if !f.empty() {
		return WhoCan{}, f.problem()
	}
	filter := store.RoleFilter{Global: true, OrganizationID: orgID}
	all, err := listRoles(ctx, s.d.Store, filter)
	if err != nil {
		return WhoCan{}, err
	}
	roles := make(map[string]store.Role, len(all))
	for _, r := range all {
		roles[r.ID] = r
	}
	conv := convert(roles)
	var candidates []string
	for _, r := range all {
		eff, err := authz.Effective(r.ID, conv)
		if err != nil {
			s.d.Log.WarnContext(ctx, "rbac: a role's hierarchy cannot be resolved", "role_id", r.ID, "error", err.Error())
			continue
		}
		if slices.ContainsFunc(eff, func(e authz.EffectivePermission) bool {
			return e.Effect == authz.Allow && authz.Matches(e.Permission, permission)
		}) {
			candidates = append(candidates, r.ID)
		}
	}
	var users []string
	for chunk := range slices.Chunk(candidates, store.MaxGrantRoles) {
		cursor := ""
		for {
			grants, next, err := s.d.Store.ListGrantsOfRoles(ctx, chunk, cursor, store.MaxGrantLimit)
			if err != nil {
				return WhoCan{}, err
			}
			for _, g := range grants {
				if !contains(users, g.UserID) {
					users = append(users, g.UserID)
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	slices.Sort(users)
	out := WhoCan{Permission: permission, OrganizationID: orgID, Users: []WhoCanRow{}}
	now := s.d.Now()
	for _, id := range users {
		u, err := s.d.Store.GetUser(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return WhoCan{}, err
		}
		if !u.DeletedAt.IsZero() {
			continue
		}
		in, ua, err := s.userInput(ctx, u)
		if err != nil {
			return WhoCan{}, err
		}
		in.Permission, in.Resource, in.Request = permission, authz.Resource{OrganizationID: orgID}, authz.Request{Time: now}
		d := s.d.Engine.Decide(in)
		if !d.Allowed {
			continue
		}
		for _, m := range d.Matched {
			out.Users = append(out.Users, WhoCanRow{UserID: u.ID, Email: u.Email, GrantID: m.GrantID, Role: nameOf(m.Role, ua.Roles), Via: names(m.Via, ua.Roles)})
		}
	}
	return out, nil
}

func nameOf(id string, roles map[string]store.Role) string {
	if r, ok := roles[id]; ok {
		return r.Name
	}
	return id
}

// csvTime formats an optional time for CSV ("" for none).
func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// CSV returns the header and rows of the report, via joined with " > ".
func (p UserPermissions) CSV() [][]string {
	rows := [][]string{{"user_id", "permission", "effect", "condition", "grant_id", "grant_condition", "role", "role_id", "organization_id", "valid_from", "valid_until", "via"}}
	for _, x := range p.Permissions {
		rows = append(rows, []string{p.UserID, x.Permission, x.Effect, x.Condition, x.GrantID, x.GrantCondition, x.Role, x.RoleID, x.OrganizationID, csvTime(x.ValidFrom), csvTime(x.ValidUntil), strings.Join(x.Via, " > ")})
	}
	return rows
}

// CSV returns the header and rows of the report, via joined with " > ".
func (w WhoCan) CSV() [][]string {
	rows := [][]string{{"user_id", "email", "grant_id", "role", "via"}}
	for _, x := range w.Users {
		rows = append(rows, []string{x.UserID, x.Email, x.GrantID, x.Role, strings.Join(x.Via, " > ")})
	}
	return rows
}

var _ auth.Authorizer = (*Service)(nil)

// errFormat is the answer to an unknown ?format=.
var errFormat = httpapi.Validation(httpapi.FieldError{Field: "format", Rule: "enum", Message: fmt.Sprintf("format must be %s or %s.", "json", "csv")})
