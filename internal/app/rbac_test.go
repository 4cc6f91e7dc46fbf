package app

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestRBAC runs the authorization issue's "Done when" list black-box, on
// one node and, for invalidation, two.
func TestRBACEmbedded(t *testing.T) { runRBAC(t, newAccountEnv(t, nil), nil) }

func TestRBACPostgresRedis(t *testing.T) {
	env := postgresRedisEnv(t)
	e := newAccountEnv(t, env)
	// A second node of the same installation: same database, same Redis,
	// same data dir (encryption key).
	other := startServerWithClock(t, testConfig(t, e.cfgEnv), e.s.clock)
	runRBAC(t, e, other)
}

// rbacEnv is a server with an administrator, for the RBAC tests.
type rbacEnv struct {
	*accountEnv
	admin string // the administrator's access token
}

// do calls the API as the administrator and fails unless the answer is
// want.
func (r *rbacEnv) do(t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	c, out, _ := call(t, method, r.url(path), body, bearer(r.admin)...)
	if c != want {
		t.Fatalf("%s %s = %d %v, want %d", method, path, c, out, want)
	}
	return out
}

func (r *rbacEnv) permission(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		r.do(t, "POST", "/v1/admin/permissions", map[string]any{"name": n, "description": "test " + n}, 201)
	}
}

func (r *rbacEnv) role(t *testing.T, body map[string]any) string {
	t.Helper()
	return r.do(t, "POST", "/v1/admin/roles", body, 201)["id"].(string)
}

func (r *rbacEnv) grant(t *testing.T, userID string, body map[string]any) string {
	t.Helper()
	return r.do(t, "POST", "/v1/admin/users/"+userID+"/roles", body, 201)["id"].(string)
}

// check asks POST /v1/authz/check with the caller's token (at).
func check(t *testing.T, base, at string, body map[string]any) map[string]any {
	t.Helper()
	c, out, _ := call(t, "POST", base+"/v1/authz/check", body, bearer(at)...)
	if c != 200 {
		t.Fatalf("check %v = %d %v", body, c, out)
	}
	return out
}

func allowed(t *testing.T, base, at string, body map[string]any) bool {
	t.Helper()
	a, ok := check(t, base, at, body)["allowed"].(bool)
	if !ok {
		t.Fatalf("check %v has no allowed", body)
	}
	return a
}

