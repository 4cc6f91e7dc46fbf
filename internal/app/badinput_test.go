package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// badStrings are text no request field may turn into a 5xx: PostgreSQL
// refuses NUL and invalid UTF-8 in text.
var badStrings = []struct{ name, s string }{
	{"nul", "a\x00b"},
	{"only_nul", "\x00"},
	{"invalid_utf8", "a\xffb"},
	{"continuation", "\x80x"},
	{"truncated", "caf\xc3"},
}

// placeholder marks where rawJSON puts a bad string; json.Marshal leaves
// it as it is.
const placeholder = "\uE000BAD\uE000"

// rawJSON marshals v and puts s, unescaped but for NUL (which JSON can
// only carry as \u0000), wherever v holds placeholder.
func rawJSON(t testing.TB, v any, s string) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte(placeholder), []byte(strings.ReplaceAll(s, "\x00", `\u0000`)))
}

// send sends a raw body and decodes a JSON answer (nil if the body is not
// JSON); it fails the test on a 5xx.
func send(t testing.TB, method, u, contentType string, body []byte, header ...string) (int, map[string]any, http.Header) {
	t.Helper()
	res, raw := request(t, method, u, contentType, body, header...)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if res.StatusCode >= 500 {
		t.Errorf("%s %s %q = %d %s", method, u, body, res.StatusCode, raw)
	}
	return res.StatusCode, out, res.Header
}

type badInputEnv struct {
	*accountEnv
	userAT, adminAT string
}

func newBadInputEnv(t *testing.T, env map[string]string) *badInputEnv {
	t.Helper()
	e := &badInputEnv{accountEnv: newAccountEnv(t, env)}
	e.userAT = e.signUp(t, "ursula@example.com")
	if _, code := e.cli(t, "users", "create", "--email", "root@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
		t.Fatal("users create --admin failed")
	}
	e.adminAT = e.login(t, "root@example.com", strongPassword)
	return e
}

func (e *badInputEnv) auth(who string) []string {
	switch who {
	case "user":
		return bearer(e.userAT)
	case "admin":
		return bearer(e.adminAT)
	}
	return nil
}

const someID = "01890f3c-7a1e-7cc0-8e3f-2f1b6a3d4c5e"

// jsonEndpoints lists every endpoint with a JSON body and its string fields.
var jsonEndpoints = []struct {
	method, path, who string
	base              map[string]any
}{
	{"POST", "/v1/auth/login", "", map[string]any{"email": "ursula@example.com", "password": strongPassword, "device_id": "d1"}},
	{"POST", "/v1/auth/register", "", map[string]any{"email": "new@example.com", "password": strongPassword, "name": "New"}},
	{"POST", "/v1/auth/verify-email", "", map[string]any{"token": "t"}},
	{"POST", "/v1/auth/verify-email/resend", "", map[string]any{"email": "ursula@example.com"}},
	{"POST", "/v1/auth/password/forgot", "", map[string]any{"email": "ursula@example.com"}},
	{"POST", "/v1/auth/password/reset", "", map[string]any{"token": "t", "password": strongPassword}},
	{"POST", "/v1/auth/oauth/exchange", "", map[string]any{"code": "c", "code_verifier": "v"}},
	{"POST", "/v1/auth/oauth/link/confirm", "", map[string]any{"link_token": "t", "password": "p"}},
	{"POST", "/v1/auth/magic-link", "", map[string]any{"email": "ursula@example.com"}},
	{"POST", "/v1/auth/magic-link/verify", "", map[string]any{"token": "t"}},
	{"POST", "/v1/auth/mfa/challenge", "", map[string]any{"mfa_token": "t", "method": "totp"}},
	{"POST", "/v1/auth/mfa/verify", "", map[string]any{"mfa_token": "t", "method": "totp", "code": "123456"}},
	{"POST", "/v1/auth/reauthenticate", "user", map[string]any{"password": strongPassword, "method": "password", "code": "1"}},
	{"PATCH", "/v1/me", "user", map[string]any{"name": "U", "given_name": "U", "family_name": "V", "locale": "en", "zoneinfo": "UTC",
		"phone_number": "+14155550100", "picture": "https://example.com/p.png", "email": "ursula@example.com", "current_password": strongPassword,
		"metadata": map[string]any{"k": "v"}}},
	{"POST", "/v1/me/password", "user", map[string]any{"current_password": "x", "new_password": "y"}},
	{"POST", "/v1/me/mfa/sms", "user", map[string]any{"phone_number": "+14155550100"}},
	{"POST", "/v1/me/mfa/devices/" + someID + "/confirm", "user", map[string]any{"code": "123456"}},
	{"PATCH", "/v1/me/mfa/devices/" + someID, "user", map[string]any{"name": "phone"}},
	{"POST", "/v1/admin/tokens/revoke-before", "admin", map[string]any{"before": "2026-01-01T00:00:00Z"}},
	{"POST", "/v1/admin/clients", "admin", map[string]any{"name": "c", "scopes": []any{"openid"}}},
	{"POST", "/v1/admin/organizations", "admin", map[string]any{"name": "O", "slug": "o", "policy": map[string]any{"k": "v"}}},
	{"PUT", "/v1/admin/organizations/" + someID + "/policy", "admin", map[string]any{"k": "v"}},
	{"PUT", "/v1/admin/organizations/" + someID + "/members/" + someID, "admin", map[string]any{"role": "member"}},
}

