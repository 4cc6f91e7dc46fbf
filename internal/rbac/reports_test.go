package rbac_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/authz"
)

// whoCanFixture builds users with overlapping, expired, future, denied,
// conditional and organisation grants.
type whoCanFixture struct {
	users        map[string]string // name -> ID
	orgA, orgB   string
	grants       map[string]string // name -> grant ID
	readerWriter string            // u7's writer grant
}

func newWhoCanFixture(t *testing.T, e *env) whoCanFixture {
	t.Helper()
	e.permissions("docs:read", "docs:write", "docs:*")
	f := whoCanFixture{users: map[string]string{}, grants: map[string]string{}, orgA: e.org("org-a"), orgB: e.org("org-b")}
	e.role(map[string]any{"name": "reader", "permissions": []any{"docs:read"}})
	e.role(map[string]any{"name": "writer", "parents": []any{"reader"}, "permissions": []any{"docs:write"}})
	e.role(map[string]any{"name": "blocked", "deny": []any{"docs:*"}})
	e.role(map[string]any{"name": "mfa-reader", "permissions": []any{map[string]any{"permission": "docs:read", "condition": "request.mfa"}}})
	e.role(map[string]any{"name": "org-reader", "organization_id": f.orgA, "permissions": []any{"docs:read"}})
	past, future := start.Add(-time.Hour).Format(time.RFC3339), start.Add(time.Hour).Format(time.RFC3339)
	for _, c := range []struct {
		user  string
		grant map[string]any
	}{
		{"u1", map[string]any{"role": "reader"}},
		{"u2", map[string]any{"role": "reader", "valid_until": past}},
		{"u3", map[string]any{"role": "writer"}},
		{"u3", map[string]any{"role": "blocked"}},
		{"u4", map[string]any{"role": "reader", "condition": "request.mfa"}},
		{"u5", map[string]any{"role": "org-reader", "organization_id": f.orgA}},
		{"u6", map[string]any{"role": "reader", "valid_from": future}},
		{"u7", map[string]any{"role": "reader"}},
		{"u7", map[string]any{"role": "writer"}},
		{"u8", map[string]any{"role": "mfa-reader"}},
		{"u9", map[string]any{"role": "reader", "condition": "user.email_verified"}},
		{"u10", map[string]any{"role": "reader", "organization_id": f.orgB}},
	} {
		if f.users[c.user] == "" {
			f.users[c.user] = e.user(c.user)
		}
		f.grants[c.user+"/"+c.grant["role"].(string)] = e.grant(f.users[c.user], c.grant)
	}
	f.users["u0"] = e.user("u0") // no grants
	f.users["root"] = e.root     // the built-in admin role: "*"
	return f
}

func TestWhoCanIsWhomCheckAllows(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		f := newWhoCanFixture(t, e)
		ids := func(names ...string) []string {
			var out []string
			for _, n := range names {
				out = append(out, f.users[n])
			}
			return sorted(out)
		}
		for _, c := range []struct {
			org  string
			want []string
		}{
			{"", ids("root", "u1", "u7", "u9")},
			{f.orgA, ids("root", "u1", "u5", "u7", "u9")},
			{f.orgB, ids("root", "u1", "u7", "u9", "u10")},
		} {
			path := "/v1/admin/authz/who-can?permission=docs:read"
			if c.org != "" {
				path += "&organization_id=" + c.org
			}
			out := e.must(http.StatusOK, "GET", path, nil)
			var listed []string
			rows := map[string]int{}
			for _, x := range out["users"].([]any) {
				m := x.(map[string]any)
				listed = append(listed, m["user_id"].(string))
				rows[m["user_id"].(string)]++
			}
			// The users Decide allows, over every user.
			var allowed []string
			for _, id := range f.users {
				if e.allowed(id, "docs:read", c.org, authz.Request{Time: start}) {
					allowed = append(allowed, id)
				}
			}
			if diff := cmp.Diff(sorted(allowed), sorted(listed)); diff != "" {
				t.Errorf("org %q: who-can differs from check (-check +who-can):\n%s", c.org, diff)
			}
			if diff := cmp.Diff(c.want, sorted(listed)); diff != "" {
				t.Errorf("org %q: who-can (-want +got):\n%s", c.org, diff)
			}
			if rows[f.users["u7"]] != 2 {
				t.Errorf("org %q: u7 has %d rows, want one per grant", c.org, rows[f.users["u7"]])
			}
		}

		// The rows of u7: each grant, the role holding the rule, the way.
		out := e.must(http.StatusOK, "GET", "/v1/admin/authz/who-can?permission=docs:read", nil)
		var u7 []map[string]any
		for _, x := range out["users"].([]any) {
			if m := x.(map[string]any); m["user_id"] == f.users["u7"] {
				u7 = append(u7, m)
			}
		}
		want := []map[string]any{
			{"user_id": f.users["u7"], "email": "u7@example.com", "grant_id": f.grants["u7/reader"], "role": "reader", "via": []any{"reader"}},
			{"user_id": f.users["u7"], "email": "u7@example.com", "grant_id": f.grants["u7/writer"], "role": "reader", "via": []any{"writer", "reader"}},
		}
		slices.SortFunc(want, func(a, b map[string]any) int { return strings.Compare(a["grant_id"].(string), b["grant_id"].(string)) })
		if diff := cmp.Diff(want, u7); diff != "" {
			t.Errorf("u7's rows (-want +got):\n%s", diff)
		}

		// docs:write: root and u7 (u3's is denied).
		out = e.must(http.StatusOK, "GET", "/v1/admin/authz/who-can?permission=docs:write", nil)
		if us := out["users"].([]any); len(us) != 2 || us[0].(map[string]any)["user_id"] != e.root || us[1].(map[string]any)["user_id"] != f.users["u7"] {
			t.Errorf("who can docs:write: %v", us)
		}

		// Once the clock passes u6's valid_from, u6 is listed too.
		e.clock.Advance(time.Hour)
		out = e.must(http.StatusOK, "GET", "/v1/admin/authz/who-can?permission=docs:read", nil)
		found := false
		for _, x := range out["users"].([]any) {
			found = found || x.(map[string]any)["user_id"] == f.users["u6"]
		}
		if !found {
			t.Error("u6 not listed once its grant starts")
		}

		for _, q := range []string{"permission=docs:*", "permission=", "permission=docs:read&organization_id=0190d5c4-7a6b-7c3e-9f00-000000000009", "permission=docs:read&format=xml"} {
			st, body := e.do(e.root, "GET", "/v1/admin/authz/who-can?"+q, nil)
			wantProblem(t, st, body, http.StatusUnprocessableEntity, "validation_failed")
		}
	})
}