func runRBAC(t *testing.T, e *accountEnv, other *server) {
	if _, code := e.cli(t, "users", "create", "--email", "rbac-root@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
		t.Fatal("users create --admin failed")
	}
	r := &rbacEnv{accountEnv: e, admin: e.login(t, "rbac-root@example.com", strongPassword)}
	r.permission(t, "invoices:read", "invoices:write", "invoices:delete", "invoices:*", "reports:read")
	viewer := r.role(t, map[string]any{"name": "viewer", "description": "reads invoices", "permissions": []string{"invoices:read"}})
	editor := r.role(t, map[string]any{"name": "editor", "permissions": []string{"invoices:write"}, "parents": []string{viewer}})
	super := r.role(t, map[string]any{"name": "super", "permissions": []string{"invoices:*"}})
	noDelete := r.role(t, map[string]any{"name": "no-delete", "deny": []string{"invoices:delete"}})

	aliceAT := e.signUp(t, "alice@example.com")
	alice := userID(t, e, aliceAT)

	t.Run("InheritanceDenyCycle", func(t *testing.T) {
		g := r.grant(t, alice, map[string]any{"role": "editor"})
		out := check(t, e.s.public, aliceAT, map[string]any{"permission": "invoices:read"})
		if out["allowed"] != true {
			t.Fatalf("editor inherits invoices:read from viewer: %v", out)
		}
		m := out["matched"].([]any)[0].(map[string]any)
		if m["grant_id"] != g || m["role"] != "viewer" || fmt.Sprint(m["via"]) != "[editor viewer]" {
			t.Errorf("matched = %v, want grant %s through editor > viewer", m, g)
		}
		if allowed(t, e.s.public, aliceAT, map[string]any{"permission": "invoices:delete"}) {
			t.Error("editor may delete invoices")
		}
		r.grant(t, alice, map[string]any{"role": super})
		if !allowed(t, e.s.public, aliceAT, map[string]any{"permission": "invoices:delete"}) {
			t.Error("super (invoices:*) may not delete invoices")
		}
		r.grant(t, alice, map[string]any{"role": noDelete})
		out = check(t, e.s.public, aliceAT, map[string]any{"permission": "invoices:delete"})
		if out["allowed"] != false || out["denied_by"] == nil {
			t.Errorf("a deny from no-delete must win over super's allow: %v", out)
		}
		// viewer under editor would close a cycle.
		c, p, _ := call(t, "PATCH", e.url("/v1/admin/roles/"+viewer), map[string]any{"parents": []string{editor}}, bearer(r.admin)...)
		if c != 422 || p["code"] != "role_cycle" {
			t.Errorf("cycle = %d %v, want 422 role_cycle", c, p)
		}
	})

	bobAT := e.signUp(t, "bob@example.com")
	bob := userID(t, e, bobAT)

	t.Run("ConditionMFA", func(t *testing.T) {
		c, p, _ := call(t, "POST", e.url("/v1/admin/users/"+bob+"/roles"), map[string]any{"role": "viewer", "condition": "request.mfa &&"}, bearer(r.admin)...)
		if c != 422 || !strings.Contains(fmt.Sprint(p), "Syntax error") {
			t.Errorf("invalid CEL = %d %v, want 422 with the compiler's message", c, p)
		}
		reporter := r.role(t, map[string]any{"name": "reporter", "permissions": []string{"reports:read"}})
		r.grant(t, bob, map[string]any{"role": reporter, "condition": "request.mfa"})
		if allowed(t, e.s.public, bobAT, map[string]any{"permission": "reports:read"}) {
			t.Error("a password-only token satisfies request.mfa")
		}
		secret := enrolTOTP(t, e, bobAT)
		mt := loginMFA(t, e, "bob@example.com")["mfa_token"].(string)
		c, tok, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "totp", "code": totpAt(t, secret, time.Now())})
		if c != 200 {
			t.Fatalf("mfa verify = %d %v", c, tok)
		}
		mfaAT := tok["access_token"].(string)
		if !slices.Contains(amrOf(t, mfaAT), "mfa") {
			t.Fatalf("amr = %v", amrOf(t, mfaAT))
		}
		if !allowed(t, e.s.public, mfaAT, map[string]any{"permission": "reports:read"}) {
			t.Error("a token with amr mfa does not satisfy request.mfa")
		}
	})

	// After ConditionMFA: it moves the servers' clock, which the TOTP codes
	// computed from the real time must not see.
	t.Run("ValidUntilNoCacheDelay", func(t *testing.T) {
		until := e.s.clock.Now().Add(3 * time.Second).UTC().Truncate(time.Second)
		r.grant(t, bob, map[string]any{"role": "viewer", "valid_until": until.Format(time.RFC3339)})
		if !allowed(t, e.s.public, bobAT, map[string]any{"permission": "invoices:read"}) {
			t.Fatal("a grant valid for 3 more seconds does not allow")
		}
		e.s.clock.Advance(until.Sub(e.s.clock.Now()))
		if allowed(t, e.s.public, bobAT, map[string]any{"permission": "invoices:read"}) {
			t.Error("the grant still allows once valid_until has passed")
		}
	})

	carolAT := e.signUp(t, "carol@example.com")
	carol := userID(t, e, carolAT)
	orgA := r.do(t, "POST", "/v1/admin/organizations", map[string]any{"name": "Acme", "slug": "acme"}, 201)["id"].(string)
	orgB := r.do(t, "POST", "/v1/admin/organizations", map[string]any{"name": "Globex", "slug": "globex"}, 201)["id"].(string)

	t.Run("OrganizationScope", func(t *testing.T) {
		r.grant(t, carol, map[string]any{"role": "viewer", "organization_id": orgA})
		res := func(org string) map[string]any {
			return map[string]any{"permission": "invoices:read", "resource": map[string]any{"type": "invoice", "id": "inv-1", "organization_id": org}}
		}
		if !allowed(t, e.s.public, carolAT, res(orgA)) {
			t.Error("an Acme grant does not allow for an Acme invoice")
		}
		if allowed(t, e.s.public, carolAT, res(orgB)) {
			t.Error("an Acme grant allows for a Globex invoice")
		}
		if allowed(t, e.s.public, carolAT, map[string]any{"permission": "invoices:read"}) {
			t.Error("an Acme grant allows for a resource of no organisation")
		}
	})

	if other != nil {
		t.Run("RevokeAcrossNodes", func(t *testing.T) {
			daveAT := e.signUp(t, "dave@example.com")
			dave := userID(t, e, daveAT)
			g := r.grant(t, dave, map[string]any{"role": "viewer"})
			// The other node caches dave's grants.
			if !allowed(t, other.public, daveAT, map[string]any{"permission": "invoices:read"}) {
				t.Fatal("other node: the grant does not allow")
			}
			r.do(t, "DELETE", "/v1/admin/users/"+dave+"/roles/"+g, nil, 204)
			revoked := time.Now()
			for allowed(t, other.public, daveAT, map[string]any{"permission": "invoices:read"}) {
				if time.Since(revoked) > time.Second {
					t.Fatal("the other node still allows a second after the revocation")
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("the other node denied %v after the revocation", time.Since(revoked).Round(time.Millisecond))
		})
	}

	t.Run("BulkAllOrNothing", func(t *testing.T) {
		before := r.do(t, "GET", "/v1/admin/users/"+carol+"/roles", nil, 200)
		c, p, _ := call(t, "POST", e.url("/v1/admin/role-grants/bulk"), map[string]any{
			"grant": []map[string]any{
				{"user_id": carol, "role": "editor"},
				{"user_id": carol, "role": "no-such-role"},
			},
		}, bearer(r.admin)...)
		if c != 422 || len(p["errors"].([]any)) == 0 {
			t.Fatalf("bulk with a bad item = %d %v, want 422 with per-item errors", c, p)
		}
		if !strings.Contains(fmt.Sprint(p["errors"]), "grant[1]") {
			t.Errorf("the errors do not name grant[1]: %v", p["errors"])
		}
		after := r.do(t, "GET", "/v1/admin/users/"+carol+"/roles", nil, 200)
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("a refused bulk changed carol's grants: %v → %v", before, after)
		}
	})

	t.Run("WhoCanMatchesCheck", func(t *testing.T) {
		for _, q := range []struct{ permission, org string }{
			{"invoices:read", ""}, {"invoices:delete", ""}, {"invoices:read", orgA}, {"invoices:read", orgB}, {"reports:read", ""},
		} {
			path := "/v1/admin/authz/who-can?permission=" + q.permission
			if q.org != "" {
				path += "&organization_id=" + q.org
			}
			listed := map[string]bool{}
			for _, u := range r.do(t, "GET", path, nil, 200)["users"].([]any) {
				listed[u.(map[string]any)["user_id"].(string)] = true
			}
			for name, id := range map[string]string{"alice": alice, "bob": bob, "carol": carol} {
				body := map[string]any{"permission": q.permission}
				if q.org != "" {
					body["resource"] = map[string]any{"organization_id": q.org}
				}
				want := allowed(t, e.s.public, map[string]string{"alice": aliceAT, "bob": bobAT, "carol": carolAT}[name], body)
				if listed[id] != want {
					t.Errorf("who-can %s (org %q) lists %s: %v; check says %v", q.permission, q.org, name, listed[id], want)
				}
			}
		}
		// CSV, with a header row.
		req, _ := http.NewRequest("GET", e.url("/v1/admin/authz/who-can?permission=invoices:read&format=csv"), nil)
		req.Header.Set("Authorization", "Bearer "+r.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || err != nil || len(rows) < 2 || rows[0][0] != "user_id" {
			t.Errorf("who-can CSV = %d %s %q (%v)", resp.StatusCode, resp.Header.Get("Content-Type"), b, err)
		}
	})

	t.Run("AdminAPIPermissions", func(t *testing.T) {
		// A user without users:read.
		if c, p, _ := call(t, "GET", e.url("/v1/admin/users"), nil, bearer(aliceAT)...); c != 403 || p["code"] != "forbidden" || p["permission"] != "users:read" {
			t.Errorf("GET /v1/admin/users without users:read = %d %v, want 403 naming users:read", c, p)
		}
		auditorAT := e.signUp(t, "auditor@example.com")
		r.grant(t, userID(t, e, auditorAT), map[string]any{"role": "auditor"})
		if c, p, _ := call(t, "GET", e.url("/v1/admin/users"), nil, bearer(auditorAT)...); c != 200 {
			t.Errorf("auditor GET /v1/admin/users = %d %v", c, p)
		}
		if c, p, _ := call(t, "GET", e.url("/v1/admin/audit-events"), nil, bearer(auditorAT)...); c != 200 || len(p["events"].([]any)) == 0 {
			t.Errorf("auditor GET /v1/admin/audit-events = %d %v", c, p)
		}
		if c, p, _ := call(t, "POST", e.url("/v1/admin/users/"+bob+"/disable"), nil, bearer(auditorAT)...); c != 403 || p["permission"] != "users:write" {
			t.Errorf("auditor disabling a user = %d %v, want 403 naming users:write", c, p)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/admin/roles"), map[string]any{"name": "x"}, bearer(auditorAT)...); c != 403 {
			t.Errorf("auditor creating a role = %d, want 403", c)
		}
	})

	t.Run("DeletedUserLosesGrants", func(t *testing.T) {
		erinAT := e.signUp(t, "erin@example.com")
		erin := userID(t, e, erinAT)
		g := r.grant(t, erin, map[string]any{"role": "viewer"})
		if !allowed(t, e.s.public, erinAT, map[string]any{"permission": "invoices:read"}) {
			t.Fatal("erin's grant does not allow")
		}
		r.do(t, "DELETE", "/v1/admin/users/"+erin, nil, 204)
		for _, u := range r.do(t, "GET", "/v1/admin/authz/who-can?permission=invoices:read", nil, 200)["users"].([]any) {
			if u.(map[string]any)["user_id"] == erin {
				t.Error("who-can lists a deleted user")
			}
		}
		var revoked bool
		for _, ev := range r.do(t, "GET", "/v1/admin/audit-events?subject_id="+erin, nil, 200)["events"].([]any) {
			m := ev.(map[string]any)
			d, _ := m["data"].(map[string]any)
			before, _ := d["before"].(map[string]any)
			revoked = revoked || (m["action"] == "rbac.grant_revoked" && d["reason"] == "user_deleted" && before["id"] == g)
		}
		if !revoked {
			t.Error("no rbac.grant_revoked event for the deleted user's grant")
		}
	})

	t.Run("DisabledUserHoldsNothing", func(t *testing.T) {
		// A resource server's client checks for any subject.
		rs := e.clientToken(t, e.newClient(t, "resource-server", "authz:check"), "authz:check")
		fionaAT := e.signUp(t, "fiona@example.com")
		fiona := userID(t, e, fionaAT)
		r.grant(t, fiona, map[string]any{"role": "viewer"})
		q := map[string]any{"subject": fiona, "permission": "invoices:read"}
		if !allowed(t, e.s.public, rs, q) {
			t.Fatal("fiona's grant does not allow")
		}
		r.do(t, "POST", "/v1/admin/users/"+fiona+"/disable", nil, 200)
		if allowed(t, e.s.public, rs, q) {
			t.Error("a disabled user's grant still allows")
		}
		r.do(t, "POST", "/v1/admin/users/"+fiona+"/enable", nil, 200)
		if !allowed(t, e.s.public, rs, q) {
			t.Error("the grant does not count again once the user is enabled")
		}
	})

	t.Run("AuditBeforeAfter", func(t *testing.T) {
		r.do(t, "PATCH", "/v1/admin/roles/"+viewer, map[string]any{"description": "reads all invoices"}, 200)
		events := r.do(t, "GET", "/v1/admin/audit-events?subject_id="+viewer, nil, 200)["events"].([]any)
		var found bool
		for _, ev := range events {
			m := ev.(map[string]any)
			if m["action"] != "rbac.role_updated" {
				continue
			}
			d := m["data"].(map[string]any)
			before, _ := d["before"].(map[string]any)
			after, _ := d["after"].(map[string]any)
			found = before["description"] == "reads invoices" && after["description"] == "reads all invoices"
		}
		if !found {
			t.Errorf("no rbac.role_updated event with before and after: %v", events)
		}
	})

	t.Run("RolesClaim", func(t *testing.T) {
		env := map[string]string{"GATEHOUSE_TOKEN_ROLES_CLAIM": "true"}
		for k, v := range e.cfgEnv {
			env[k] = v
		}
		if e.dialect == "sqlite" {
			t.Skip("the embedded database is one node's: the claim is tested on PostgreSQL")
		}
		withClaim := startServerWithClock(t, testConfig(t, env), e.s.clock)
		code, body, _ := call(t, "POST", withClaim.public+"/v1/auth/login", map[string]string{"email": "alice@example.com", "password": strongPassword})
		if code != 200 {
			t.Fatalf("login = %d %v", code, body)
		}
		var roles []string
		for _, x := range claimsOf(t, body["access_token"].(string))["roles"].([]any) {
			roles = append(roles, x.(string))
		}
		sort.Strings(roles)
		if want := []string{"editor", "no-delete", "super"}; !slices.Equal(roles, want) {
			t.Errorf("roles claim = %v, want %v", roles, want)
		}
		if _, ok := claimsOf(t, aliceAT)["roles"]; ok {
			t.Error("a token issued without GATEHOUSE_TOKEN_ROLES_CLAIM has a roles claim")
		}
	})
}
