package app

import (
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/netintel/netinteltest"
)

func TestNotMeEmbedded(t *testing.T) { runNotMe(t, nil) }

func TestNotMePostgresRedis(t *testing.T) { runNotMe(t, postgresRedisEnv(t)) }

const chromeOnWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

// runNotMe: "Was this you?" from end to end. The first sign-in emails
// nothing, nor one from the same device; one from a new device emails the
// time, place, device and a "this wasn't me" link. Opening the link only
// shows a button; pressing it ends every session (access tokens refused
// by /v1/me, refresh tokens by the token endpoint), after which the
// correct password answers 403 password_reset_required, until the
// emailed reset link sets a new password. The link works once, whether
// through the page or POST /v1/auth/not-me, even when raced; a bad token
// is 400.
func runNotMe(t *testing.T, base map[string]string) {
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	netinteltest.WriteCityDB(t, city, netinteltest.Paris, netinteltest.Sydney)
	netinteltest.WriteASNDB(t, asn, netinteltest.Orange, netinteltest.Telstra)
	env := map[string]string{
		"GATEHOUSE_GEOIP_CITY_DB": city, "GATEHOUSE_GEOIP_ASN_DB": asn,
		"GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1/32,::1/128", "GATEHOUSE_RISK_ENABLED": "true",
		"GATEHOUSE_APP_URL": "https://app.example.test",
	}
	for k, v := range base {
		env[k] = v
	}
	e := newWebhookEnv(t, env)
	const email = "owner@example.com"
	type signedIn struct{ access, refresh string }
	var sessions []signedIn
	login := func(ip, deviceID string, header ...string) (int, map[string]any) {
		t.Helper()
		in := map[string]string{"email": email, "password": strongPassword}
		if deviceID != "" {
			in["device_id"] = deviceID
		}
		code, body, _ := call(t, "POST", e.url("/v1/auth/login"), in, append([]string{"X-Forwarded-For", ip}, header...)...)
		if code == 200 {
			sessions = append(sessions, signedIn{body["access_token"].(string), body["refresh_token"].(string)})
		}
		return code, body
	}

	// The first sign-in (at sign-up) and one from the same device.
	_, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(e.signUp(t, email))...)
	userID, _ := me["id"].(string)
	if code, body := login("192.0.2.10", ""); code != 200 {
		t.Fatalf("second sign-in = %d %v", code, body)
	}
	e.mail.none(t, email, 1500*time.Millisecond)

	// A new device: "Was this you?"
	if code, body := login("192.0.2.11", "phone", "User-Agent", chromeOnWindows); code != 200 {
		t.Fatalf("sign-in from a new device = %d %v", code, body)
	}
	m := e.mail.wait(t, email, "New sign-in")
	for _, want := range []string{"Paris, FR", "192.0.2.11", "Chrome on Windows", "UTC", "expires in 7 days"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("new sign-in email lacks %q:\n%s", want, m.Text)
		}
	}
	first := linkToken(t, m, "not-me")
	if !slices.Contains(strings.Fields(m.Text), "https://app.example.test/not-me?token="+first) {
		t.Errorf("the link is not APP_URL/not-me?token=…:\n%s", m.Text)
	}
	// Another new device: another email, whose link the first does not
	// void (nor the reverse, until one is used).
	if code, body := login("192.0.2.12", "tablet"); code != 200 {
		t.Fatalf("sign-in from another new device = %d %v", code, body)
	}
	second := linkToken(t, e.mail.wait(t, email, "New sign-in"), "not-me")
	if first == second {
		t.Fatal("two emails carry the same link")
	}
	if len(sessions) != 3 {
		t.Fatalf("%d sessions from sign-in, want 3", len(sessions))
	}
	signUpSession := e.login(t, email, strongPassword) // a fourth, from the same device as the first
	sessions = append(sessions, signedIn{access: signUpSession})

	// Opening the link changes nothing: a page with one button.
	b := newBrowser(t)
	res, page := b.get(e.url("/not-me?token=" + url.QueryEscape(first)))
	checkPage(t, res, page, 200)
	action, f := pageForm(t, page)
	if action != "/not-me" || f.Get("token") != first || strings.Count(page, "<button") != 1 {
		t.Fatalf("not-me page: form to %q, token %q\n%s", action, f.Get("token"), page)
	}
	for i, s := range sessions {
		if c, body, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(s.access)...); c != 200 {
			t.Fatalf("session %d after opening the link: /v1/me = %d %v", i, c, body)
		}
	}

	// Pressing the button ends every session.
	res, page = b.post(e.url(action), f)
	checkPage(t, res, page, 200)
	if !strings.Contains(page, "All your sessions were ended") || !strings.Contains(page, "Reset your password") {
		t.Fatalf("result page:\n%s", page)
	}
	for i, s := range sessions {
		if c, body, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(s.access)...); c != 401 {
			t.Errorf("session %d after the button: /v1/me = %d %v, want 401", i, c, body)
		}
		if s.refresh == "" {
			continue
		}
		if c, body, _ := form(t, e.url("/oauth2/token"), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.refresh}}); c != 400 || body["error"] != "invalid_grant" {
			t.Errorf("session %d after the button: refresh = %d %v, want 400 invalid_grant", i, c, body)
		}
	}
	// Once: the page again, then the API with the same link and the other
	// one (voided with it), and a made-up one.
	res, page = b.post(e.url(action), f)
	checkPage(t, res, page, 400)
	if !strings.Contains(page, "The link is invalid, expired or was already used.") {
		t.Errorf("used link on the page:\n%s", page)
	}
	for name, tok := range map[string]string{"used": first, "voided": second, "made up": "8ZFmzyxrqdUN4lbbRTgznPubYnUjOtxsanZMYMqf1Vc"} {
		if c, body, _ := call(t, "POST", e.url("/v1/auth/not-me"), map[string]string{"token": tok}); c != 400 || body["code"] != "invalid_token" {
			t.Errorf("%s token: POST /v1/auth/not-me = %d %v, want 400 invalid_token", name, c, body)
		}
	}
	if c, body, _ := call(t, "POST", e.url("/v1/auth/not-me"), map[string]string{"token": ""}); c != 422 {
		t.Errorf("empty token = %d %v, want 422", c, body)
	}

	// The right password is refused until a reset; a wrong one answers as
	// always.
	if code, body := login("192.0.2.10", ""); code != 403 || body["code"] != "password_reset_required" {
		t.Fatalf("sign-in after not-me = %d %v, want 403 password_reset_required", code, body)
	}
	if c, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": "not the password at all"}); c != 401 || body["code"] != "invalid_credentials" {
		t.Fatalf("wrong password after not-me = %d %v, want 401 invalid_credentials", c, body)
	}
	_, evs, _ := call(t, "GET", e.url("/v1/admin/security-events?type=not_me&user_id="+userID), nil, bearer(e.admin)...)
	if events, _ := evs["events"].([]any); len(events) != 1 || events[0].(map[string]any)["severity"] != "high" {
		t.Errorf("not_me security events = %v, want one, high", evs)
	}

	// The emailed reset lifts it.
	if c, body, _ := call(t, "POST", e.url("/v1/auth/password/forgot"), map[string]string{"email": email}); c != 202 && c != 200 {
		t.Fatalf("forgot = %d %v", c, body)
	}
	reset := linkToken(t, e.mail.wait(t, email, "Reset"), "reset-password")
	const newPassword = "a brand new passphrase 77 nobody guesses"
	if c, body, _ := call(t, "POST", e.url("/v1/auth/password/reset"), map[string]string{"token": reset, "password": newPassword}); c != 200 {
		t.Fatalf("reset = %d %v", c, body)
	}
	if c, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": newPassword}, "X-Forwarded-For", "192.0.2.10"); c != 200 {
		t.Fatalf("sign-in after the reset = %d %v", c, body)
	}

	// Raced through the API: one redemption wins. (Later, so that the
	// sign-ins so far do not count as velocity.)
	e.s.clock.Advance(15 * time.Minute)
	c, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": newPassword, "device_id": "stolen-laptop"}, "X-Forwarded-For", "192.0.2.13")
	if c != 200 {
		t.Fatalf("sign-in from a third new device = %d %v", c, body)
	}
	third := linkToken(t, e.mail.wait(t, email, "New sign-in"), "not-me")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		answers = map[string]int{}
	)
	for range 20 {
		wg.Go(func() {
			c, body, _ := call(t, "POST", e.url("/v1/auth/not-me"), map[string]string{"token": third})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case c == 200 && body["sessions_ended"] == float64(2):
				answers["won"]++
			case c == 400 && body["code"] == "invalid_token":
				answers["refused"]++
			default:
				answers["other"]++
				t.Errorf("parallel redemption = %d %v", c, body)
			}
		})
	}
	wg.Wait()
	if answers["won"] != 1 || answers["refused"] != 19 {
		t.Errorf("20 parallel redemptions: %v, want one to end the 2 sessions and 19 invalid_token", answers)
	}
	if c, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": newPassword}, "X-Forwarded-For", "192.0.2.10"); c != 403 || body["code"] != "password_reset_required" {
		t.Errorf("sign-in after the raced redemption = %d %v, want 403 password_reset_required", c, body)
	}
}