func TestReportsCSVAndUserPermissions(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		f := newWhoCanFixture(t, e)
		st, body, h := e.raw(e.root, "GET", "/v1/admin/authz/who-can?permission=docs:write&format=csv", nil)
		if st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") {
			t.Fatalf("who-can CSV: %d %v %s", st, h, body)
		}
		rootGrant := e.must(http.StatusOK, "GET", "/v1/admin/users/"+e.root+"/roles", nil)["grants"].([]any)[0].(map[string]any)["id"].(string)
		want := []string{"user_id,email,grant_id,role,via", e.root + ",root@example.com," + rootGrant + ",admin,admin", f.users["u7"] + ",u7@example.com," + f.grants["u7/writer"] + ",writer,writer"}
		if diff := cmp.Diff(want, lines(body)); diff != "" {
			t.Errorf("who-can CSV (-want +got):\n%s", diff)
		}

		// u3: writer (docs:write, and docs:read through reader) and
		// blocked (deny docs:*).
		out := e.must(http.StatusOK, "GET", "/v1/admin/users/"+f.users["u3"]+"/permissions", nil)
		type row struct{ Perm, Effect, Grant, Role, Via string }
		var got []row
		for _, x := range out["permissions"].([]any) {
			m := x.(map[string]any)
			var via []string
			for _, v := range m["via"].([]any) {
				via = append(via, v.(string))
			}
			got = append(got, row{m["permission"].(string), m["effect"].(string), m["grant_id"].(string), m["role"].(string), strings.Join(via, " > ")})
		}
		w, b := f.grants["u3/writer"], f.grants["u3/blocked"]
		wantRows := []row{{"docs:read", "allow", w, "reader", "writer > reader"}, {"docs:write", "allow", w, "writer", "writer"}, {"docs:*", "deny", b, "blocked", "blocked"}}
		if w > b {
			wantRows = append(wantRows[2:], wantRows[:2]...)
		}
		if diff := cmp.Diff(wantRows, got); diff != "" || out["user_id"] != f.users["u3"] {
			t.Errorf("u3's permissions (-want +got):\n%s", diff)
		}
		// Grants out of their window are left out.
		for _, u := range []string{"u2", "u6", "u0"} {
			out := e.must(http.StatusOK, "GET", "/v1/admin/users/"+f.users[u]+"/permissions", nil)
			if len(out["permissions"].([]any)) != 0 {
				t.Errorf("%s's permissions: %v", u, out)
			}
		}
		st, body, h = e.raw(e.root, "GET", "/v1/admin/users/"+f.users["u5"]+"/permissions?format=csv", nil)
		if st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
			t.Fatalf("permissions CSV: %d %v", st, h)
		}
		wantCSV := []string{
			"user_id,permission,effect,condition,grant_id,grant_condition,role,role_id,organization_id,valid_from,valid_until,via",
		}
		got5 := lines(body)
		if len(got5) != 2 || got5[0] != wantCSV[0] || !strings.Contains(got5[1], ",docs:read,allow,,"+f.grants["u5/org-reader"]+",,org-reader,") || !strings.Contains(got5[1], f.orgA) {
			t.Errorf("permissions CSV: %q", got5)
		}
		st, resp := e.do(e.root, "GET", "/v1/admin/users/0190d5c4-7a6b-7c3e-9f00-000000000009/permissions", nil)
		wantProblem(t, st, resp, http.StatusNotFound, "not_found")
	})
}
