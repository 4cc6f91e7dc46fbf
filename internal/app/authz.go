package app

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/netintel"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/token"
)

// adminRoleID is the built-in admin role (every permission), seeded by
// migration 0018.
const adminRoleID = "0192f000-0000-7000-8000-000000000001"

// subscribeAdminGrant gives the built-in admin role to an account created
// as an administrator (gatehouse users create --admin), in the
// transaction that creates it.
func subscribeAdminGrant(bus *event.Bus) {
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.UserCreated) error {
		if !e.User.IsAdmin {
			return nil
		}
		g, err := tx.CreateGrant(ctx, store.RoleGrant{UserID: e.User.ID, RoleID: adminRoleID, CreatedBy: e.Meta.ActorID})
		if err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, store.AuditEvent{
			ActorID: e.Meta.ActorID, SubjectID: e.User.ID, Action: "rbac.grant_created",
			IP: e.Meta.IP, UserAgent: e.Meta.UserAgent, RequestID: e.Meta.RequestID,
			Data: map[string]any{"before": nil, "after": map[string]any{
				"id": g.ID, "user_id": g.UserID, "role_id": g.RoleID, "role": "admin", "created_by": g.CreatedBy,
			}},
		})
	})
}

// permissionChecker decides one check (the check API's Checker).
type permissionChecker interface {
	Decide(ctx context.Context, subject, permission string, res authz.Resource, req authz.Request) (authz.Decision, error)
}

// adminAuthorizer is RBAC's decision for Gatehouse's own administration
// API: the caller's grants, through the same checker as POST
// /v1/authz/check, with the request as conditions see it.
type adminAuthorizer struct {
	checker permissionChecker
	locate  func(ip string) string // the client address's country, "" when unknown
}

// Authorize implements auth.Authorizer.
func (a adminAuthorizer) Authorize(ctx context.Context, p auth.Principal, permission, organizationID string) (bool, error) {
	ip := httpapi.ClientIP(ctx)
	req := authz.Request{IP: ip, MFA: slices.Contains(p.AMR, "mfa")}
	if a.locate != nil && ip != "" {
		req.Country = a.locate(ip)
	}
	d, err := a.checker.Decide(ctx, p.UserID, permission, authz.Resource{OrganizationID: organizationID}, req)
	if err != nil {
		return false, err
	}
	return d.Allowed, nil
}

// storeChecker decides from the store on every call (interim, replaced by
// the check API's cache).
type storeChecker struct {
	store  store.Store
	engine *authz.Engine
	now    func() time.Time
}

func (c storeChecker) Decide(ctx context.Context, subject, permission string, res authz.Resource, req authz.Request) (authz.Decision, error) {
	ua, err := c.store.LoadUserAuthz(ctx, subject)
	if err != nil {
		return authz.Decision{}, err
	}
	in := authz.Input{Permission: permission, Resource: res, Request: req, User: authz.User{ID: subject}, Roles: map[string]authz.Role{}}
	in.Request.Time = c.now()
	for _, g := range ua.Grants {
		in.Grants = append(in.Grants, authz.Grant{ID: g.ID, RoleID: g.RoleID, OrganizationID: g.OrganizationID, ValidFrom: g.ValidFrom, ValidUntil: g.ValidUntil, Condition: g.Condition})
	}
	for id, r := range ua.Roles {
		ar := authz.Role{ID: id, Name: r.Name, OrganizationID: r.OrganizationID, Parents: r.Parents}
		for _, p := range r.Allow {
			ar.Allow = append(ar.Allow, authz.PermissionRule{Permission: p.Permission, Condition: p.Condition})
		}
		for _, p := range r.Deny {
			ar.Deny = append(ar.Deny, authz.PermissionRule{Permission: p.Permission, Condition: p.Condition})
		}
		in.Roles[id] = ar
	}
	return c.engine.Decide(in), nil
}

// clock is the services' clock: d.now, or time.Now in tests that build
// deps by hand.
func (d *deps) clock() func() time.Time {
	if d.now == nil {
		return time.Now
	}
	return d.now
}

// country places a client address in its country with intel; nil
// without it.
func country(intel *netintel.Intel) func(ip string) string {
	if intel == nil {
		return nil
	}
	return func(ip string) string {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return ""
		}
		return intel.Lookup(a).Country
	}
}

// rolesClaim issues access tokens with the user's roles in a roles claim
// (GATEHOUSE_TOKEN_ROLES_CLAIM): the names of the global grants without a
// condition that are valid when the token is issued, sorted. Grants of an
// organisation and conditional ones are left out: only the check API can
// decide them.
type rolesClaim struct {
	session.Tokens
	store interface {
		LoadUserAuthz(ctx context.Context, userID string) (store.UserAuthz, error)
	}
	now func() time.Time
}

// Issue implements session.Tokens.
func (t rolesClaim) Issue(ctx context.Context, ac token.AccessClaims) (string, time.Time, error) {
	ua, err := t.store.LoadUserAuthz(ctx, ac.Subject)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("roles claim: %w", err)
	}
	ac.Extra = maps.Clone(ac.Extra)
	if ac.Extra == nil {
		ac.Extra = map[string]any{}
	}
	ac.Extra["roles"] = unconditionalRoles(ua, t.now())
	return t.Tokens.Issue(ctx, ac)
}

// unconditionalRoles are the names of the roles of ua's global grants
// without a condition valid at now (to the second, as checks count them).
func unconditionalRoles(ua store.UserAuthz, now time.Time) []string {
	sec := now.Unix()
	roles := []string{}
	for _, g := range ua.Grants {
		r, ok := ua.Roles[g.RoleID]
		if !ok || g.OrganizationID != "" || g.Condition != "" ||
			(!g.ValidFrom.IsZero() && sec < g.ValidFrom.Unix()) || (!g.ValidUntil.IsZero() && sec >= g.ValidUntil.Unix()) {
			continue
		}
		if !slices.Contains(roles, r.Name) {
			roles = append(roles, r.Name)
		}
	}
	slices.Sort(roles)
	return roles
}
