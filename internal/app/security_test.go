package app

import (
	"path/filepath"
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
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lockout event for %s: %v", userID, body)
		}
		time.Sleep(100 * time.Millisecond)
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