// jsonVariant is a body with one bad string; field is the path the 422
// must name ("" for a bad member name, whose path holds the bad text).
type jsonVariant struct {
	field string
	body  []byte
}

// badJSONBodies returns base once for every string in it (nested ones, and
// member names) with that string replaced by s.
func badJSONBodies(t testing.TB, base map[string]any, s string) []jsonVariant {
	var out []jsonVariant
	snap := func(field string) { out = append(out, jsonVariant{field, rawJSON(t, base, s)}) }
	var walk func(v any, path string, set func(any))
	walk = func(v any, path string, set func(any)) {
		switch x := v.(type) {
		case string:
			set(placeholder)
			snap(path)
			set(x)
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				sub := x[k]
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(sub, p, func(nv any) { x[k] = nv })
				delete(x, k)
				x[k+placeholder] = sub
				snap("")
				delete(x, k+placeholder)
				x[k] = sub
			}
		case []any:
			for i := range x {
				walk(x[i], path+"["+strconv.Itoa(i)+"]", func(nv any) { x[i] = nv })
			}
		}
	}
	walk(base, "", nil)
	return out
}

// TestBadInputNeverA5xx sends NUL and invalid UTF-8 in every string field of
// every endpoint (JSON members and names, query parameters, path values,
// OAuth form parameters, stored headers) on both backends: never a 5xx, and
// refused before any query with the documented answer.
func TestBadInputEmbedded(t *testing.T) { runBadInput(t, newBadInputEnv(t, nil)) }

func TestBadInputPostgresRedis(t *testing.T) {
	runBadInput(t, newBadInputEnv(t, postgresRedisEnv(t)))
}

