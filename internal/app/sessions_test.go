package app

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSessionOptions covers the opt-in session settings: refresh tokens in
// a __Host- cookie, device binding and the concurrent-session limit.
func TestSessionOptions(t *testing.T) {
	e := newAccountEnv(t, map[string]string{
		"GATEHOUSE_REFRESH_TOKEN_COOKIE":   "true",
		"GATEHOUSE_BIND_REFRESH_TO_DEVICE": "true",
		"GATEHOUSE_MAX_SESSIONS_PER_USER":  "2",
		"GATEHOUSE_CORS_ALLOWED_ORIGINS":   "https://app.example.test",
	})
	e.signUp(t, "ivy@example.com")

	login := func(device string) (*http.Response, map[string]any) {
		t.Helper()
		code, body, h := call(t, "POST", e.url("/v1/auth/login"), map[string]string{
			"email": "ivy@example.com", "password": strongPassword, "device_id": device,
		}, "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36")
		if code != 200 {
			t.Fatalf("login = %d %v", code, body)
		}
		return &http.Response{Header: h}, body
	}

	res, body := login("laptop-1")
	if _, ok := body["refresh_token"]; ok {
		t.Errorf("cookie mode still returns the refresh token in the body: %v", body)
	}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "__Host-gatehouse_refresh" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Domain != "" {
		t.Fatalf("refresh cookie = %+v, want HttpOnly Secure SameSite=Strict Path=/ without Domain", cookie)
	}

	refreshWith := func(device string, c *http.Cookie) (int, map[string]any, []*http.Cookie) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.url("/oauth2/token"), strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "device_id": {device}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36")
		req.Header.Set("Origin", "https://app.example.test") // a form post with the cookie needs an allowed Origin
		req.AddCookie(c)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = jsonDecode(res, &out)
		return res.StatusCode, out, res.Cookies()
	}
	// Another device is refused (and the token stays usable by its own).
	if code, out, _ := refreshWith("stolen-elsewhere", cookie); code != 400 || out["error"] != "invalid_grant" {
		t.Errorf("refresh from another device = %d %v", code, out)
	}
	// Same device, browser updated (same family): accepted; the rotated
	// token comes back as a cookie.
	code, out, cookies := refreshWith("laptop-1", cookie)
	if code != 200 || out["refresh_token"] != nil || out["access_token"] == nil {
		t.Fatalf("refresh from the bound device = %d %v", code, out)
	}
	var rotated bool
	for _, c := range cookies {
		rotated = rotated || (c.Name == cookie.Name && c.Value != "" && c.Value != cookie.Value)
	}
	if !rotated {
		t.Errorf("rotated refresh token not set as a cookie: %v", cookies)
	}

	// Session limit 2: a third login ends the oldest session.
	_, first := login("laptop-1")
	login("laptop-2")
	_, third := login("laptop-3")
	code, list, _ := call(t, "GET", e.url("/v1/me/sessions"), nil, bearer(third["access_token"].(string))...)
	if code != 200 || len(list["sessions"].([]any)) != 2 {
		t.Fatalf("sessions after 4 logins with a limit of 2 = %d %v", code, list)
	}
	if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(first["access_token"].(string))...); c != 401 {
		t.Errorf("access token of a session ended by the limit = %d, want 401", c)
	}
}

