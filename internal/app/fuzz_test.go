package app

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// The fuzz targets drive the real handler stack on every backend: the
// embedded one (SQLite, in-process state) and, when
// GATEHOUSE_TEST_DATABASE_URL is set, PostgreSQL (with Redis when
// GATEHOUSE_TEST_REDIS_URL is set). The servers start once per target,
// outside f.Fuzz. The property: never a 5xx; every answer is either the
// documented success shape or a problem+json document with its status and
// a code. CI runs each briefly (.ci/run); plain `go test` runs the seeds
// (f.Add and testdata/fuzz/<FuzzName>).

// fuzzEnvs starts one server per backend. Throttles that would turn every
// answer into a 429 after a few inputs are raised; 429 stays a valid answer.
func fuzzEnvs(f *testing.F) map[string]*accountEnv {
	f.Helper()
	tune := map[string]string{
		"GATEHOUSE_LOGIN_IP_FAILURE_LIMIT": "0",
		"GATEHOUSE_REGISTER_LIMIT_PER_IP":  "1000000",
		"GATEHOUSE_LOG_LEVEL":              "error",
	}
	envs := map[string]*accountEnv{"sqlite": newAccountEnv(f, tune)}
	if os.Getenv(testenv.DatabaseURLVar) != "" {
		pg := map[string]string{"GATEHOUSE_DATABASE_URL": testenv.PostgresURL(f)}
		if os.Getenv(testenv.RedisURLVar) != "" {
			redisURL, prefix := testenv.Redis(f)
			pg["GATEHOUSE_REDIS_URL"], pg["GATEHOUSE_REDIS_KEY_PREFIX"] = redisURL, prefix
		}
		for k, v := range tune {
			pg[k] = v
		}
		envs["postgres"] = newAccountEnv(f, pg)
	}
	return envs
}

// jsonText writes s as a JSON string, escaping only what JSON requires
// (quote, backslash, control characters; NUL as \u0000) and leaving every
// other byte as it is, invalid UTF-8 included, so the server sees the
// fuzzer's bytes rather than what json.Marshal would make of them.
func jsonText(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// fuzzCall sends one request and checks the property: no 5xx; okStatus
// answers are JSON with the members in okKeys; anything else is
// problem+json carrying its status and a code.
func fuzzCall(t *testing.T, backend, method, u string, body []byte, okStatus int, okKeys []string, header ...string) {
	t.Helper()
	contentType := ""
	if body != nil {
		contentType = "application/json"
	}
	res, raw := request(t, method, u, contentType, body, header...)
	if res.StatusCode >= 500 {
		t.Fatalf("%s: %s %s %q = %d %s", backend, method, u, body, res.StatusCode, raw)
	}
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %s %s %q = %d with a body that is not a JSON object: %q", backend, method, u, body, res.StatusCode, raw)
	}
	if res.StatusCode == okStatus {
		if mt != "application/json" {
			t.Fatalf("%s: %s %s %q = %d as %s, want application/json", backend, method, u, body, res.StatusCode, mt)
		}
		for _, k := range okKeys {
			if _, ok := out[k]; !ok {
				t.Fatalf("%s: %s %s %q = %d %s: no %q", backend, method, u, body, res.StatusCode, raw, k)
			}
		}
		return
	}
	code, _ := out["code"].(string)
	if mt != "application/problem+json" || code == "" || out["status"] != float64(res.StatusCode) {
		t.Fatalf("%s: %s %s %q = %d %s %s, want a problem+json document", backend, method, u, body, res.StatusCode, mt, raw)
	}
}

func FuzzLogin(f *testing.F) {
	envs := fuzzEnvs(f)
	for _, e := range envs {
		e.signUp(f, "fuzz@example.com")
	}
	f.Add("fuzz@example.com", strongPassword, "")
	f.Add("fuzz@example.com", strongPassword, "device-\xff")
	f.Add("fuzz@example.com\x00", strongPassword, "")
	f.Add("fu\xffzz@example.com", "x", "")
	f.Add("", "", "")
	f.Add("FUZZ@example.com ", "wrong", "\x00")
	f.Fuzz(func(t *testing.T, email, password, deviceID string) {
		body := []byte(`{"email":` + jsonText(email) + `,"password":` + jsonText(password) + `,"device_id":` + jsonText(deviceID) + `}`)
		for name, e := range envs {
			fuzzCall(t, name, "POST", e.url("/v1/auth/login"), body, http.StatusOK, []string{"access_token", "session_id", "user"})
		}
	})
}

func FuzzRegister(f *testing.F) {
	envs := fuzzEnvs(f)
	f.Add("new@example.com", strongPassword, "New User")
	f.Add("n\x00ew@example.com", strongPassword, "New")
	f.Add("new2@example.com", strongPassword, "Caf\xc3")
	f.Add("new3@example.com", "pass\x00word is long enough 42!", "")
	f.Add("new4@example.com\nBcc: x@example.com", strongPassword, "x")
	f.Add("ü@example.com", strongPassword, "\u202e")
	f.Fuzz(func(t *testing.T, email, password, name string) {
		body := []byte(`{"email":` + jsonText(email) + `,"password":` + jsonText(password) + `,"name":` + jsonText(name) + `}`)
		for backend, e := range envs {
			fuzzCall(t, backend, "POST", e.url("/v1/auth/register"), body, http.StatusCreated, []string{"email", "message"})
		}
	})
}

func FuzzAdminUserFilter(f *testing.F) {
	envs := fuzzEnvs(f)
	tokens := map[string]string{}
	for name, e := range envs {
		e.signUp(f, "listed@example.com")
		if _, code := e.cli(f, "users", "create", "--email", "root@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
			f.Fatal("users create --admin failed")
		}
		tokens[name] = e.login(f, "root@example.com", strongPassword)
	}
	f.Add("listed", "", "", "", "")
	f.Add("li\x00sted", "active", "email", "", "5")
	f.Add("\xff", "disabled", "-created_at", "\xff", "200")
	f.Add("%", "locked", "-email", "MS4xLjE", "0")
	f.Add("_", "x", "created_at", "not a cursor", "-1")
	f.Fuzz(func(t *testing.T, email, status, sort, cursor, limit string) {
		q := url.Values{}
		for k, v := range map[string]string{"email": email, "status": status, "sort": sort, "cursor": cursor, "limit": limit} {
			if v != "" {
				q.Set(k, v)
			}
		}
		for backend, e := range envs {
			fuzzCall(t, backend, "GET", e.url("/v1/admin/users?"+q.Encode()), nil, http.StatusOK, []string{"users", "next_cursor"}, bearer(tokens[backend])...)
		}
	})
}
