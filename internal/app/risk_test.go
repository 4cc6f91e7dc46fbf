package app

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/netintel/netinteltest"
)

func TestRiskScoringEmbedded(t *testing.T) { runRiskScoring(t, nil) }

func TestRiskScoringPostgresRedis(t *testing.T) { runRiskScoring(t, postgresRedisEnv(t)) }

// runRiskScoring: with test GeoIP databases and a blocklist, password
// sign-ins are scored. Paris, then Paris again, are allowed; Sydney ten
// minutes later is stepped up (impossible_travel) to an emailed code for a
// user without factors, recorded as a security event and kept on the
// session; a blocklisted address is refused (403 risk_blocked) and the
// user emailed.
func runRiskScoring(t *testing.T, base map[string]string) {
	dir := t.TempDir()
	city, asn, block := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb"), filepath.Join(dir, "blocklist.txt")
	netinteltest.WriteCityDB(t, city, netinteltest.Paris, netinteltest.Sydney)
	netinteltest.WriteASNDB(t, asn, netinteltest.Orange, netinteltest.Telstra)
	if err := os.WriteFile(block, []byte("# abusers\n203.0.113.0/24\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"GATEHOUSE_GEOIP_CITY_DB": city, "GATEHOUSE_GEOIP_ASN_DB": asn, "GATEHOUSE_IP_LISTS": "blocklist:" + block,
		"GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1/32,::1/128", "GATEHOUSE_RISK_ENABLED": "true",
	}
	for k, v := range base {
		env[k] = v
	}
	e := newWebhookEnv(t, env)
	e.signUp(t, "traveller@example.com")
	loginFrom := func(ip string) (int, map[string]any) {
		t.Helper()
		code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "traveller@example.com", "password": strongPassword},
			"X-Forwarded-For", ip)
		return code, body
	}
	currentRisk := func(at string) map[string]any {
		t.Helper()
		_, list, _ := call(t, "GET", e.url("/v1/me/sessions"), nil, bearer(at)...)
		for _, s := range list["sessions"].([]any) {
			if s := s.(map[string]any); s["current"] == true {
				r, _ := s["risk"].(map[string]any)
				if r == nil {
					t.Fatalf("current session %v has no risk", s)
				}
				return r
			}
		}
		t.Fatalf("no current session in %v", list)
		return nil
	}

	code, body := loginFrom("192.0.2.10")
	if code != 200 || body["access_token"] == nil {
		t.Fatalf("first sign-in from Paris = %d %v", code, body)
	}
	if r := currentRisk(body["access_token"].(string)); r["score"].(float64) >= 50 {
		t.Fatalf("first sign-in from Paris: risk %v", r)
	}
	code, body = loginFrom("192.0.2.11")
	if code != 200 || body["access_token"] == nil {
		t.Fatalf("second sign-in from Paris = %d %v", code, body)
	}
	if r := currentRisk(body["access_token"].(string)); r["score"] != float64(0) || len(r["reasons"].([]any)) != 0 {
		t.Fatalf("second sign-in from Paris: risk %v, want none", r)
	}

	// Sydney ten minutes later: 17,000 km in 10 minutes.
	e.s.clock.Advance(10 * time.Minute)
	code, body = loginFrom("198.51.100.20")
	if code != 200 || body["mfa_required"] != true || body["access_token"] != nil || !slices.Equal(toStrings(body["methods"]), []string{"email"}) {
		t.Fatalf("sign-in from Sydney = %d %v, want mfa_required with the email method", code, body)
	}
	mt := body["mfa_token"].(string)
	if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "email", "code": "000000"}); c != 401 {
		t.Fatalf("verify before any code was sent = %d %v", c, b)
	}
	if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "email"}, "X-Forwarded-For", "198.51.100.20"); c != 200 {
		t.Fatalf("challenge email = %d %v", c, b)
	}
	ec := emailCode(t, e.mail.wait(t, "traveller@example.com", "verification code"))
	c, tok, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "email", "code": ec}, "X-Forwarded-For", "198.51.100.20")
	if c != 200 || tok["access_token"] == nil {
		t.Fatalf("verify email = %d %v", c, tok)
	}
	at := tok["access_token"].(string)
	r := currentRisk(at)
	if r["score"].(float64) < 50 || !slices.Contains(toStrings(r["reasons"]), "impossible_travel") {
		t.Fatalf("stepped-up session: risk %v, want impossible_travel at 50 or more", r)
	}
	_, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...)
	userID := me["id"].(string)
	// The activity trail shows the sign-in's place and risk.
	_, act, _ := call(t, "GET", e.url("/v1/me/activity"), nil, bearer(at)...)
	found := false
	for _, a := range act["events"].([]any) {
		a := a.(map[string]any)
		d, _ := a["data"].(map[string]any)
		if a["action"] != "user.logged_in" || d["risk"] == nil {
			continue
		}
		r := d["risk"].(map[string]any)
		loc, _ := d["location"].(map[string]any)
		if slices.Contains(toStrings(r["reasons"]), "impossible_travel") && loc["country"] == "AU" {
			found = true
			break
		}
	}
	if !found {
		t.Errorf("activity = %v, want the Sydney sign-in with its risk and place", act)
	}
	_, evs, _ := call(t, "GET", e.url("/v1/admin/security-events?type=risk_step_up&user_id="+userID), nil, bearer(e.admin)...)
	events, _ := evs["events"].([]any)
	if len(events) != 1 {
		t.Fatalf("risk_step_up events = %v, want one", evs)
	}
	ev := events[0].(map[string]any)
	var codes []string
	for _, rs := range ev["reasons"].([]any) {
		codes = append(codes, rs.(map[string]any)["code"].(string))
	}
	if ev["ip"] != "198.51.100.20" || ev["score"] != r["score"] || !slices.Contains(codes, "impossible_travel") {
		t.Fatalf("risk_step_up event %v", ev)
	}

	// A blocklisted address: refused, without saying why, and the user
	// told.
	code, body = loginFrom("203.0.113.9")
	if code != 403 || body["code"] != "risk_blocked" || strings.Contains(strings.ToLower(body["detail"].(string)), "blocklist") {
		t.Fatalf("sign-in from a blocklisted address = %d %v, want 403 risk_blocked", code, body)
	}
	if m := e.mail.wait(t, "traveller@example.com", "was blocked"); !strings.Contains(m.Text, "203.0.113.9") {
		t.Errorf("blocked email lacks the address:\n%s", m.Text)
	}
	_, evs, _ = call(t, "GET", e.url("/v1/admin/security-events?type=risk_blocked&user_id="+userID), nil, bearer(e.admin)...)
	if events, _ := evs["events"].([]any); len(events) != 1 || events[0].(map[string]any)["ip"] != "203.0.113.9" {
		t.Fatalf("risk_blocked events = %v, want one from 203.0.113.9", evs)
	}

	// A magic link is scored the same: opened from the blocklisted
	// address it is refused; from Paris it signs in.
	magic := func(ip string) (int, map[string]any) {
		t.Helper()
		if c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": "traveller@example.com"}); c != 202 {
			t.Fatalf("magic link = %d %v", c, b)
		}
		tok := magicToken(t, e.mail.wait(t, "traveller@example.com", "sign-in link"))
		c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok}, "X-Forwarded-For", ip)
		return c, b
	}
	if c, b := magic("203.0.113.9"); c != 403 || b["code"] != "risk_blocked" {
		t.Fatalf("magic link from a blocklisted address = %d %v, want 403 risk_blocked", c, b)
	}
	_, evs, _ = call(t, "GET", e.url("/v1/admin/security-events?type=risk_blocked&user_id="+userID), nil, bearer(e.admin)...)
	if events, _ := evs["events"].([]any); len(events) != 2 {
		t.Fatalf("risk_blocked events = %v, want the password's and the magic link's", evs)
	}
	// (A day later: the last sign-in was from Sydney.)
	e.s.clock.Advance(24 * time.Hour)
	if c, b := magic("192.0.2.12"); c != 200 || b["access_token"] == nil {
		t.Fatalf("magic link from Paris = %d %v", c, b)
	} else if r := currentRisk(b["access_token"].(string)); r["score"] == nil {
		t.Fatalf("magic-link session not scored: %v", r)
	}
}
