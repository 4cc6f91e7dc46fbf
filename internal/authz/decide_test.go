package authz

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := NewEngine(newCompiler(t, CompilerOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fixtureRoles is the hierarchy of the decision tests.
func fixtureRoles() map[string]Role {
	return roleMap(
		Role{ID: "admin", Name: "admin", Allow: []PermissionRule{{Permission: "*"}}},
		Role{ID: "viewer", Name: "viewer", Allow: []PermissionRule{{Permission: "invoices:read"}, {Permission: "reports:read"}}},
		Role{
			ID: "editor", Name: "editor",
			Allow:   []PermissionRule{{Permission: "invoices:*"}},
			Deny:    []PermissionRule{{Permission: "invoices:delete"}},
			Parents: []string{"viewer"},
		},
		// clerk inherits a deny from nodelete.
		Role{ID: "nodelete", Name: "no delete", Deny: []PermissionRule{{Permission: "invoices:delete"}}},
		Role{ID: "clerk", Name: "clerk", Allow: []PermissionRule{{Permission: "invoices:*"}}, Parents: []string{"nodelete"}},
		Role{ID: "suspended", Name: "suspended", Deny: []PermissionRule{{Permission: "*"}}},
		Role{ID: "offhours", Name: "off hours", Deny: []PermissionRule{{Permission: "*", Condition: "request.time.getHours() >= 20"}}},
		Role{ID: "approver", Name: "approver", Allow: []PermissionRule{{Permission: "payments:approve", Condition: "request.mfa"}}},
		Role{ID: "owner", Name: "owner", Allow: []PermissionRule{{Permission: "documents:*", Condition: "resource.owner_id == user.id"}}},
		Role{ID: "tagged", Name: "tagged", Allow: []PermissionRule{{Permission: "documents:read", Condition: `resource.attributes.classification == "public"`}}},
		Role{ID: "cautious", Name: "cautious", Deny: []PermissionRule{{Permission: "documents:read", Condition: `resource.attributes.classification == "secret"`}}},
		Role{ID: "bulk", Name: "bulk", Allow: []PermissionRule{{Permission: "documents:read", Condition: "resource.attributes.items.all(i, i >= 0)"}}},
		Role{ID: "o1-projects", Name: "projects", OrganizationID: "o1", Allow: []PermissionRule{{Permission: "projects:read"}}},
		Role{ID: "o1-lead", Name: "lead", Allow: []PermissionRule{{Permission: "tasks:read"}}, Parents: []string{"o1-projects"}},
		Role{ID: "broken", Name: "broken", Allow: []PermissionRule{{Permission: "invoices:read"}}, Parents: []string{"deleted"}},
		Role{ID: "stale", Name: "stale", Allow: []PermissionRule{{Permission: "invoices:read", Condition: "request.legacy"}}},
	)
}

func TestDecide(t *testing.T) {
	e := newEngine(t)
	roles := fixtureRoles()
	items := make([]any, 20_000)
	for i := range items {
		items[i] = i
	}
	tests := []struct {
		name   string
		grants []Grant
		perm   string
		at     time.Time // t0 if zero
		res    Resource
		req    Request // Time set from at
		want   Decision
	}{
		{
			name: "no grant",
			perm: "invoices:read",
			want: Decision{Reason: ReasonNoMatchingGrant},
		},
		{
			name:   "wildcard everything",
			grants: []Grant{{ID: "g1", RoleID: "admin"}},
			perm:   "invoices:delete",
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "admin", Via: []string{"admin"}}}},
		},
		{
			name:   "wildcard action",
			grants: []Grant{{ID: "g1", RoleID: "clerk"}},
			perm:   "invoices:write",
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "clerk", Via: []string{"clerk"}}}},
		},
		{
			name:   "wildcard action of another resource",
			grants: []Grant{{ID: "g1", RoleID: "clerk"}},
			perm:   "reports:read",
			want:   Decision{Reason: ReasonNoMatchingGrant},
		},
		{
			name:   "inherited from the parent",
			grants: []Grant{{ID: "g1", RoleID: "editor"}},
			perm:   "reports:read",
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "viewer", Via: []string{"editor", "viewer"}}}},
		},
		{
			name:   "own and inherited allows both listed",
			grants: []Grant{{ID: "g1", RoleID: "editor"}},
			perm:   "invoices:read",
			want: Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{
				{GrantID: "g1", Role: "editor", Via: []string{"editor"}},
				{GrantID: "g1", Role: "viewer", Via: []string{"editor", "viewer"}},
			}},
		},
		{
			name:   "deny in the same role beats its wildcard allow",
			grants: []Grant{{ID: "g1", RoleID: "editor"}},
			perm:   "invoices:delete",
			want: Decision{
				Reason:   ReasonDeniedByRule,
				Matched:  []Match{{GrantID: "g1", Role: "editor", Via: []string{"editor"}}},
				DeniedBy: &Match{GrantID: "g1", Role: "editor", Via: []string{"editor"}},
			},
		},
		{
			name:   "deny inherited through a parent",
			grants: []Grant{{ID: "g1", RoleID: "clerk"}},
			perm:   "invoices:delete",
			want: Decision{
				Reason:   ReasonDeniedByRule,
				Matched:  []Match{{GrantID: "g1", Role: "clerk", Via: []string{"clerk"}}},
				DeniedBy: &Match{GrantID: "g1", Role: "nodelete", Via: []string{"clerk", "nodelete"}},
			},
		},
		{
			name:   "deny from another grant beats admin",
			grants: []Grant{{ID: "g2", RoleID: "suspended"}, {ID: "g1", RoleID: "admin"}},
			perm:   "reports:read",
			want: Decision{
				Reason:   ReasonDeniedByRule,
				Matched:  []Match{{GrantID: "g1", Role: "admin", Via: []string{"admin"}}},
				DeniedBy: &Match{GrantID: "g2", Role: "suspended", Via: []string{"suspended"}},
			},
		},
		{
			name:   "deny of a grant that does not apply does not count",
			grants: []Grant{{ID: "g1", RoleID: "admin"}, {ID: "g2", RoleID: "suspended", ValidUntil: t0}},
			perm:   "reports:read",
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "admin", Via: []string{"admin"}}}},
		},
		{
			name:   "conditional deny that does not hold",
			grants: []Grant{{ID: "g1", RoleID: "admin"}, {ID: "g2", RoleID: "offhours"}},
			perm:   "reports:read",
			at:     t0.Add(7*time.Hour + 59*time.Minute),
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "admin", Via: []string{"admin"}}}},
		},
		{
			name:   "conditional deny that holds",
			grants: []Grant{{ID: "g1", RoleID: "admin"}, {ID: "g2", RoleID: "offhours"}},
			perm:   "reports:read",
			at:     t0.Add(8 * time.Hour),
			want: Decision{
				Reason:   ReasonDeniedByRule,
				Matched:  []Match{{GrantID: "g1", Role: "admin", Via: []string{"admin"}}},
				DeniedBy: &Match{GrantID: "g2", Role: "offhours", Via: []string{"offhours"}},
			},
		},
		{
			name:   "first deny in grant order is denied_by",
			grants: []Grant{{ID: "g3", RoleID: "editor"}, {ID: "g2", RoleID: "clerk"}},
			perm:   "invoices:delete",
			want: Decision{
				Reason: ReasonDeniedByRule,
				Matched: []Match{
					{GrantID: "g2", Role: "clerk", Via: []string{"clerk"}},
					{GrantID: "g3", Role: "editor", Via: []string{"editor"}},
				},
				DeniedBy: &Match{GrantID: "g2", Role: "nodelete", Via: []string{"clerk", "nodelete"}},
			},
		},
		{
			name:   "not yet valid",
			grants: []Grant{{ID: "g1", RoleID: "viewer", ValidFrom: t0.Add(time.Second)}},
			perm:   "reports:read",
			want:   Decision{Reason: ReasonNoMatchingGrant},
		},
		{
			name:   "valid from this second",
			grants: []Grant{{ID: "g1", RoleID: "viewer", ValidFrom: t0.Add(900 * time.Millisecond)}},
			perm:   "reports:read",
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "viewer", Via: []string{"viewer"}}}},
		},
		{
			name:   "org grant, resource of its organization",
			grants: []Grant{{ID: "g1", RoleID: "viewer", OrganizationID: "o1"}},
			perm:   "reports:read",
			res:    Resource{OrganizationID: "o1"},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "viewer", Via: []string{"viewer"}}}},
		},
		{
			name:   "org grant, resource of another organization",
			grants: []Grant{{ID: "g1", RoleID: "viewer", OrganizationID: "o1"}},
			perm:   "reports:read",
			res:    Resource{OrganizationID: "o2"},
			want:   Decision{Reason: ReasonNoMatchingGrant},
		},
		{
			name:   "org grant, resource of no organization",
			grants: []Grant{{ID: "g1", RoleID: "viewer", OrganizationID: "o1"}},
			perm:   "reports:read",
			want:   Decision{Reason: ReasonNoMatchingGrant},
		},
		{
			name:   "org deny does not reach another organization",
			grants: []Grant{{ID: "g1", RoleID: "viewer"}, {ID: "g2", RoleID: "suspended", OrganizationID: "o1"}},
			perm:   "reports:read",
			res:    Resource{OrganizationID: "o2"},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "viewer", Via: []string{"viewer"}}}},
		},
		{
			name:   "global grant, resource of an organization",
			grants: []Grant{{ID: "g1", RoleID: "viewer"}},
			perm:   "reports:read",
			res:    Resource{OrganizationID: "o2"},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "viewer", Via: []string{"viewer"}}}},
		},
		{
			name:   "organization's role, for its organization",
			grants: []Grant{{ID: "g1", RoleID: "o1-lead", OrganizationID: "o1"}},
			perm:   "projects:read",
			res:    Resource{OrganizationID: "o1"},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "o1-projects", Via: []string{"o1-lead", "o1-projects"}}}},
		},
		{
			name:   "organization's role, granted globally, for another organization",
			grants: []Grant{{ID: "g1", RoleID: "o1-lead"}},
			perm:   "projects:read",
			res:    Resource{OrganizationID: "o2"},
			want:   Decision{Reason: ReasonNoMatchingGrant},
		},
		{
			name:   "mfa condition, with mfa",
			grants: []Grant{{ID: "g1", RoleID: "approver"}},
			perm:   "payments:approve",
			req:    Request{MFA: true},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "approver", Via: []string{"approver"}}}},
		},
		{
			name:   "mfa condition, without mfa",
			grants: []Grant{{ID: "g1", RoleID: "approver"}},
			perm:   "payments:approve",
			want:   Decision{Reason: ReasonConditionFailed},
		},
		{
			name:   "owner condition, owner",
			grants: []Grant{{ID: "g1", RoleID: "owner"}},
			perm:   "documents:write",
			res:    Resource{OwnerID: "u1"},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "owner", Via: []string{"owner"}}}},
		},
		{
			name:   "owner condition, someone else's",
			grants: []Grant{{ID: "g1", RoleID: "owner"}},
			perm:   "documents:write",
			res:    Resource{OwnerID: "u2"},
			want:   Decision{Reason: ReasonConditionFailed},
		},
		{
			name:   "grant condition true",
			grants: []Grant{{ID: "g1", RoleID: "viewer", Condition: `request.country == "FR"`}},
			perm:   "reports:read",
			req:    Request{Country: "FR"},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "viewer", Via: []string{"viewer"}}}},
		},
		{
			name:   "grant condition false",
			grants: []Grant{{ID: "g1", RoleID: "viewer", Condition: `request.country == "FR"`}},
			perm:   "reports:read",
			req:    Request{Country: "DE"},
			want:   Decision{Reason: ReasonConditionFailed},
		},
		{
			name:   "grant condition false, role without the permission",
			grants: []Grant{{ID: "g1", RoleID: "viewer", Condition: `request.country == "FR"`}},
			perm:   "payments:approve",
			req:    Request{Country: "DE"},
			want:   Decision{Reason: ReasonNoMatchingGrant},
		},
		{
			name:   "grant condition false drops its denies",
			grants: []Grant{{ID: "g1", RoleID: "viewer"}, {ID: "g2", RoleID: "suspended", Condition: `request.country == "FR"`}},
			perm:   "reports:read",
			req:    Request{Country: "DE"},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "viewer", Via: []string{"viewer"}}}},
		},
		{
			name:   "grant condition failing keeps its denies",
			grants: []Grant{{ID: "g1", RoleID: "viewer"}, {ID: "g2", RoleID: "suspended", Condition: `resource.attributes.region == "eu"`}},
			perm:   "reports:read",
			want: Decision{
				Reason:   ReasonDeniedByRule,
				Matched:  []Match{{GrantID: "g1", Role: "viewer", Via: []string{"viewer"}}},
				DeniedBy: &Match{GrantID: "g2", Role: "suspended", Via: []string{"suspended"}},
			},
		},
		{
			name:   "grant condition failing drops its allows",
			grants: []Grant{{ID: "g1", RoleID: "viewer", Condition: `resource.attributes.region == "eu"`}},
			perm:   "reports:read",
			want:   Decision{Reason: ReasonConditionFailed},
		},
		{
			name:   "allow condition over a missing attribute denies",
			grants: []Grant{{ID: "g1", RoleID: "tagged"}},
			perm:   "documents:read",
			res:    Resource{Attributes: map[string]any{}},
			want:   Decision{Reason: ReasonConditionFailed},
		},
		{
			name:   "allow condition over a present attribute",
			grants: []Grant{{ID: "g1", RoleID: "tagged"}},
			perm:   "documents:read",
			res:    Resource{Attributes: map[string]any{"classification": "public"}},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "tagged", Via: []string{"tagged"}}}},
		},
		{
			name:   "deny condition over a missing attribute counts as holding",
			grants: []Grant{{ID: "g1", RoleID: "admin"}, {ID: "g2", RoleID: "cautious"}},
			perm:   "documents:read",
			res:    Resource{Attributes: map[string]any{}},
			want: Decision{
				Reason:   ReasonDeniedByRule,
				Matched:  []Match{{GrantID: "g1", Role: "admin", Via: []string{"admin"}}},
				DeniedBy: &Match{GrantID: "g2", Role: "cautious", Via: []string{"cautious"}},
			},
		},
		{
			name:   "deny condition false",
			grants: []Grant{{ID: "g1", RoleID: "admin"}, {ID: "g2", RoleID: "cautious"}},
			perm:   "documents:read",
			res:    Resource{Attributes: map[string]any{"classification": "public"}},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "admin", Via: []string{"admin"}}}},
		},
		{
			name:   "cost limit exceeded denies",
			grants: []Grant{{ID: "g1", RoleID: "bulk"}},
			perm:   "documents:read",
			res:    Resource{Attributes: map[string]any{"items": items}},
			want:   Decision{Reason: ReasonConditionFailed},
		},
		{
			name:   "within the cost limit",
			grants: []Grant{{ID: "g1", RoleID: "bulk"}},
			perm:   "documents:read",
			res:    Resource{Attributes: map[string]any{"items": items[:50]}},
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "bulk", Via: []string{"bulk"}}}},
		},
		{
			name:   "stored condition that no longer compiles",
			grants: []Grant{{ID: "g1", RoleID: "stale"}},
			perm:   "invoices:read",
			want:   Decision{Reason: ReasonConditionFailed},
		},
		{
			name:   "missing parent fails closed",
			grants: []Grant{{ID: "g1", RoleID: "broken"}},
			perm:   "invoices:read",
			want:   Decision{Reason: ReasonInvalidRoleGraph, Matched: []Match{{GrantID: "g1", Role: "broken", Via: []string{"broken"}}}},
		},
		{
			name:   "missing granted role fails closed",
			grants: []Grant{{ID: "g1", RoleID: "admin"}, {ID: "g2", RoleID: "deleted"}},
			perm:   "invoices:read",
			want:   Decision{Reason: ReasonInvalidRoleGraph, Matched: []Match{{GrantID: "g1", Role: "admin", Via: []string{"admin"}}}},
		},
		{
			name:   "missing role of a grant that does not apply",
			grants: []Grant{{ID: "g1", RoleID: "admin"}, {ID: "g2", RoleID: "deleted", ValidUntil: t0}},
			perm:   "invoices:read",
			want:   Decision{Allowed: true, Reason: ReasonAllowed, Matched: []Match{{GrantID: "g1", Role: "admin", Via: []string{"admin"}}}},
		},
		{
			name:   "wildcard asked",
			grants: []Grant{{ID: "g1", RoleID: "admin"}},
			perm:   "invoices:*",
			want:   Decision{Reason: ReasonInvalidPermission},
		},
		{
			name:   "malformed permission asked",
			grants: []Grant{{ID: "g1", RoleID: "admin"}},
			perm:   "Invoices:Read",
			want:   Decision{Reason: ReasonInvalidPermission},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.at
			if at.IsZero() {
				at = t0
			}
			req := tt.req
			req.Time = at
			in := Input{
				Grants:     tt.grants,
				Roles:      roles,
				Permission: tt.perm,
				Resource:   tt.res,
				Request:    req,
				User:       User{ID: "u1"},
			}
			got := e.Decide(in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
			// Explaining changes nothing but the explanation, which
			// covers every grant.
			in.Explain = true
			explained := e.Decide(in)
			if diff := cmp.Diff(got, explained, cmpopts.IgnoreFields(Decision{}, "Explain")); diff != "" {
				t.Errorf("Decide with Explain (-without +with):\n%s", diff)
			}
			for _, g := range tt.grants {
				if got.Reason == ReasonInvalidPermission {
					break // nothing considered
				}
				if !slices.ContainsFunc(explained.Explain, func(s Step) bool { return s.GrantID == g.ID }) {
					t.Errorf("explanation lacks grant %s: %+v", g.ID, explained.Explain)
				}
			}
			if len(explained.Explain) == 0 {
				t.Error("empty explanation")
			}
		})
	}
}

