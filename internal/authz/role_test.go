package authz

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// roleMap indexes roles by ID.
func roleMap(roles ...Role) map[string]Role {
	m := make(map[string]Role, len(roles))
	for _, r := range roles {
		m[r.ID] = r
	}
	return m
}

// chain is n roles r0 … r(n-1), each the parent of the next (r0 at the
// top).
func chain(n int) map[string]Role {
	m := map[string]Role{}
	for i := range n {
		r := Role{ID: fmt.Sprintf("r%d", i), Name: fmt.Sprintf("role%d", i)}
		if i > 0 {
			r.Parents = []string{fmt.Sprintf("r%d", i-1)}
		}
		m[r.ID] = r
	}
	return m
}

func TestCheckCycle(t *testing.T) {
	abc := roleMap(
		Role{ID: "a", Name: "admin"},
		Role{ID: "b", Name: "billing", Parents: []string{"a"}},
		Role{ID: "c", Name: "clerk", Parents: []string{"b"}},
	)
	diamond := roleMap(
		Role{ID: "base", Name: "base"},
		Role{ID: "left", Name: "left", Parents: []string{"base"}},
		Role{ID: "right", Name: "right", Parents: []string{"base"}},
	)
	tests := []struct {
		name    string
		roles   map[string]Role
		changed Role
		path    []string // the cycle, nil for none
		msg     string
	}{
		{
			name:    "self",
			roles:   abc,
			changed: Role{ID: "a", Name: "admin", Parents: []string{"a"}},
			path:    []string{"a", "a"},
			msg:     "role hierarchy cycle: admin -> admin",
		},
		{
			name:    "direct",
			roles:   abc,
			changed: Role{ID: "a", Name: "admin", Parents: []string{"b"}},
			path:    []string{"a", "b", "a"},
			msg:     "role hierarchy cycle: admin -> billing -> admin",
		},
		{
			name:    "indirect",
			roles:   abc,
			changed: Role{ID: "a", Name: "admin", Parents: []string{"c"}},
			path:    []string{"a", "c", "b", "a"},
			msg:     "role hierarchy cycle: admin -> clerk -> billing -> admin",
		},
		{
			name:    "indirect, behind an acyclic parent",
			roles:   abc,
			changed: Role{ID: "a", Name: "admin", Parents: []string{"x", "c"}},
			path:    []string{"a", "c", "b", "a"},
			msg:     "role hierarchy cycle: admin -> clerk -> billing -> admin",
		},
		{
			name:    "renamed role named by its new name",
			roles:   abc,
			changed: Role{ID: "b", Name: "finance", Parents: []string{"c"}},
			path:    []string{"b", "c", "b"},
			msg:     "role hierarchy cycle: finance -> clerk -> finance",
		},
		{
			name:    "new role",
			roles:   abc,
			changed: Role{ID: "d", Name: "director", Parents: []string{"c", "a"}},
		},
		{
			name:    "reparenting without a cycle",
			roles:   abc,
			changed: Role{ID: "c", Name: "clerk", Parents: []string{"a"}},
		},
		{
			name:    "diamond",
			roles:   diamond,
			changed: Role{ID: "top", Name: "top", Parents: []string{"left", "right"}},
		},
		{
			name:    "unknown parent",
			roles:   abc,
			changed: Role{ID: "d", Parents: []string{"nope"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCycle(tt.roles, tt.changed)
			if tt.path == nil {
				if err != nil {
					t.Fatalf("CheckCycle: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRoleCycle) {
				t.Fatalf("CheckCycle = %v, want ErrRoleCycle", err)
			}
			var ce *CycleError
			if !errors.As(err, &ce) {
				t.Fatalf("CheckCycle = %T, want *CycleError", err)
			}
			if diff := cmp.Diff(tt.path, ce.Path); diff != "" {
				t.Errorf("path (-want +got):\n%s", diff)
			}
			if err.Error() != tt.msg {
				t.Errorf("message %q, want %q", err.Error(), tt.msg)
			}
		})
	}
}

func TestCheckCycleDepth(t *testing.T) {
	roles := chain(MaxDepth - 1) // r0 … r30
	last := fmt.Sprintf("r%d", MaxDepth-2)
	tests := []struct {
		name    string
		roles   map[string]Role
		changed Role
		tooDeep bool
	}{
		{"a new role at the bottom reaches MaxDepth", roles, Role{ID: "x", Parents: []string{last}}, false},
		{"a new role two below is too deep", withRole(roles, Role{ID: "x", Parents: []string{last}}), Role{ID: "y", Parents: []string{"x"}}, true},
		{"a parent above the top reaches MaxDepth", withRole(roles, Role{ID: "p"}), Role{ID: "r0", Parents: []string{"p"}}, false},
		{"a grandparent above the top is too deep", withRole(roles, Role{ID: "p", Parents: []string{"q"}}, Role{ID: "q"}), Role{ID: "r0", Parents: []string{"p"}}, true},
		{"in the middle", withRole(roles, Role{ID: "p", Parents: []string{"q"}}, Role{ID: "q"}), Role{ID: "r5", Parents: []string{"r4", "p"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCycle(tt.roles, tt.changed)
			if tt.tooDeep != errors.Is(err, ErrRoleTooDeep) || (!tt.tooDeep && err != nil) {
				t.Fatalf("CheckCycle = %v, want too deep: %v", err, tt.tooDeep)
			}
		})
	}
}

func withRole(roles map[string]Role, add ...Role) map[string]Role {
	m := make(map[string]Role, len(roles)+len(add))
	for id, r := range roles {
		m[id] = r
	}
	for _, r := range add {
		m[r.ID] = r
	}
	return m
}

func TestEffective(t *testing.T) {
	roles := roleMap(
		Role{ID: "viewer", Allow: []PermissionRule{{Permission: "reports:read"}, {Permission: "invoices:read"}}},
		Role{
			ID:      "editor",
			Allow:   []PermissionRule{{Permission: "invoices:*", Condition: "request.mfa"}},
			Deny:    []PermissionRule{{Permission: "invoices:delete"}},
			Parents: []string{"viewer"},
		},
		// Diamond: top inherits base through left and through right.
		Role{ID: "base", Allow: []PermissionRule{{Permission: "files:read"}}},
		Role{ID: "left", Allow: []PermissionRule{{Permission: "files:write"}}, Parents: []string{"base"}},
		Role{ID: "right", Deny: []PermissionRule{{Permission: "files:write", Condition: "!request.mfa"}}, Parents: []string{"base"}},
		Role{ID: "top", Parents: []string{"right", "left"}},
		// A cycle (refused at write time) must not make Effective loop.
		Role{ID: "ping", Allow: []PermissionRule{{Permission: "ping:send"}}, Parents: []string{"pong"}},
		Role{ID: "pong", Allow: []PermissionRule{{Permission: "pong:send"}}, Parents: []string{"ping"}},
		Role{ID: "orphan", Parents: []string{"gone"}},
	)
	tests := []struct {
		role string
		want []EffectivePermission
		err  error
	}{
		{
			role: "viewer",
			want: []EffectivePermission{
				{Permission: "invoices:read", Effect: Allow, Via: []string{"viewer"}},
				{Permission: "reports:read", Effect: Allow, Via: []string{"viewer"}},
			},
		},
		{
			role: "editor",
			want: []EffectivePermission{
				{Permission: "invoices:*", Effect: Allow, Condition: "request.mfa", Via: []string{"editor"}},
				{Permission: "invoices:delete", Effect: Deny, Via: []string{"editor"}},
				{Permission: "invoices:read", Effect: Allow, Via: []string{"editor", "viewer"}},
				{Permission: "reports:read", Effect: Allow, Via: []string{"editor", "viewer"}},
			},
		},
		{
			role: "top",
			want: []EffectivePermission{
				{Permission: "files:read", Effect: Allow, Via: []string{"top", "right", "base"}},
				{Permission: "files:write", Effect: Deny, Condition: "!request.mfa", Via: []string{"top", "right"}},
				{Permission: "files:write", Effect: Allow, Via: []string{"top", "left"}},
			},
		},
		{
			role: "ping",
			want: []EffectivePermission{
				{Permission: "ping:send", Effect: Allow, Via: []string{"ping"}},
				{Permission: "pong:send", Effect: Allow, Via: []string{"ping", "pong"}},
			},
		},
		{role: "nope", err: ErrRoleNotFound},
		{role: "orphan", err: ErrRoleNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			got, err := Effective(tt.role, roles)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Effective: %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Effective (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEffectiveDepth(t *testing.T) {
	roles := chain(MaxDepth)
	bottom := fmt.Sprintf("r%d", MaxDepth-1)
	got, err := Effective(bottom, roles)
	if err != nil {
		t.Fatalf("Effective at MaxDepth: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("Effective = %v, want nothing (no rules)", got)
	}
	roles = withRole(roles, Role{ID: "deep", Parents: []string{bottom}})
	if _, err := Effective("deep", roles); !errors.Is(err, ErrRoleTooDeep) {
		t.Fatalf("Effective beyond MaxDepth: %v, want ErrRoleTooDeep", err)
	}
}

// TestWalkManyParents covers the walker past its linear scan: a role with
// many parents sharing grandparents visits each role once.
func TestWalkManyParents(t *testing.T) {
	roles := map[string]Role{}
	top := Role{ID: "top"}
	for i := range 50 {
		p := Role{ID: fmt.Sprintf("p%02d", i), Parents: []string{fmt.Sprintf("g%d", i%5)}}
		roles[p.ID] = p
		top.Parents = append(top.Parents, p.ID)
	}
	for i := range 5 {
		g := Role{ID: fmt.Sprintf("g%d", i), Allow: []PermissionRule{{Permission: fmt.Sprintf("g%d:read", i)}}, Parents: []string{"top"}}
		roles[g.ID] = g
	}
	roles["top"] = top
	var w walker
	seen := map[string]int{}
	if err := w.walk("top", roles, func(r *Role, _ int) bool { seen[r.ID]++; return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 56 {
		t.Errorf("visited %d roles, want 56", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("visited %s %d times", id, n)
		}
	}
	got, err := Effective("top", roles)
	if err != nil {
		t.Fatal(err)
	}
	want := []EffectivePermission{
		{Permission: "g0:read", Effect: Allow, Via: []string{"top", "p00", "g0"}},
		{Permission: "g1:read", Effect: Allow, Via: []string{"top", "p01", "g1"}},
		{Permission: "g2:read", Effect: Allow, Via: []string{"top", "p02", "g2"}},
		{Permission: "g3:read", Effect: Allow, Via: []string{"top", "p03", "g3"}},
		{Permission: "g4:read", Effect: Allow, Via: []string{"top", "p04", "g4"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Effective (-want +got):\n%s", diff)
	}
}
