package rbac_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/rbac"
	"github.com/gatehouse/gatehouse/internal/store"
)

func TestPermissions(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.permissions("invoices:read")
		st, body := e.do(e.root, "POST", "/v1/admin/permissions", map[string]any{"name": "invoices:read"})
		wantProblem(t, st, body, http.StatusConflict, "permission_exists")
		st, body = e.do(e.root, "POST", "/v1/admin/permissions", map[string]any{"name": "Invoices read"})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "validation_failed")
		if got := fieldErrors(body); !slices.Equal(got, []string{"name permission"}) {
			t.Errorf("field errors %v", got)
		}
		got := e.must(http.StatusOK, "GET", "/v1/admin/permissions/invoices:read", nil)
		if got["name"] != "invoices:read" || got["description"] != "test invoices:read" {
			t.Errorf("GET permission: %v", got)
		}
		list := e.must(http.StatusOK, "GET", "/v1/admin/permissions", nil)["permissions"].([]any)
		if len(list) != len(rbac.BuiltinPermissions)+6 { // "*" and the four "x:*" of the built-in roles, and ours
			t.Errorf("%d permissions listed, want %d", len(list), len(rbac.BuiltinPermissions)+6)
		}

		e.role(map[string]any{"name": "reader", "permissions": []any{"invoices:read"}})
		st, body = e.do(e.root, "DELETE", "/v1/admin/permissions/invoices:read", nil)
		wantProblem(t, st, body, http.StatusConflict, "permission_in_use")
		e.permissions("invoices:write")
		e.takeChanges()
		e.must(http.StatusNoContent, "DELETE", "/v1/admin/permissions/invoices:write", nil)
		st, body = e.do(e.root, "GET", "/v1/admin/permissions/invoices:write", nil)
		wantProblem(t, st, body, http.StatusNotFound, "not_found")
		if ch := e.takeChanges(); len(ch) != 1 || !ch[0].All {
			t.Errorf("changes after deleting a permission: %+v", ch)
		}
		created := e.audit("rbac.permission_created")
		if len(created) != 2 || created[1].Data["before"] != nil || created[1].Data["after"].(map[string]any)["name"] != "invoices:read" {
			t.Errorf("permission_created events: %+v", created)
		}
		deleted := e.audit("rbac.permission_deleted")
		if len(deleted) != 1 || deleted[0].ActorID != e.root || deleted[0].Data["after"] != nil || deleted[0].Data["before"].(map[string]any)["name"] != "invoices:write" {
			t.Errorf("permission_deleted events: %+v", deleted)
		}
	})
}

func TestHierarchyDenyAndCycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.permissions("invoices:read", "invoices:write", "invoices:*")
		base := e.role(map[string]any{"name": "base", "permissions": []any{"invoices:*"}})
		clerk := e.role(map[string]any{"name": "clerk", "parents": []any{"base"}, "deny": []any{"invoices:write"}})
		top := e.role(map[string]any{"name": "top", "parents": []any{clerk}})
		alice := e.user("alice")
		e.grant(alice, map[string]any{"role": "top"})
		now := authz.Request{Time: start}
		if !e.allowed(alice, "invoices:read", "", now) {
			t.Error("top does not inherit invoices:read from base")
		}
		if e.allowed(alice, "invoices:write", "", now) {
			t.Error("the deny of clerk does not win over the allow of base")
		}

		eff := e.must(http.StatusOK, "GET", "/v1/admin/roles/"+top+"/effective-permissions", nil)
		type row struct{ Perm, Effect, Role, Via string }
		var rows []row
		for _, x := range eff["permissions"].([]any) {
			m := x.(map[string]any)
			var via []string
			for _, v := range m["via"].([]any) {
				via = append(via, v.(string))
			}
			rows = append(rows, row{m["permission"].(string), m["effect"].(string), m["role"].(string), strings.Join(via, ">")})
		}
		want := []row{{"invoices:*", "allow", "base", "top>clerk>base"}, {"invoices:write", "deny", "clerk", "top>clerk"}}
		if diff := cmp.Diff(want, rows); diff != "" || eff["role_id"] != top {
			t.Errorf("effective permissions (-want +got):\n%s", diff)
		}

		// base -> top would close top -> clerk -> base -> top.
		st, body := e.do(e.root, "PATCH", "/v1/admin/roles/"+base, map[string]any{"parents": []any{"top"}})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "role_cycle")
		if !strings.Contains(body["detail"].(string), "base -> top -> clerk -> base") {
			t.Errorf("cycle detail %q", body["detail"])
		}
		st, body = e.do(e.root, "PATCH", "/v1/admin/roles/"+base, map[string]any{"parents": []any{base}})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "role_cycle")
		if got := e.must(http.StatusOK, "GET", "/v1/admin/roles/"+base, nil); len(got["parents"].([]any)) != 0 {
			t.Errorf("a refused cycle changed the role: %v", got)
		}

		// Unknown permission and parent are field errors; nothing is created.
		st, body = e.do(e.root, "POST", "/v1/admin/roles", map[string]any{"name": "x", "permissions": []any{"invoices:read", "reports:read"}, "parents": []any{"nope"}})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "validation_failed")
		if got := fieldErrors(body); !slices.Equal(got, []string{"permissions[1] unknown", "parents[0] unknown"}) {
			t.Errorf("field errors %v", got)
		}
		if !strings.Contains(fieldMessage(body, "permissions[1]"), "reports:read") {
			t.Errorf("the field error does not name the permission: %v", body)
		}
		st, body = e.do(e.root, "POST", "/v1/admin/roles", map[string]any{"name": "base"})
		wantProblem(t, st, body, http.StatusConflict, "role_exists")
	})
}

func TestInvalidConditionRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.permissions("invoices:read")
		const bad = "request.mfa && user.nope"
		_, cerr := e.comp.Compile(bad)
		var ce *authz.ConditionError
		if !errors.As(cerr, &ce) {
			t.Fatalf("the compiler takes %q: %v", bad, cerr)
		}
		st, body := e.do(e.root, "POST", "/v1/admin/roles", map[string]any{
			"name": "r", "permissions": []any{map[string]any{"permission": "invoices:read", "condition": bad}},
		})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "invalid_condition")
		if fieldMessage(body, "permissions[0].condition") != ce.Message || body["detail"] != ce.Message {
			t.Errorf("the answer does not carry the compiler's message %q: %v", ce.Message, body)
		}
		role := e.role(map[string]any{"name": "r", "permissions": []any{map[string]any{"permission": "invoices:read", "condition": "request.mfa"}}})
		got := e.must(http.StatusOK, "GET", "/v1/admin/roles/"+role, nil)
		if diff := cmp.Diff([]any{map[string]any{"permission": "invoices:read", "condition": "request.mfa"}}, got["permissions"]); diff != "" {
			t.Errorf("rules (-want +got):\n%s", diff)
		}
		alice := e.user("alice")
		st, body = e.do(e.root, "POST", "/v1/admin/users/"+alice+"/roles", map[string]any{"role": "r", "condition": bad})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "invalid_condition")
		if fieldMessage(body, "condition") != ce.Message {
			t.Errorf("grant: %v", body)
		}
		st, body = e.do(e.root, "POST", "/v1/admin/users/"+alice+"/roles", map[string]any{"role": "r", "valid_from": "2036-03-05T00:00:00Z", "valid_until": "2036-03-04T00:00:00Z"})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "validation_failed")
		if got := fieldErrors(body); !slices.Equal(got, []string{"valid_until order"}) {
			t.Errorf("field errors %v", got)
		}
		if n := e.grantCount(alice); n != 0 {
			t.Errorf("%d grants after refusals", n)
		}
		// The role's condition: request.mfa.
		e.grant(alice, map[string]any{"role": "r"})
		if e.allowed(alice, "invoices:read", "", authz.Request{Time: start}) || !e.allowed(alice, "invoices:read", "", authz.Request{Time: start, MFA: true}) {
			t.Error("the condition request.mfa does not decide")
		}
	})
}

