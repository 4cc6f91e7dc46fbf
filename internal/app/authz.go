package app

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/apikey"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/authzcheck"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/netintel"
	"github.com/gatehouse/gatehouse/internal/rbac"
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

// adminAuthorizer is RBAC's decision for Gatehouse's own administration
// API: the caller's grants, through the same checker as POST
// /v1/authz/check, with the request as conditions see it.
type adminAuthorizer struct {
	checker *authzcheck.Checker
	locate  func(ip string) string // the client address's country, "" when unknown
}

// Authorize implements auth.Authorizer.
func (a adminAuthorizer) Authorize(ctx context.Context, p auth.Principal, permission, organizationID string) (bool, error) {
	// A personal API key holds only what it was given (and its owner
	// still holds).
	if p.KeyPermissions != nil && !slices.ContainsFunc(p.KeyPermissions, func(k string) bool { return authz.Matches(k, permission) }) {
		return false, nil
	}
	ip := httpapi.ClientIP(ctx)
	req := authz.Request{IP: ip, MFA: slices.Contains(p.AMR, "mfa")}
	if a.locate != nil && ip != "" {
		req.Country = a.locate(ip)
	}
	d, err := a.checker.Check(ctx, authzcheck.Query{Subject: p.UserID, Permission: permission, Resource: authz.Resource{OrganizationID: organizationID}, Request: req})
	if err != nil {
		return false, err
	}
	return d.Allowed, nil
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

// invalidate drops users' cached permissions (everyone's with all) on
// every node. A failure to tell the other nodes is logged: their entries
// expire with the cache's TTL.
func invalidate(ctx context.Context, c *authzcheck.Checker, log *slog.Logger, all bool, users ...string) {
	var err error
	switch {
	case all:
		err = c.InvalidateAll(ctx)
	case len(users) > 0:
		err = c.Invalidate(ctx, users...)
	}
	if err != nil {
		log.ErrorContext(ctx, "could not invalidate cached permissions on the other nodes", "error", err.Error())
	}
}

// subscribeAuthzInvalidation drops a user's cached permissions once a
// change to what conditions see of them (user.email_verified,
// user.organizations, user.metadata) commits, and everyone's when an
// organisation goes with its roles and grants. A deleted account's
// grants are revoked in the deleting transaction.
func subscribeAuthzInvalidation(bus *event.Bus, c *authzcheck.Checker, roles *rbac.Service) {
	user := func(tx event.Tx, id string) {
		tx.AfterCommit(func(ctx context.Context) { invalidate(ctx, c, slog.Default(), false, id) })
	}
	event.Subscribe(bus, func(_ context.Context, tx event.Tx, e event.UserUpdated) error { user(tx, e.User.ID); return nil })
	event.Subscribe(bus, func(_ context.Context, tx event.Tx, e event.EmailVerified) error { user(tx, e.UserID); return nil })
	// A disabled user holds nothing (store.LoadUserAuthz), enabled again
	// their grants count again.
	event.Subscribe(bus, func(_ context.Context, tx event.Tx, e event.UserStatusChanged) error { user(tx, e.UserID); return nil })
	// A deleted account's grants go with it.
	event.Subscribe(bus, func(ctx context.Context, tx event.Tx, e event.UserDeleted) error {
		user(tx, e.UserID)
		return roles.RevokeAllOf(ctx, tx, e.Meta, e.UserID, "user_deleted")
	})
	event.Subscribe(bus, func(_ context.Context, tx event.Tx, e event.OrganizationMemberAdded) error {
		user(tx, e.UserID)
		return nil
	})
	event.Subscribe(bus, func(_ context.Context, tx event.Tx, e event.OrganizationMemberRemoved) error {
		user(tx, e.UserID)
		return nil
	})
	event.Subscribe(bus, func(_ context.Context, tx event.Tx, e event.OrganizationDeleted) error {
		tx.AfterCommit(func(ctx context.Context) { invalidate(ctx, c, slog.Default(), true) })
		return nil
	})
}

// keyAuthenticator is the authenticator of routes that take API keys as
// well as access tokens (the account, the check API, administration): the
// API key authenticator, in front of the token one.
func (d *deps) keyAuthenticator() auth.Authenticator {
	if d.keyAuthn == nil {
		return d.authn
	}
	return d.keyAuthn
}

// keyRefused counts a request made with an API key that a rate limit
// refused, in the key's usage, and notes it for the key's audit trail.
func (d *deps) keyRefused(r *http.Request, p auth.Principal, rule string) {
	if d.keyAuthn != nil {
		d.keyAuthn.Refused(r, p, rule)
	}
}

// introspectKey answers RFC 7662 introspection for an API key: active,
// sub (the owner), permissions and exp; nil for anything else.
func (d *deps) introspectKey(ctx context.Context, raw string) (map[string]any, error) {
	if d.keyAuthn == nil {
		return nil, nil
	}
	in, err := d.keyAuthn.Introspect(ctx, raw)
	if err != nil || !in.Active {
		return nil, err
	}
	out := map[string]any{"active": true, "sub": in.Sub, "token_type": "api_key", "api_key_id": in.KeyID, "permissions": in.Permissions}
	if in.Permissions == nil {
		out["permissions"] = []string{}
	}
	if !in.Exp.IsZero() {
		out["exp"] = in.Exp.Unix()
	}
	return out, nil
}

// subscribeKeyOwners drops the cached API keys of an account that is
// disabled or deleted, on every node, once the change commits.
func subscribeKeyOwners(bus *event.Bus, k *apikey.Authenticator) {
	owner := func(tx event.Tx, id string) {
		tx.AfterCommit(func(ctx context.Context) {
			if err := k.InvalidateOwners(ctx, id); err != nil {
				slog.Default().ErrorContext(ctx, "could not drop the cached API keys of an account on the other nodes", "error", err.Error())
			}
		})
	}
	event.Subscribe(bus, func(_ context.Context, tx event.Tx, e event.UserStatusChanged) error { owner(tx, e.UserID); return nil })
	event.Subscribe(bus, func(_ context.Context, tx event.Tx, e event.UserDeleted) error { owner(tx, e.UserID); return nil })
}