// TestPasswordChangeEndsRacingLogins changes a password while sign-ins with
// the old one keep arriving. A sign-in whose password was checked before
// the change but recorded after it must not survive: once the change has
// returned, the only live session is the one that made it.
func TestPasswordChangeEndsRacingLogins(t *testing.T) {
	for name, env := range map[string]func(*testing.T) map[string]string{
		"Embedded":      func(*testing.T) map[string]string { return nil },
		"PostgresRedis": postgresRedisEnv,
	} {
		t.Run(name, func(t *testing.T) {
			e := newAccountEnv(t, env(t))
			at := e.signUp(t, "racing@example.com")
			var (
				stop     atomic.Bool
				attempts atomic.Int64
				wg       sync.WaitGroup
			)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body := `{"email": "racing@example.com", "password": "` + strongPassword + `"}`
					for !stop.Load() {
						// Not call: it may fail the test, which only the
						// test's goroutine may do.
						res, err := http.Post(e.url("/v1/auth/login"), "application/json", strings.NewReader(body))
						if err == nil {
							_, _ = io.Copy(io.Discard, res.Body)
							res.Body.Close()
						}
						attempts.Add(1)
					}
				}()
			}
			for attempts.Load() < 8 { // sign-ins are under way
				time.Sleep(5 * time.Millisecond)
			}
			code, body, _ := call(t, "POST", e.url("/v1/me/password"), map[string]string{"current_password": strongPassword, "new_password": "another fine passphrase 8"}, bearer(at)...)
			if code != 204 && code != 200 {
				t.Fatalf("change password = %d %v", code, body)
			}
			// Let the sign-ins in flight at the change finish.
			time.Sleep(300 * time.Millisecond)
			stop.Store(true)
			wg.Wait()
			code, list, _ := call(t, "GET", e.url("/v1/me/sessions"), nil, bearer(at)...)
			sessions, _ := list["sessions"].([]any)
			if code != 200 || len(sessions) != 1 {
				t.Fatalf("live sessions after the change (of %d sign-ins) = %d %d %v, want only the changer's", attempts.Load(), code, len(sessions), list)
			}
		})
	}
}

// TestLoginIPLimitAndKillSwitch drives two limits through the real stack
// on both backends: parallel wrong passwords from one IP have no more
// checks than its limit (the rest answer too_many_attempts), and the kill
// switch's cut-off cannot be moved back.
func TestLoginIPLimitAndKillSwitch(t *testing.T) {
	for name, env := range map[string]func(*testing.T) map[string]string{
		"Embedded":      func(*testing.T) map[string]string { return nil },
		"PostgresRedis": postgresRedisEnv,
	} {
		t.Run(name, func(t *testing.T) {
			extra := map[string]string{"GATEHOUSE_LOGIN_IP_FAILURE_LIMIT": "10"}
			for k, v := range env(t) {
				extra[k] = v
			}
			e := newAccountEnv(t, extra)
			if _, code := e.cli(t, "users", "create", "--email", "root@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
				t.Fatal("users create --admin failed")
			}
			adminAT := e.login(t, "root@example.com", strongPassword)

			var wg sync.WaitGroup
			var mu sync.Mutex
			codes := map[string]int{}
			for i := range 40 {
				wg.Go(func() {
					body := fmt.Sprintf(`{"email": "stuffed-%d@example.com", "password": "a guessed password"}`, i)
					res, err := http.Post(e.url("/v1/auth/login"), "application/json", strings.NewReader(body))
					if err != nil {
						return
					}
					defer res.Body.Close()
					var p map[string]any
					_ = jsonDecode(res, &p)
					mu.Lock()
					codes[fmt.Sprint(res.StatusCode, " ", p["code"])]++
					mu.Unlock()
				})
			}
			wg.Wait()
			if codes["401 invalid_credentials"] != 10 || codes["429 too_many_attempts"] != 30 {
				t.Errorf("40 parallel wrong passwords from one IP with a limit of 10: %v, want 10 checked and 30 refused", codes)
			}

			revoke := func(before time.Time) (int, map[string]any) {
				code, body, _ := call(t, "POST", e.url("/v1/admin/tokens/revoke-before"), map[string]string{"before": before.UTC().Format(time.RFC3339Nano)}, bearer(adminAT)...)
				return code, body
			}
			cut := time.Now().Add(-time.Hour)
			if code, body := revoke(cut); code != 200 {
				t.Fatalf("revoke-before = %d %v", code, body)
			}
			if code, body := revoke(cut.Add(-time.Minute)); code != 409 || body["code"] != "cutoff_not_later" {
				t.Errorf("an earlier cut-off = %d %v, want 409 cutoff_not_later", code, body)
			}
			if code, body := revoke(cut.Add(time.Minute)); code != 200 {
				t.Errorf("a later cut-off = %d %v", code, body)
			}
		})
	}
}