func TestBuiltinRoles(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		// Idempotent, also inside a transaction.
		if err := e.store.InTx(ctx, func(tx store.Store) error { return rbac.EnsureBuiltins(ctx, tx) }); err != nil {
			t.Fatalf("EnsureBuiltins again: %v", err)
		}
		for _, r := range rbac.BuiltinRoles {
			got, err := e.store.GetRole(ctx, r.ID)
			if err != nil || got.Name != r.Name {
				t.Errorf("built-in role %s: %+v, %v", r.Name, got, err)
			}
			if !rbac.IsBuiltinRole(r.ID) {
				t.Errorf("IsBuiltinRole(%s) is false", r.ID)
			}
		}
		st, body := e.do(e.root, "PATCH", "/v1/admin/roles/"+rbac.AuditorRoleID, map[string]any{"description": "mine"})
		wantProblem(t, st, body, http.StatusConflict, "built_in_role")
		st, body = e.do(e.root, "DELETE", "/v1/admin/roles/"+rbac.AdminRoleID+"?force=true", nil)
		wantProblem(t, st, body, http.StatusConflict, "built_in_role")
		if got := e.must(http.StatusOK, "GET", "/v1/admin/roles/"+rbac.AuditorRoleID, nil); got["built_in"] != true || got["description"] == "mine" {
			t.Errorf("auditor: %v", got)
		}

		// An auditor reads but does not change; a user without roles does
		// neither.
		aud, nobody := e.user("auditor"), e.user("nobody")
		e.grant(aud, map[string]any{"role": "auditor"})
		if st, _ := e.do(aud, "GET", "/v1/admin/roles", nil); st != http.StatusOK {
			t.Errorf("auditor GET roles: %d", st)
		}
		st, body = e.do(aud, "POST", "/v1/admin/permissions", map[string]any{"name": "a:b"})
		wantProblem(t, st, body, http.StatusForbidden, "forbidden")
		if body["permission"] != "rbac:write" {
			t.Errorf("forbidden names %v", body["permission"])
		}
		if st, _ := e.do(aud, "GET", "/v1/admin/users/"+nobody+"/permissions", nil); st != http.StatusOK {
			t.Errorf("auditor GET user permissions: %d", st)
		}
		for _, path := range []string{"/v1/admin/roles", "/v1/admin/permissions", "/v1/admin/users/" + aud + "/permissions"} {
			if st, _ := e.do(nobody, "GET", path, nil); st != http.StatusForbidden {
				t.Errorf("GET %s without roles: %d", path, st)
			}
		}
		if st, _ := e.do("", "GET", "/v1/admin/roles", nil); st != http.StatusUnauthorized {
			t.Errorf("GET roles without a token: %d", st)
		}
	})
}

func TestDeleteRoleInUse(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.permissions("invoices:read")
		parent := e.role(map[string]any{"name": "parent", "permissions": []any{"invoices:read"}})
		child := e.role(map[string]any{"name": "child", "parents": []any{"parent"}})
		alice := e.user("alice")
		gid := e.grant(alice, map[string]any{"role": parent})
		e.takeChanges()

		st, body := e.do(e.root, "DELETE", "/v1/admin/roles/"+parent, nil)
		wantProblem(t, st, body, http.StatusConflict, "role_in_use")
		e.must(http.StatusNoContent, "DELETE", "/v1/admin/roles/"+parent+"?force=true", nil)
		if n := e.grantCount(alice); n != 0 {
			t.Errorf("%d grants left after a forced deletion", n)
		}
		if got := e.must(http.StatusOK, "GET", "/v1/admin/roles/"+child, nil); len(got["parents"].([]any)) != 0 {
			t.Errorf("child still has parents: %v", got)
		}
		if ch := e.takeChanges(); len(ch) != 1 || !ch[0].All {
			t.Errorf("changes: %+v", ch)
		}
		ev := e.audit("rbac.role_deleted")
		if len(ev) != 1 || ev[0].SubjectID != parent || ev[0].Data["after"] != nil || ev[0].Data["before"].(map[string]any)["name"] != "parent" {
			t.Fatalf("role_deleted: %+v", ev)
		}
		revoked := ev[0].Data["revoked_grants"].([]any)
		if len(revoked) != 1 || revoked[0].(map[string]any)["id"] != gid || !slices.Equal(ev[0].Data["children"].([]any), []any{child}) {
			t.Errorf("role_deleted data: %+v", ev[0].Data)
		}
		st, body = e.do(e.root, "DELETE", "/v1/admin/roles/"+child+"?force=maybe", nil)
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "validation_failed")
	})
}

