package app

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/netintel/netinteltest"
)

func TestRefreshRiskEmbedded(t *testing.T) { runRefreshRisk(t, nil) }

func TestRefreshRiskPostgresRedis(t *testing.T) { runRefreshRisk(t, postgresRedisEnv(t)) }

const (
	firefoxAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariAgent  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// runRefreshRisk: with test GeoIP databases and a tor list, refreshes
// are scored against their session. A refresh from Paris after a sign-in
// from Paris, with the same browser, records nothing; one from Sydney
// minutes later with another browser is a session_anomaly (85, below the
// block threshold) and is allowed. A refresh over a tor exit in Sydney,
// minutes after a sign-in from Paris, reaches the block threshold: it is
// refused (invalid_grant), the session ends, its access token fails on
// /v1/me, the user is emailed and the anomaly is recorded as high.
func runRefreshRisk(t *testing.T, base map[string]string) {
	dir := t.TempDir()
	city, asn, tor := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb"), filepath.Join(dir, "tor.txt")
	netinteltest.WriteCityDB(t, city, netinteltest.Paris, netinteltest.Sydney)
	netinteltest.WriteASNDB(t, asn, netinteltest.Orange, netinteltest.Telstra)
	if err := os.WriteFile(tor, []byte("# exits\n198.51.100.66\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"GATEHOUSE_GEOIP_CITY_DB": city, "GATEHOUSE_GEOIP_ASN_DB": asn, "GATEHOUSE_IP_LISTS": "tor:" + tor,
		"GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1/32,::1/128", "GATEHOUSE_RISK_ENABLED": "true",
	}
	for k, v := range base {
		env[k] = v
	}
	e := newWebhookEnv(t, env)
	e.signUp(t, "roamer@example.com")
	login := func(ip, agent string) (access, refresh string) {
		t.Helper()
		code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "roamer@example.com", "password": strongPassword},
			"X-Forwarded-For", ip, "User-Agent", agent)
		if code != 200 || body["access_token"] == nil {
			t.Fatalf("sign-in from %s = %d %v", ip, code, body)
		}
		return body["access_token"].(string), body["refresh_token"].(string)
	}
	refresh := func(rt, ip, agent string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest("POST", e.url("/oauth2/token"), strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", ip)
		req.Header.Set("User-Agent", agent)
		res, raw := do(t, req)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("token answer %q: %v", raw, err)
		}
		return res.StatusCode, body
	}
	me := func(at string) int {
		t.Helper()
		code, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...)
		return code
	}

	at, rt := login("192.0.2.10", firefoxAgent)
	_, user, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...)
	userID := user["id"].(string)
	anomalies := func() []map[string]any {
		t.Helper()
		code, evs, _ := call(t, "GET", e.url("/v1/admin/security-events?type=session_anomaly&user_id="+userID), nil, bearer(e.admin)...)
		if code != 200 {
			t.Fatalf("security events = %d %v", code, evs)
		}
		var out []map[string]any
		for _, ev := range evs["events"].([]any) {
			out = append(out, ev.(map[string]any))
		}
		return out
	}
	codes := func(ev map[string]any) []string {
		var out []string
		for _, r := range ev["reasons"].([]any) {
			out = append(out, r.(map[string]any)["code"].(string))
		}
		return out
	}

	// Paris again, same browser: nothing to record.
	e.s.clock.Advance(time.Minute)
	code, body := refresh(rt, "192.0.2.11", firefoxAgent)
	if code != 200 || body["refresh_token"] == nil {
		t.Fatalf("refresh from Paris = %d %v", code, body)
	}
	rt = body["refresh_token"].(string)
	if evs := anomalies(); len(evs) != 0 {
		t.Fatalf("session_anomaly after a refresh from the same network: %v", evs)
	}

	// Sydney five minutes later, another browser: recorded, allowed.
	e.s.clock.Advance(5 * time.Minute)
	code, body = refresh(rt, "198.51.100.20", safariAgent)
	if code != 200 || body["access_token"] == nil {
		t.Fatalf("refresh from Sydney = %d %v, want it allowed below the block threshold", code, body)
	}
	evs := anomalies()
	if len(evs) != 1 {
		t.Fatalf("session_anomaly events = %v, want one", evs)
	}
	ev := evs[0]
	loc, _ := ev["location"].(map[string]any)
	if ev["score"] != float64(85) || !slices.Equal(codes(ev), []string{"impossible_travel", "new_device", "new_country", "new_asn"}) ||
		ev["ip"] != "198.51.100.20" || ev["severity"] != "medium" || loc["country"] != "AU" || ev["asn"] != float64(1221) {
		t.Fatalf("session_anomaly event %v, want 85 (impossible_travel, new_device, new_country, new_asn) from Sydney, medium", ev)
	}
	if c := me(body["access_token"].(string)); c != 200 {
		t.Fatalf("the session after an anomaly below the block threshold: /v1/me = %d", c)
	}
	kept := body["access_token"].(string)

	// A new sign-in from Paris, then a refresh over a tor exit in Sydney
	// with another browser: 100, blocked.
	at2, rt2 := login("192.0.2.10", firefoxAgent)
	e.s.clock.Advance(5 * time.Minute)
	code, body = refresh(rt2, "198.51.100.66", safariAgent)
	if code != 400 || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Fatalf("refresh over tor from Sydney = %d %v, want 400 invalid_grant", code, body)
	}
	if c := me(at2); c != 401 {
		t.Errorf("the ended session's access token: /v1/me = %d, want 401", c)
	}
	if code, body := refresh(rt2, "192.0.2.10", firefoxAgent); code != 400 || body["error"] != "invalid_grant" {
		t.Errorf("the ended session's refresh token from Paris = %d %v, want 400 invalid_grant", code, body)
	}
	if m := e.mail.wait(t, "roamer@example.com", "unusual session"); !strings.Contains(m.Text, "198.51.100.66") {
		t.Errorf("the email lacks the address:\n%s", m.Text)
	}
	evs = anomalies()
	if len(evs) != 2 {
		t.Fatalf("session_anomaly events = %v, want two", evs)
	}
	ev = evs[0] // newest first
	if ev["score"] != float64(100) || ev["severity"] != "high" || ev["ip"] != "198.51.100.66" || !slices.Contains(codes(ev), "tor_exit") {
		t.Fatalf("blocking session_anomaly event %v, want 100 with tor_exit, high", ev)
	}
	// The other session goes on.
	if c := me(kept); c != 200 {
		t.Errorf("the first session after the second ended: /v1/me = %d, want 200", c)
	}
}