// TestDecideTemporal follows one grant valid for a few more seconds
// through time.
func TestDecideTemporal(t *testing.T) {
	e := newEngine(t)
	until := t0.Add(3*time.Second + 400*time.Millisecond) // counts as t0+3s
	in := Input{
		Grants:     []Grant{{ID: "g1", RoleID: "viewer", ValidFrom: t0.Add(-time.Hour), ValidUntil: until}},
		Roles:      fixtureRoles(),
		Permission: "reports:read",
	}
	for _, tt := range []struct {
		at      time.Duration
		allowed bool
	}{
		{-time.Hour - time.Nanosecond, false},
		{-time.Hour, true},
		{0, true},
		{2 * time.Second, true},
		{3*time.Second - time.Nanosecond, true},
		{3 * time.Second, false},
		{3*time.Second + 200*time.Millisecond, false},
		{time.Minute, false},
	} {
		in.Request.Time = t0.Add(tt.at)
		d := e.Decide(in)
		if d.Allowed != tt.allowed {
			t.Errorf("at t0%+v: allowed %v (%s), want %v", tt.at, d.Allowed, d.Reason, tt.allowed)
		}
		if !d.Allowed && d.Reason != ReasonNoMatchingGrant {
			t.Errorf("at t0%+v: reason %s, want %s", tt.at, d.Reason, ReasonNoMatchingGrant)
		}
	}
	in.Request.Time = time.Time{}
	if d := e.Decide(in); d.Allowed || d.Reason != ReasonMissingTime {
		t.Errorf("without a time: %+v, want denied %s", d, ReasonMissingTime)
	}
}

