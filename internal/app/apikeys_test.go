package app

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// TestAPIKeys runs the API key issue's "Done when" list black-box through
// the running server (cross-node revocation is TestRevocationReachesOtherNodes
// in internal/apikey, the benchmark BenchmarkAuthenticate there).
func TestAPIKeysEmbedded(t *testing.T) {
	runAPIKeys(t, newAccountEnv(t, map[string]string{"GATEHOUSE_LEAK_REPORT_SECRET": leakSecret}))
}

func TestAPIKeysPostgresRedis(t *testing.T) {
	env := postgresRedisEnv(t)
	env["GATEHOUSE_LEAK_REPORT_SECRET"] = leakSecret
	runAPIKeys(t, newAccountEnv(t, env))
}

const leakSecret = "leak-report-shared-secret-0123456789"

func runAPIKeys(t *testing.T, e *accountEnv) {
	if _, code := e.cli(t, "users", "create", "--email", "keys-root@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
		t.Fatal("users create --admin failed")
	}
	r := &rbacEnv{accountEnv: e, admin: e.login(t, "keys-root@example.com", strongPassword)}
	r.permission(t, "invoices:read", "invoices:write")
	r.role(t, map[string]any{"name": "clerk", "permissions": []string{"invoices:read", "invoices:write"}})
	ownerAT := e.signUp(t, "key-owner@example.com")
	owner := userID(t, e, ownerAT)
	grant := r.grant(t, owner, map[string]any{"role": "clerk"})

	c, created, _ := call(t, "POST", e.url("/v1/me/api-keys"), map[string]any{"name": "ci", "permissions": []string{"invoices:read"}}, bearer(ownerAT)...)
	if c != 201 {
		t.Fatalf("create key = %d %v", c, created)
	}
	key := created["key"].(string)
	withKey := []string{"X-API-Key", key}

	// The key acts as its owner, limited to its permissions.
	if c, me, _ := call(t, "GET", e.url("/v1/me"), nil, withKey...); c != 200 || me["id"] != owner {
		t.Errorf("/v1/me with the key = %d %v", c, me)
	}
	if !allowed(t, e.s.public, key, map[string]any{"permission": "invoices:read"}) {
		t.Error("the key may not read invoices")
	}
	if out := check(t, e.s.public, key, map[string]any{"permission": "invoices:write"}); out["allowed"] != false || out["reason"] != "api_key_not_permitted" {
		t.Errorf("the key writes invoices (its owner may, it was not given it): %v", out)
	}
	if c, _, _ := call(t, "GET", e.url("/v1/admin/users"), nil, withKey...); c != 403 {
		t.Errorf("the key lists users: %d", c)
	}
	// Requests made with a key are logged with its ID, never the key.
	var logged bool
	for _, line := range strings.Split(e.s.logs.String(), "\n") {
		logged = logged || (strings.Contains(line, `"msg":"http request"`) && strings.Contains(line, `"api_key_id":"`+created["id"].(string)+`"`))
	}
	if !logged {
		t.Error("no access log line names the key's ID")
	}
	if strings.Contains(e.s.logs.String(), key[6:]) {
		t.Error("the logs hold the key's secret")
	}

	// One changed character: refused like any bad key.
	bad := []byte(key)
	bad[10] ^= 1
	c1, p1, _ := call(t, "GET", e.url("/v1/me"), nil, "X-API-Key", string(bad))
	if c1 != 401 {
		t.Errorf("a key with a changed character = %d %v", c1, p1)
	}

	// Introspection recognises the key.
	ops := e.newClient(t, "key-ops", "introspect")
	in := e.introspect(t, ops, key)
	if in["active"] != true || in["sub"] != owner {
		t.Errorf("introspection of the key = %v", in)
	}

	// Rotation with an overlap: both work; with none, only the new one.
	c, rot, _ := call(t, "POST", e.url("/v1/me/api-keys/"+created["id"].(string)+"/rotate"), map[string]any{"overlap": "1h"}, bearer(ownerAT)...)
	if c != 201 {
		t.Fatalf("rotate = %d %v", c, rot)
	}
	newKey := rot["key"].(string)
	for _, k := range []string{key, newKey} {
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, "X-API-Key", k); c != 200 {
			t.Errorf("during the overlap a key gets %d", c)
		}
	}
	c, rot2, _ := call(t, "POST", e.url("/v1/me/api-keys/"+rot["id"].(string)+"/rotate"), map[string]any{"overlap": "0s"}, bearer(ownerAT)...)
	if c != 201 {
		t.Fatalf("rotate with no overlap = %d %v", c, rot2)
	}
	if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, "X-API-Key", newKey); c != 401 {
		t.Errorf("a key rotated with no overlap still gets %d", c)
	}
	key = rot2["key"].(string)

	// The owner loses the permission: so does the key.
	r.do(t, "DELETE", "/v1/admin/users/"+owner+"/roles/"+grant, nil, 204)
	if allowed(t, e.s.public, key, map[string]any{"permission": "invoices:read"}) {
		t.Error("the key still reads invoices after its owner lost the permission")
	}

	// A service account with user-admin lists users.
	c, sa, _ := call(t, "POST", e.url("/v1/admin/service-accounts"), map[string]any{"name": "provisioner", "roles": []string{"user-admin"}}, bearer(r.admin)...)
	if c != 201 {
		t.Fatalf("create service account = %d %v", c, sa)
	}
	c, sk, _ := call(t, "POST", e.url("/v1/admin/service-accounts/"+sa["id"].(string)+"/keys"), map[string]any{"name": "ci"}, bearer(r.admin)...)
	if c != 201 {
		t.Fatalf("create service key = %d %v", c, sk)
	}
	if c, p, _ := call(t, "GET", e.url("/v1/admin/users"), nil, bearer(sk["key"].(string))...); c != 200 {
		t.Errorf("service account with user-admin lists users = %d %v", c, p)
	}

	// A service account never signs in by email: its synthetic address
	// gets no reset link and no magic link (answered like any address).
	saEmail := sa["id"].(string) + "@service-accounts.invalid"
	mails := e.countJobs(t, "mail.send")
	for _, path := range []string{"/v1/auth/password/forgot", "/v1/auth/magic-link"} {
		if c, p, _ := call(t, "POST", e.url(path), map[string]string{"email": saEmail}); c != 202 {
			t.Errorf("%s for a service account = %d %v, want the usual 202", path, c, p)
		}
	}
	waitJobsDone(t, e, "user.email_request")
	waitJobsDone(t, e, "social.magic_link")
	if n := e.countJobs(t, "mail.send"); n != mails {
		t.Errorf("%d emails enqueued for a service account's address", n-mails)
	}
	if c, _, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": saEmail, "password": strongPassword}); c != 401 {
		t.Errorf("password sign-in of a service account = %d, want 401", c)
	}

	// A leak report revokes the live key and tells its owner.
	body, _ := json.Marshal([]map[string]string{{"token": key, "url": "https://github.com/x/y/blob/main/.env", "source": "content"}})
	mac := hmac.New(sha256.New, []byte(leakSecret))
	mac.Write(body)
	if c, p, _ := call(t, "POST", e.url("/v1/api-keys/leaked"), json.RawMessage(body)); c != 401 {
		t.Errorf("an unsigned leak report = %d %v", c, p)
	}
	if c, p, _ := call(t, "POST", e.url("/v1/api-keys/leaked"), json.RawMessage(body), "X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil))); c != 200 {
		t.Fatalf("a signed leak report = %d %v", c, p)
	}
	if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, "X-API-Key", key); c != 401 {
		t.Errorf("a leaked key still gets %d", c)
	}
	if e.introspect(t, ops, key)["active"] != false {
		t.Error("introspection of a revoked key is active")
	}
	e.mail.wait(t, "key-owner@example.com", "API key was found")
	// … and is a security event of high severity, alerting the
	// administrators.
	_, evs, _ := call(t, "GET", e.url("/v1/admin/security-events?type=api_key_leaked&user_id="+owner), nil, bearer(r.admin)...)
	if events, _ := evs["events"].([]any); len(events) != 1 || events[0].(map[string]any)["severity"] != "high" {
		t.Errorf("api_key_leaked security events = %v, want one, high", evs)
	}
	if m := e.mail.wait(t, "keys-root@example.com", "security alert"); !strings.Contains(m.Text, "api key leaked") {
		t.Errorf("administrators' alert does not name the leak: %s", m.Text)
	}
}
