package app

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/netintel/netinteltest"
)

// TestSecurityEventsFromLockouts: a lockout is a security event, listed to
// administrators (GET /v1/admin/security-events).
func TestSecurityEventsFromLockouts(t *testing.T) {
	e := newWebhookEnv(t, nil)
	e.signUp(t, "locked-out@example.com")
	_, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(e.login(t, "locked-out@example.com", strongPassword))...)
	userID := me["id"].(string)
	for range 5 {
		call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "locked-out@example.com", "password": "wrong password 123"})
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, _ := call(t, "GET", e.url("/v1/admin/security-events?type=lockout&user_id="+userID), nil, bearer(e.admin)...)
		if code != 200 {
			t.Fatalf("security-events = %d %v", code, body)
		}
		if events := body["events"].([]any); len(events) == 1 {
			ev := events[0].(map[string]any)
			if ev["type"] != "lockout" || ev["user_id"] != userID || ev["severity"] == "" || ev["ip"] == "" {
				t.Fatalf("event %v", ev)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lockout event for %s: %v", userID, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An administrator lifting the lock is an admin_security_change.
	if code, body, _ := call(t, "POST", e.url("/v1/admin/users/"+userID+"/unlock"), nil, bearer(e.admin)...); code != 200 && code != 204 {
		t.Fatalf("unlock = %d %v", code, body)
	}
	_, me, _ = call(t, "GET", e.url("/v1/me"), nil, bearer(e.admin)...)
	_, body, _ := call(t, "GET", e.url("/v1/admin/security-events?type=admin_security_change&user_id="+userID), nil, bearer(e.admin)...)
	events, _ := body["events"].([]any)
	if len(events) != 1 {
		t.Fatalf("admin_security_change events = %v, want the unlock", body)
	}
	if ev := events[0].(map[string]any); ev["actor_id"] != me["id"] || ev["data"].(map[string]any)["action"] != "unlock" {
		t.Errorf("event %v, want the administrator's unlock", ev)
	}
}

// TestSessionsAreLocated: with GeoIP databases, a session shows where it
// started (GET /v1/me/sessions: location and asn), by the client address
// a trusted proxy gives.
func TestSessionsAreLocated(t *testing.T) {
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	netinteltest.WriteCityDB(t, city, netinteltest.Paris, netinteltest.Sydney)
	netinteltest.WriteASNDB(t, asn, netinteltest.Orange, netinteltest.Telstra)
	e := newAccountEnv(t, map[string]string{
		"GATEHOUSE_GEOIP_CITY_DB": city, "GATEHOUSE_GEOIP_ASN_DB": asn, "GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
	})
	e.signUp(t, "traveller@example.com")
	code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "traveller@example.com", "password": strongPassword},
		"X-Forwarded-For", "198.51.100.20")
	if code != 200 {
		t.Fatalf("login = %d %v", code, body)
	}
	_, list, _ := call(t, "GET", e.url("/v1/me/sessions"), nil, bearer(body["access_token"].(string))...)
	for _, s := range list["sessions"].([]any) {
		s := s.(map[string]any)
		if s["current"] != true {
			continue
		}
		loc, _ := s["location"].(map[string]any)
		if loc["country"] != "AU" || loc["city"] != "Sydney" || s["asn"] != float64(1221) {
			t.Fatalf("session %v, want located in Sydney, AS1221", s)
		}
		return
	}
	t.Fatalf("no current session in %v", list)
}

func TestCredentialStuffingEmbedded(t *testing.T) { runCredentialStuffing(t, nil) }

func TestCredentialStuffingPostgresRedis(t *testing.T) { runCredentialStuffing(t, postgresRedisEnv(t)) }