// TestDecideGrantOrder: the decision and its lists do not depend on the
// order of the grants given.
func TestDecideGrantOrder(t *testing.T) {
	e := newEngine(t)
	grants := []Grant{
		{ID: "g3", RoleID: "editor"},
		{ID: "g1", RoleID: "clerk"},
		{ID: "g2", RoleID: "admin"},
	}
	in := Input{Grants: grants, Roles: fixtureRoles(), Permission: "invoices:delete", Request: Request{Time: t0}, Explain: true}
	want := e.Decide(in)
	shuffled := []Grant{grants[2], grants[0], grants[1]}
	in.Grants = shuffled
	if diff := cmp.Diff(want, e.Decide(in)); diff != "" {
		t.Errorf("Decide depends on the order of grants (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff([]Grant{grants[2], grants[0], grants[1]}, shuffled); diff != "" {
		t.Errorf("Decide reordered the caller's slice (-before +after):\n%s", diff)
	}
	if want.DeniedBy == nil || want.DeniedBy.GrantID != "g1" || len(want.Matched) != 3 || want.Matched[0].GrantID != "g1" {
		t.Errorf("decision %+v, want grants in ID order", want)
	}
}

func TestDecideExplain(t *testing.T) {
	e := newEngine(t)
	in := Input{
		Grants: []Grant{
			{ID: "g1", RoleID: "editor", OrganizationID: "o1"},
			{ID: "g2", RoleID: "approver", Condition: `request.country == "FR"`},
			{ID: "g3", RoleID: "admin", ValidUntil: t0},
			{ID: "g4", RoleID: "suspended", OrganizationID: "o2"},
			{ID: "g5", RoleID: "offhours", ValidFrom: t0.Add(time.Hour)},
			{ID: "g6", RoleID: "tagged", Condition: `resource.attributes.region == "eu"`},
			{ID: "g7", RoleID: "cautious"},
			{ID: "g8", RoleID: "o1-lead"},
		},
		Roles:      fixtureRoles(),
		Permission: "invoices:read",
		Resource:   Resource{OrganizationID: "o1", Attributes: map[string]any{}},
		Request:    Request{Time: t0, Country: "FR"},
		Explain:    true,
	}
	roles := in.Roles
	roles["approver"] = Role{
		ID:    "approver",
		Allow: []PermissionRule{{Permission: "invoices:read", Condition: "request.mfa"}},
		Deny:  []PermissionRule{{Permission: "invoices:*", Condition: `request.ip == "10.6.6.6"`}},
	}
	got := e.Decide(in)
	want := Decision{
		Allowed: true,
		Reason:  ReasonAllowed,
		Matched: []Match{
			{GrantID: "g1", Role: "editor", Via: []string{"editor"}},
			{GrantID: "g1", Role: "viewer", Via: []string{"editor", "viewer"}},
		},
		Explain: []Step{
			{Role: "editor", GrantID: "g1", Applied: true, Why: "grant for organization o1"},
			{Role: "editor", GrantID: "g1", Applied: true, Why: "allow rule invoices:* matches invoices:read"},
			{Role: "viewer", GrantID: "g1", Applied: true, Why: "allow rule invoices:read matches invoices:read (inherited: editor > viewer)"},
			{Role: "approver", GrantID: "g2", Applied: true, Why: "global grant, condition `request.country == \"FR\"` is true"},
			{Role: "approver", GrantID: "g2", Applied: false, Why: "deny rule invoices:* matches invoices:read, condition `request.ip == \"10.6.6.6\"` is false"},
			{Role: "approver", GrantID: "g2", Applied: false, Why: "allow rule invoices:read matches invoices:read, condition `request.mfa` is false"},
			{Role: "admin", GrantID: "g3", Applied: false, Why: "grant expired at 2026-03-01T12:00:00Z"},
			{Role: "suspended", GrantID: "g4", Applied: false, Why: "grant for organization o2, resource of organization o1"},
			{Role: "offhours", GrantID: "g5", Applied: false, Why: "grant not valid before 2026-03-01T13:00:00Z"},
			{Role: "tagged", GrantID: "g6", Applied: false, Why: "global grant, condition `resource.attributes.region == \"eu\"` failed (no such key: region): its allow rules do not count, its deny rules do"},
			{Role: "tagged", GrantID: "g6", Applied: false, Why: "no rule matches invoices:read"},
			{Role: "cautious", GrantID: "g7", Applied: true, Why: "global grant"},
			{Role: "cautious", GrantID: "g7", Applied: false, Why: "no rule matches invoices:read"},
			{Role: "o1-lead", GrantID: "g8", Applied: true, Why: "global grant"},
			{Role: "o1-lead", GrantID: "g8", Applied: false, Why: "no rule matches invoices:read"},
			{Role: "o1-projects", GrantID: "g8", Applied: false, Why: "no rule matches invoices:read (inherited: o1-lead > o1-projects)"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decide (-want +got):\n%s", diff)
	}

	// Roles of another organisation, a deny holding through a failure,
	// an allow whose grant condition failed, and a broken hierarchy.
	in = Input{
		Grants: []Grant{
			{ID: "g1", RoleID: "o1-lead"},
			{ID: "g2", RoleID: "cautious"},
			{ID: "g3", RoleID: "tagged", Condition: "resource.attributes.x == 1"},
			{ID: "g4", RoleID: "broken"},
		},
		Roles:      fixtureRoles(),
		Permission: "documents:read",
		Resource:   Resource{OrganizationID: "o2", Attributes: map[string]any{}},
		Request:    Request{Time: t0},
		Explain:    true,
	}
	got = e.Decide(in)
	want = Decision{
		Reason:   ReasonDeniedByRule,
		DeniedBy: &Match{GrantID: "g2", Role: "cautious", Via: []string{"cautious"}},
		Explain: []Step{
			{Role: "o1-lead", GrantID: "g1", Applied: true, Why: "global grant"},
			{Role: "o1-lead", GrantID: "g1", Applied: false, Why: "no rule matches documents:read"},
			{Role: "o1-projects", GrantID: "g1", Applied: false, Why: "role of organization o1, resource of organization o2: skipped with what it inherits (inherited: o1-lead > o1-projects)"},
			{Role: "cautious", GrantID: "g2", Applied: true, Why: "global grant"},
			{Role: "cautious", GrantID: "g2", Applied: true, Why: "deny rule documents:read matches documents:read, condition `resource.attributes.classification == \"secret\"` failed (no such key: classification): counts as holding"},
			{Role: "tagged", GrantID: "g3", Applied: false, Why: "global grant, condition `resource.attributes.x == 1` failed (no such key: x): its allow rules do not count, its deny rules do"},
			{Role: "tagged", GrantID: "g3", Applied: false, Why: "allow rule documents:read matches documents:read, but the grant's condition failed"},
			{Role: "broken", GrantID: "g4", Applied: true, Why: "global grant"},
			{Role: "broken", GrantID: "g4", Applied: false, Why: "no rule matches documents:read"},
			{Role: "broken", GrantID: "g4", Applied: false, Why: "role hierarchy unresolved: authz: role not found: deleted, parent of broken"},
		},
	}
	if o1 := fixtureRoles()["o1-lead"]; o1.OrganizationID != "" {
		t.Fatal("fixture: o1-lead is meant to be global, inheriting o1-projects")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Decide (-want +got):\n%s", diff)
	}

	for _, tt := range []struct{ perm, why string }{
		{"invoices:*", `"invoices:*" is not a permission that can be checked (resource:action, no wildcard)`},
		{"", `"" is not a permission that can be checked (resource:action, no wildcard)`},
	} {
		d := e.Decide(Input{Permission: tt.perm, Request: Request{Time: t0}, Explain: true})
		if len(d.Explain) != 1 || !strings.Contains(d.Explain[0].Why, tt.why) {
			t.Errorf("explanation %+v, want %q", d.Explain, tt.why)
		}
	}
}