func TestGrantsAuditAndChanges(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.permissions("invoices:read")
		role := e.role(map[string]any{"name": "reader", "description": "one", "permissions": []any{"invoices:read"}})
		alice := e.user("alice")
		e.takeChanges()
		g := e.must(http.StatusCreated, "POST", "/v1/admin/users/"+alice+"/roles", map[string]any{
			"role": "reader", "valid_until": "2036-03-04T05:06:17Z", "condition": "user.email_verified",
		})
		want := map[string]any{
			"id": g["id"], "user_id": alice, "role_id": role, "role": "reader", "valid_until": "2036-03-04T05:06:17Z",
			"condition": "user.email_verified", "created_at": g["created_at"], "created_by": e.root,
		}
		if diff := cmp.Diff(want, g); diff != "" {
			t.Errorf("grant (-want +got):\n%s", diff)
		}
		if ch := e.takeChanges(); len(ch) != 1 || !slices.Equal(ch[0].Users, []string{alice}) || ch[0].All {
			t.Errorf("changes after a grant: %+v", ch)
		}
		list := e.must(http.StatusOK, "GET", "/v1/admin/users/"+alice+"/roles", nil)["grants"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["role"] != "reader" {
			t.Errorf("grants: %v", list)
		}
		// Valid until 05:06:17: allowed at :16, not at :17.
		if !e.allowed(alice, "invoices:read", "", authz.Request{Time: start.Add(9 * time.Second)}) || e.allowed(alice, "invoices:read", "", authz.Request{Time: start.Add(10 * time.Second)}) {
			t.Error("valid_until is not honoured to the second")
		}

		st, body := e.do(e.root, "POST", "/v1/admin/users/"+alice+"/roles", map[string]any{"role": "nope"})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "validation_failed")
		st, body = e.do(e.root, "POST", "/v1/admin/users/0190d5c4-7a6b-7c3e-9f00-000000000001/roles", map[string]any{"role": "reader"})
		wantProblem(t, st, body, http.StatusNotFound, "not_found")

		e.must(http.StatusOK, "PATCH", "/v1/admin/roles/"+role, map[string]any{"description": "two"})
		if ch := e.takeChanges(); len(ch) != 1 || !ch[0].All {
			t.Errorf("changes after a role update: %+v", ch)
		}
		up := e.audit("rbac.role_updated")
		if len(up) != 1 || up[0].Data["before"].(map[string]any)["description"] != "one" || up[0].Data["after"].(map[string]any)["description"] != "two" {
			t.Errorf("role_updated: %+v", up)
		}

		bob := e.user("bob")
		st, body = e.do(e.root, "DELETE", "/v1/admin/users/"+bob+"/roles/"+g["id"].(string), nil)
		wantProblem(t, st, body, http.StatusNotFound, "not_found")
		e.must(http.StatusNoContent, "DELETE", "/v1/admin/users/"+alice+"/roles/"+g["id"].(string), nil)
		if ch := e.takeChanges(); len(ch) != 1 || !slices.Equal(ch[0].Users, []string{alice}) {
			t.Errorf("changes after a revocation: %+v", ch)
		}
		created, revoked := e.audit("rbac.grant_created"), e.audit("rbac.grant_revoked")
		if len(created) != 1 || created[0].SubjectID != alice || created[0].Data["after"].(map[string]any)["id"] != g["id"] || created[0].Data["before"] != nil {
			t.Errorf("grant_created: %+v", created)
		}
		if len(revoked) != 1 || revoked[0].Data["before"].(map[string]any)["id"] != g["id"] || revoked[0].Data["after"] != nil {
			t.Errorf("grant_revoked: %+v", revoked)
		}
	})
}