// runCredentialStuffing: one address failing against 20 accounts (3 that
// exist, 17 that do not) opens a credential-stuffing incident listing the
// address and the existing accounts; the administrators get an email and a
// security.incident_opened webhook; the address is then refused on every
// sign-in route (429, rule security-block-ip) while other addresses are
// not; once an administrator lifts the block, its next failure blocks it
// again, twice as long. Each block is an automated_response event.
func runCredentialStuffing(t *testing.T, base map[string]string) {
	env := map[string]string{"GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1/32,::1/128"}
	for k, v := range base {
		env[k] = v
	}
	e := newWebhookEnv(t, env)
	rcv := newReceiver(t)
	e.endpoint(t, map[string]any{"url": rcv.url(), "events": []string{"security.*"}})
	var real []string
	for i := range 3 {
		email := fmt.Sprintf("victim%d@example.com", i)
		e.signUp(t, email)
		_, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(e.login(t, email, strongPassword))...)
		real = append(real, me["id"].(string))
	}
	const attacker = "203.0.113.77"
	fail := func(ip, email string) (int, map[string]any, http.Header) {
		t.Helper()
		return call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": "not the password 123"}, "X-Forwarded-For", ip)
	}
	for i := range 20 {
		email := fmt.Sprintf("nobody%d@example.com", i)
		if i < 3 {
			email = fmt.Sprintf("victim%d@example.com", i)
		}
		if code, body, _ := fail(attacker, email); code != 401 {
			t.Fatalf("attempt %d = %d %v, want 401", i+1, code, body)
		}
	}
	// Blocked now, on sign-in and sign-up alike; another address is not.
	code, body, h := fail(attacker, "nobody99@example.com")
	if code != 429 || body["code"] != "rate_limited" || body["rule"] != "security-block-ip" {
		t.Fatalf("after the incident = %d %v, want 429 security-block-ip", code, body)
	}
	if ra, _ := strconv.Atoi(h.Get("Retry-After")); ra < 50 || ra > 60 {
		t.Errorf("Retry-After = %q, want about a minute", h.Get("Retry-After"))
	}
	if code, _, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": "new@example.com", "password": strongPassword}, "X-Forwarded-For", attacker); code != 429 {
		t.Errorf("sign-up from the blocked address = %d, want 429", code)
	}
	if code, _, _ := fail("198.51.100.8", "nobody99@example.com"); code != 401 {
		t.Errorf("another address = %d, want 401", code)
	}

	// The incident lists the address and the accounts that exist.
	code, list, _ := call(t, "GET", e.url("/v1/admin/security-incidents"), nil, bearer(e.admin)...)
	if code != 200 {
		t.Fatalf("incidents = %d %v", code, list)
	}
	incs := list["incidents"].([]any)
	if len(incs) != 1 {
		t.Fatalf("incidents = %v, want one", incs)
	}
	inc := incs[0].(map[string]any)
	var users []string
	for _, u := range inc["user_ids"].([]any) {
		users = append(users, u.(string))
	}
	slices.Sort(users)
	slices.Sort(real)
	if inc["type"] != "credential_stuffing" || inc["status"] != "open" || inc["event_count"] != float64(20) ||
		!slices.Equal(users, real) || fmt.Sprint(inc["ips"]) != "["+attacker+"]" {
		t.Errorf("incident = %v, want credential_stuffing of %s listing %v, 20 events", inc, attacker, real)
	}
	// The administrators are told: an email and a webhook event.
	if m := e.mail.wait(t, "hook-admin@example.com", "security alert"); !strings.Contains(m.Text, inc["id"].(string)) || !strings.Contains(m.Text, attacker) {
		t.Errorf("alert email lacks the incident or the address:\n%s", m.Text)
	}
	got := rcv.wait(t, "security.incident_opened", 20*time.Second, func(d []delivered) bool { return len(ofType(d, "security.incident_opened")) > 0 })
	if op := ofType(got, "security.incident_opened")[0]; op.Data["incident_id"] != inc["id"] || op.Data["severity"] != "high" {
		t.Errorf("incident_opened data = %v", op.Data)
	}
	automated := func() []any {
		t.Helper()
		_, body, _ := call(t, "GET", e.url("/v1/admin/security-events?type=automated_response"), nil, bearer(e.admin)...)
		return body["events"].([]any)
	}
	auto := automated()
	if len(auto) != 1 {
		t.Fatalf("automated responses = %v, want one block", auto)
	}
	if a := auto[0].(map[string]any); a["ip"] != attacker || fmt.Sprint(a["data"]) == "" {
		t.Errorf("automated response = %v", a)
	}

	// Lifted by an administrator: the address may try again (a lift
	// forgives: the next block starts over at a minute).
	if code, body, _ := call(t, "DELETE", e.url("/v1/admin/rate-limits/keys/security-block-ip/"+attacker), nil, bearer(e.admin)...); code != 204 {
		t.Fatalf("lift = %d %v", code, body)
	}
	if code, _, _ := fail(attacker, "nobody21@example.com"); code != 401 {
		t.Fatalf("after the lift = %d, want 401", code)
	}
	code, _, h = fail(attacker, "nobody22@example.com")
	if ra, _ := strconv.Atoi(h.Get("Retry-After")); code != 429 || ra < 50 || ra > 60 {
		t.Errorf("after the next failure = %d, Retry-After %q, want 429 for about a minute", code, h.Get("Retry-After"))
	}
	if base == nil {
		// Embedded, on the test's clock: once the block ended, the next
		// failure blocks the address twice as long.
		e.s.clock.Advance(61 * time.Second)
		if code, _, _ := fail(attacker, "nobody23@example.com"); code != 401 {
			t.Fatalf("after the block = %d, want 401", code)
		}
		code, _, h = fail(attacker, "nobody24@example.com")
		if ra, _ := strconv.Atoi(h.Get("Retry-After")); code != 429 || ra < 110 || ra > 120 {
			t.Errorf("after the next failure = %d, Retry-After %q, want 429 for about two minutes", code, h.Get("Retry-After"))
		}
		if auto := automated(); len(auto) != 3 || auto[0].(map[string]any)["data"].(map[string]any)["level"] != float64(2) {
			t.Errorf("automated responses = %v, want three blocks, the last at level 2", auto)
		}
	} else if auto := automated(); len(auto) != 2 {
		t.Errorf("automated responses = %v, want two blocks", auto)
	}
}