func runBadInput(t *testing.T, e *badInputEnv) {
	t.Run("JSON", func(t *testing.T) {
		for _, ep := range jsonEndpoints {
			for _, bad := range badStrings {
				for _, v := range badJSONBodies(t, ep.base, bad.s) {
					code, p, _ := send(t, ep.method, e.url(ep.path), "application/json", v.body, e.auth(ep.who)...)
					if v.field == "" && code == 400 && p["code"] == "invalid_json" {
						continue // a member name no struct has: unknown field
					}
					if code != 422 || p["code"] != "validation_failed" {
						t.Errorf("%s %s %s %q = %d %v, want 422 validation_failed", ep.method, ep.path, bad.name, v.body, code, p)
						continue
					}
					if v.field != "" && !slices.Equal(rules(p, v.field), []string{"text"}) {
						t.Errorf("%s %s %s %q: errors %v, want field %q rule text", ep.method, ep.path, bad.name, v.body, p["errors"], v.field)
					}
				}
			}
		}
	})

	t.Run("Query", func(t *testing.T) {
		for _, q := range []struct{ path, who, param string }{
			{"/v1/admin/users", "admin", "email"},
			{"/v1/admin/users", "admin", "cursor"},
			{"/v1/admin/users", "admin", "status"},
			{"/v1/admin/users", "admin", "sort"},
			{"/v1/admin/organizations", "admin", "cursor"},
			{"/v1/me/activity", "user", "cursor"},
			{"/v1/auth/oauth/google/start", "", "redirect_to"},
			{"/v1/auth/oauth/google/callback", "", "state"},
			{"/v1/auth/oauth/google/callback", "", "code"},
		} {
			for _, bad := range badStrings {
				u := e.url(q.path) + "?" + url.Values{q.param: {bad.s}}.Encode()
				code, p, _ := send(t, "GET", u, "", nil, e.auth(q.who)...)
				if code != 422 || !slices.Equal(rules(p, q.param), []string{"text"}) {
					t.Errorf("GET %s = %d %v, want 422 naming %s", u, code, p, q.param)
				}
			}
		}
		u := e.url("/v1/me/identities/google/link") + "?redirect_to=%00"
		if code, _, _ := send(t, "POST", u, "", nil, e.auth("user")...); code != 422 {
			t.Errorf("POST %s = %d, want 422", u, code)
		}
	})

	t.Run("PathValues", func(t *testing.T) {
		for _, r := range []struct{ method, path, who string }{
			{"GET", "/v1/admin/users/%s", "admin"},
			{"DELETE", "/v1/admin/users/%s", "admin"},
			{"POST", "/v1/admin/users/%s/disable", "admin"},
			{"POST", "/v1/admin/users/%s/unlock", "admin"},
			{"GET", "/v1/admin/users/%s/sessions", "admin"},
			{"DELETE", "/v1/admin/clients/%s", "admin"},
			{"GET", "/v1/admin/organizations/%s", "admin"},
			{"DELETE", "/v1/admin/organizations/%s", "admin"},
			{"PUT", "/v1/admin/organizations/" + someID + "/members/%s", "admin"},
			{"DELETE", "/v1/me/sessions/%s", "user"},
			{"DELETE", "/v1/me/mfa/devices/%s", "user"},
			{"DELETE", "/v1/me/identities/%s", "user"},
			{"GET", "/v1/auth/oauth/%s/start", ""},
		} {
			for _, bad := range badStrings {
				u := e.url(strings.Replace(r.path, "%s", url.PathEscape(bad.s), 1))
				if code, p, _ := send(t, r.method, u, "", nil, e.auth(r.who)...); code != 404 {
					t.Errorf("%s %s = %d %v, want 404", r.method, u, code, p)
				}
			}
		}
	})

	t.Run("OAuthForms", func(t *testing.T) {
		c := e.newClient(t, "badinput", "openid")
		for _, path := range []string{"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"} {
			for _, param := range []string{"grant_type", "refresh_token", "client_id", "client_secret", "token", "token_type_hint", "scope", "device_id"} {
				for _, bad := range badStrings {
					form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {c.Secret}, "token": {"x"}}
					form.Set(param, bad.s)
					code, p, _ := send(t, "POST", e.url(path), "application/x-www-form-urlencoded", []byte(form.Encode()))
					if code != 400 || p["error"] != "invalid_request" {
						t.Errorf("POST %s with %s %s = %d %v, want 400 invalid_request", path, param, bad.name, code, p)
					}
				}
			}
			for _, bad := range badStrings { // HTTP Basic credentials
				req := url.Values{"grant_type": {"client_credentials"}, "token": {"x"}}.Encode()
				basic := "Basic " + base64Std(url.QueryEscape(bad.s)+":"+url.QueryEscape(c.Secret))
				code, p, _ := send(t, "POST", e.url(path), "application/x-www-form-urlencoded", []byte(req), "Authorization", basic)
				if code != 401 || p["error"] != "invalid_client" {
					t.Errorf("POST %s with a %s Basic client ID = %d %v, want 401 invalid_client", path, bad.name, code, p)
				}
			}
		}
	})

	t.Run("StoredHeaders", func(t *testing.T) {
		ua := "Mozilla/5.0 \x80\xff (caf\xc3"
		body, _ := json.Marshal(map[string]string{"email": "ursula@example.com", "password": strongPassword})
		code, p, _ := send(t, "POST", e.url("/v1/auth/login"), "application/json", body,
			"User-Agent", ua, "X-Request-ID", "r", "Origin", "https://\xffexample.com", "X-Forwarded-For", "10.0.0.\x80")
		if code != 200 {
			t.Fatalf("login with a User-Agent that is not UTF-8 = %d %v, want 200", code, p)
		}
		code, p, _ = send(t, "GET", e.url("/v1/me/sessions"), "", nil, bearer(p["access_token"].(string))...)
		if code != 200 {
			t.Fatalf("sessions = %d %v", code, p)
		}
		found := false
		for _, s := range p["sessions"].([]any) {
			got, _ := s.(map[string]any)["user_agent"].(string)
			if got == strings.ToValidUTF8(ua, "�") {
				found = true
			}
			if !utf8.ValidString(got) {
				t.Errorf("stored user agent %q is not UTF-8", got)
			}
		}
		if !found {
			t.Errorf("no session with the user agent stored as %q: %v", strings.ToValidUTF8(ua, "�"), p["sessions"])
		}
		// A device ID cut at its limit must not split a character.
		body, _ = json.Marshal(map[string]string{"email": "ursula@example.com", "password": strongPassword, "device_id": strings.Repeat("é", 200)})
		if code, p, _ := send(t, "POST", e.url("/v1/auth/login"), "application/json", body, "User-Agent", strings.Repeat("é", 300)); code != 200 {
			t.Errorf("login with a long multi-byte device ID and User-Agent = %d %v, want 200", code, p)
		}
	})

	t.Run("MagicLinkValidatesLikeForgot", func(t *testing.T) {
		for _, addr := range []string{"", "no-at-sign", "a@example.com\nBcc: x@evil.example", "a@example.com\r\nX: y", "ü@example.com", "a b@example.com", "a@example", "Name <a@example.com>", strings.Repeat("a", 250) + "@example.com"} {
			var status [2]int
			var got [2][]string
			for i, path := range []string{"/v1/auth/password/forgot", "/v1/auth/magic-link"} {
				body, _ := json.Marshal(map[string]string{"email": addr})
				code, p, _ := send(t, "POST", e.url(path), "application/json", body)
				status[i], got[i] = code, rules(p, "email")
			}
			if status[0] != 422 || status[1] != status[0] || !slices.Equal(got[0], got[1]) {
				t.Errorf("email %q: forgot = %d %v, magic link = %d %v; want the same 422", addr, status[0], got[0], status[1], got[1])
			}
		}
	})
}