func TestBulk(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.permissions("invoices:read")
		e.role(map[string]any{"name": "reader", "permissions": []any{"invoices:read"}})
		a, b, c := e.user("a"), e.user("b"), e.user("c")
		old := e.grant(c, map[string]any{"role": "reader"})
		e.takeChanges()
		before := e.grantCount(a, b, c)
		st, body := e.do(e.root, "POST", "/v1/admin/role-grants/bulk", map[string]any{
			"grant": []any{
				map[string]any{"user_id": a, "role": "reader"},
				map[string]any{"user_id": b, "role": "no-such-role"},
				map[string]any{"user_id": b, "role": "reader", "condition": "nonsense("},
			},
			"revoke": []any{"0190d5c4-7a6b-7c3e-9f00-000000000009", old},
		})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "bulk_failed")
		want := []string{"grant[1].role unknown", "grant[2].condition invalid_condition", "revoke[0] unknown"}
		if diff := cmp.Diff(want, fieldErrors(body)); diff != "" {
			t.Errorf("item errors (-want +got):\n%s", diff)
		}
		if after := e.grantCount(a, b, c); after != before {
			t.Errorf("grants %d before, %d after a failed bulk change", before, after)
		}
		if ch := e.takeChanges(); len(ch) != 0 {
			t.Errorf("a failed bulk change reported changes: %+v", ch)
		}

		tooMany := make([]string, rbac.MaxBulkItems+1)
		for i := range tooMany {
			tooMany[i] = old
		}
		st, body = e.do(e.root, "POST", "/v1/admin/role-grants/bulk", map[string]any{"revoke": tooMany})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "bulk_failed")

		out := e.must(http.StatusOK, "POST", "/v1/admin/role-grants/bulk", map[string]any{
			"grant":  []any{map[string]any{"user_id": a, "role": "reader"}, map[string]any{"user_id": b, "role": "reader"}},
			"revoke": []any{old},
		})
		if g := out["granted"].([]any); len(g) != 2 || g[0].(map[string]any)["user_id"] != a || g[1].(map[string]any)["role"] != "reader" {
			t.Errorf("granted: %v", g)
		}
		if r := out["revoked"].([]any); len(r) != 1 || r[0] != old {
			t.Errorf("revoked: %v", r)
		}
		if n := e.grantCount(a, b, c); n != 2 {
			t.Errorf("%d grants after the bulk change, want 2", n)
		}
		if ch := e.takeChanges(); len(ch) != 1 || !slices.Equal(sorted(ch[0].Users), sorted([]string{a, b, c})) {
			t.Errorf("changes after a bulk change: %+v", ch)
		}
		ev := e.audit("rbac.grants_bulk")
		if len(ev) != 1 || len(ev[0].Data["after"].(map[string]any)["granted"].([]any)) != 2 || len(ev[0].Data["before"].(map[string]any)["revoked"].([]any)) != 1 {
			t.Errorf("grants_bulk: %+v", ev)
		}
	})
}

