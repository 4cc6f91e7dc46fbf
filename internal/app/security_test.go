package app

import (
	"testing"
	"time"
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