func TestOrganizationAdmins(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.permissions("invoices:read")
		orgA, orgB := e.org("org-a"), e.org("org-b")
		owner, member := e.user("owner"), e.user("member")
		for _, m := range []store.OrgMembership{{OrgID: orgA, UserID: owner, Role: store.OrgOwner}, {OrgID: orgA, UserID: member, Role: store.OrgMember}} {
			if err := e.store.SetMembership(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		// Their own organisation's roles and grants.
		st, body := e.do(owner, "POST", "/v1/admin/roles", map[string]any{"name": "clerk", "organization_id": orgA, "permissions": []any{"invoices:read"}})
		if st != http.StatusCreated {
			t.Fatalf("owner creates a role of their organisation: %d %v", st, body)
		}
		role := body["id"].(string)
		if st, body := e.do(owner, "PATCH", "/v1/admin/roles/"+role, map[string]any{"description": "d"}); st != http.StatusOK {
			t.Errorf("owner updates it: %d %v", st, body)
		}
		if st, body := e.do(owner, "GET", "/v1/admin/roles?organization_id="+orgA, nil); st != http.StatusOK || len(body["roles"].([]any)) != 1 {
			t.Errorf("owner lists their organisation's roles: %d %v", st, body)
		}
		st, body = e.do(owner, "POST", "/v1/admin/users/"+member+"/roles", map[string]any{"role": "clerk", "organization_id": orgA})
		if st != http.StatusCreated {
			t.Fatalf("owner grants it: %d %v", st, body)
		}
		gid := body["id"].(string)
		if !e.allowed(member, "invoices:read", orgA, authz.Request{Time: start}) || e.allowed(member, "invoices:read", orgB, authz.Request{Time: start}) {
			t.Error("the organisation's grant does not apply to it alone")
		}
		// Granting an organisation's role outside it is refused.
		st, body = e.do(e.root, "POST", "/v1/admin/users/"+member+"/roles", map[string]any{"role": role})
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "validation_failed")
		if got := fieldErrors(body); !slices.Equal(got, []string{"role scope"}) {
			t.Errorf("field errors %v", got)
		}

		// Not another organisation's, nor global ones, nor a plain member.
		for _, c := range []struct {
			who, method, path string
			body              any
		}{
			{owner, "POST", "/v1/admin/roles", map[string]any{"name": "x", "organization_id": orgB}},
			{owner, "POST", "/v1/admin/roles", map[string]any{"name": "x"}},
			{owner, "GET", "/v1/admin/roles?organization_id=" + orgB, nil},
			{owner, "GET", "/v1/admin/roles", nil},
			{owner, "PATCH", "/v1/admin/roles/" + rbac.AuditorRoleID, map[string]any{"description": "x"}},
			{owner, "POST", "/v1/admin/users/" + member + "/roles", map[string]any{"role": "auditor"}},
			{owner, "POST", "/v1/admin/role-grants/bulk", map[string]any{"grant": []any{map[string]any{"user_id": member, "role": "auditor"}}}},
			{owner, "GET", "/v1/admin/permissions", nil},
			{member, "POST", "/v1/admin/roles", map[string]any{"name": "x", "organization_id": orgA}},
			{member, "DELETE", "/v1/admin/users/" + member + "/roles/" + gid, nil},
			// What does not exist is hidden from whoever lacks the permission globally.
			{owner, "GET", "/v1/admin/roles/0190d5c4-7a6b-7c3e-9f00-000000000009", nil},
			{owner, "DELETE", "/v1/admin/users/" + member + "/roles/0190d5c4-7a6b-7c3e-9f00-000000000009", nil},
		} {
			if st, body := e.do(c.who, c.method, c.path, c.body); st != http.StatusForbidden {
				t.Errorf("%s %s by %s: %d %v, want 403", c.method, c.path, map[string]string{owner: "owner", member: "member"}[c.who], st, body)
			}
		}
		out := e.must(http.StatusOK, "POST", "/v1/admin/role-grants/bulk", map[string]any{"grant": []any{}})
		if len(out["granted"].([]any)) != 0 {
			t.Errorf("empty bulk: %v", out)
		}
		if st, body := e.do(owner, "POST", "/v1/admin/role-grants/bulk", map[string]any{"revoke": []any{gid}}); st != http.StatusOK {
			t.Errorf("owner revokes in bulk: %d %v", st, body)
		}
		if st, body := e.do(owner, "DELETE", "/v1/admin/roles/"+role, nil); st != http.StatusNoContent {
			t.Errorf("owner deletes their organisation's role: %d %v", st, body)
		}
	})
}

func TestRoutesRecordTheirPermission(t *testing.T) {
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.DiscardHandler)})
	(&rbac.Handlers{}).Routes(rt)
	got := map[string]string{}
	for _, r := range rt.Routes() {
		got[r.Method+" "+r.Path] = r.Permission
	}
	want := map[string]string{
		"GET /v1/admin/permissions":                      "rbac:read",
		"POST /v1/admin/permissions":                     "rbac:write",
		"GET /v1/admin/permissions/{name}":               "rbac:read",
		"DELETE /v1/admin/permissions/{name}":            "rbac:write",
		"GET /v1/admin/roles":                            "rbac:read",
		"POST /v1/admin/roles":                           "rbac:write",
		"GET /v1/admin/roles/{id}":                       "rbac:read",
		"PATCH /v1/admin/roles/{id}":                     "rbac:write",
		"DELETE /v1/admin/roles/{id}":                    "rbac:write",
		"GET /v1/admin/roles/{id}/effective-permissions": "rbac:read",
		"GET /v1/admin/users/{id}/roles":                 "rbac:read",
		"POST /v1/admin/users/{id}/roles":                "rbac:write",
		"DELETE /v1/admin/users/{id}/roles/{grant_id}":   "rbac:write",
		"POST /v1/admin/role-grants/bulk":                "rbac:write",
		"GET /v1/admin/users/{id}/permissions":           "users:read",
		"GET /v1/admin/authz/who-can":                    "rbac:read",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routes and permissions (-want +got):\n%s", diff)
	}
}

func TestRolePatchIsPartialAndListPages(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.permissions("a:read", "a:write")
		id := e.role(map[string]any{"name": "r", "description": "d", "permissions": []any{"a:read"}, "deny": []any{"a:write"}})
		got := e.must(http.StatusOK, "PATCH", "/v1/admin/roles/"+id, map[string]any{"name": "r2"})
		if got["name"] != "r2" || got["description"] != "d" || len(got["permissions"].([]any)) != 1 || len(got["deny"].([]any)) != 1 {
			t.Errorf("PATCH name changed more: %v", got)
		}
		got = e.must(http.StatusOK, "PATCH", "/v1/admin/roles/"+id, map[string]any{"deny": []any{}})
		if got["name"] != "r2" || len(got["deny"].([]any)) != 0 || len(got["permissions"].([]any)) != 1 {
			t.Errorf("PATCH deny: %v", got)
		}
		st, body := e.do(e.root, "PATCH", "/v1/admin/roles/0190d5c4-7a6b-7c3e-9f00-000000000009", map[string]any{"name": "x"})
		wantProblem(t, st, body, http.StatusNotFound, "not_found")
		for i := range 3 {
			e.role(map[string]any{"name": fmt.Sprintf("p%d", i)})
		}
		seen := 0
		cursor := ""
		for pages := 0; ; pages++ {
			out := e.must(http.StatusOK, "GET", "/v1/admin/roles?global=true&limit=3&cursor="+cursor, nil)
			seen += len(out["roles"].([]any))
			cursor = out["next_cursor"].(string)
			if cursor == "" {
				break
			}
			if pages > 5 {
				t.Fatal("paging does not end")
			}
		}
		if want := len(rbac.BuiltinRoles) + 4; seen != want {
			t.Errorf("%d roles paged through, want %d", seen, want)
		}
		st, body = e.do(e.root, "GET", "/v1/admin/roles?limit=0", nil)
		wantProblem(t, st, body, http.StatusUnprocessableEntity, "validation_failed")
	})
}

func TestEnsureBuiltinsRefusesATakenName(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			ctx := t.Context()
			// The migrations seed the built-in roles: take auditor out, as
			// a release before it was defined would not have it.
			if _, err := s.DeleteRole(ctx, rbac.AuditorRoleID, true); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateRole(ctx, store.Role{Name: rbac.AuditorRole}); err != nil {
				t.Fatal(err)
			}
			err := rbac.EnsureBuiltins(ctx, s)
			if err == nil || !strings.Contains(err.Error(), "holds the name of the built-in role") {
				t.Fatalf("EnsureBuiltins over a taken name: %v", err)
			}
		})
	}
}

func TestConcurrentParentsNeverMakeACycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		for round := range 5 {
			a := e.role(map[string]any{"name": fmt.Sprintf("a%d", round)})
			b := e.role(map[string]any{"name": fmt.Sprintf("b%d", round)})
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			codes := make([]any, 2)
			for i, c := range [][2]string{{a, b}, {b, a}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, body := e.do(e.root, "PATCH", "/v1/admin/roles/"+c[0], map[string]any{"parents": []any{c[1]}})
					statuses[i], codes[i] = st, body["code"]
				}()
			}
			wg.Wait()
			ok := 0
			for i := range 2 {
				switch {
				case statuses[i] == http.StatusOK:
					ok++
				case statuses[i] != http.StatusUnprocessableEntity || codes[i] != "role_cycle":
					t.Errorf("round %d: PATCH %d answered %d %v", round, i, statuses[i], codes[i])
				}
			}
			if ok != 1 {
				t.Errorf("round %d: %d of the two opposite parent changes succeeded, want 1", round, ok)
			}
		}
	})
}
