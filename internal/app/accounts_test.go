package app

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/crypto/bcrypt"
	_ "modernc.org/sqlite"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

const strongPassword = "correct horse battery staple 42!"

// call sends a JSON request and decodes a JSON answer.
func call(t testing.TB, method, url string, body any, header ...string) (int, map[string]any, http.Header) {
	t.Helper()
	var b []byte
	contentType := ""
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
		contentType = "application/json"
	}
	res, raw := request(t, method, url, contentType, b, header...)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, url, raw, err)
		}
	}
	return res.StatusCode, out, res.Header
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// rules lists the rule of every field error of a problem for field.
func rules(p map[string]any, field string) []string {
	var out []string
	errs, _ := p["errors"].([]any)
	for _, e := range errs {
		m := e.(map[string]any)
		if m["field"] == field {
			out = append(out, m["rule"].(string))
		}
	}
	slices.Sort(out)
	return out
}

// accountEnv is a running server plus direct access to its database.
type accountEnv struct {
	s       *server
	dataDir string
	mail    *outbox
	db      *sql.DB
	dialect string
	cfgEnv  map[string]string
}

func newAccountEnv(t testing.TB, env map[string]string) *accountEnv {
	t.Helper()
	dataDir := t.TempDir()
	breached := filepath.Join(dataDir, "breached.txt")
	sum := sha1.Sum([]byte("Tr0ub4dor&3-horse-staple-correct"))
	if err := os.WriteFile(breached, []byte(strings.ToUpper(hex.EncodeToString(sum[:]))+":42\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	all := map[string]string{
		"GATEHOUSE_DATA_DIR":                dataDir,
		"GATEHOUSE_BREACHED_PASSWORDS_FILE": breached,
		"GATEHOUSE_ARGON2_MEMORY_KIB":       "19456",
	}
	for k, v := range env {
		all[k] = v
	}
	cfg := testConfig(t, all)
	s := startServer(t, cfg)
	ae := &accountEnv{s: s, dataDir: dataDir, mail: newOutbox(dataDir), cfgEnv: all}
	if cfg.Database.URL != "" {
		ae.dialect = "postgres"
		db, err := sql.Open("pgx", cfg.Database.URL)
		if err != nil {
			t.Fatal(err)
		}
		ae.db = db
	} else {
		ae.dialect = "sqlite"
		db, err := sql.Open("sqlite", "file:"+cfg.SQLitePath()+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		ae.db = db
	}
	t.Cleanup(func() { ae.db.Close() })
	return ae
}

func (e *accountEnv) url(p string) string { return e.s.public + p }

// register creates and verifies an account and returns its access token.
func (e *accountEnv) signUp(t testing.TB, email string) string {
	t.Helper()
	code, body, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": email, "password": strongPassword, "name": "Test User"})
	if code != 201 {
		t.Fatalf("register %s = %d %v", email, code, body)
	}
	tok := linkToken(t, e.mail.wait(t, email, "Verify your email"), "verify-email")
	if code, body, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": tok}); code != 200 {
		t.Fatalf("verify = %d %v", code, body)
	}
	return e.login(t, email, strongPassword)
}

func (e *accountEnv) login(t testing.TB, email, pw string) string {
	t.Helper()
	code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": pw})
	if code != 200 {
		t.Fatalf("login %s = %d %v", email, code, body)
	}
	return body["access_token"].(string)
}

func runAccountSuite(t *testing.T, e *accountEnv) {
	t.Run("RegisterVerifyAndNoEnumeration", func(t *testing.T) {
		in := map[string]string{"email": "Alice@Example.com", "password": strongPassword, "name": "Alice"}
		code, first, _ := call(t, "POST", e.url("/v1/auth/register"), in)
		if code != 201 {
			t.Fatalf("register = %d %v", code, first)
		}
		verify := e.mail.wait(t, "Alice@Example.com", "Verify your email")
		tok := linkToken(t, verify, "verify-email")
		if len(tok) < 22 { // 128 bits in base64url
			t.Errorf("verification token %q is shorter than 128 bits", tok)
		}

		code, again, _ := call(t, "POST", e.url("/v1/auth/register"), in)
		if code != 201 || fmt.Sprint(again) != fmt.Sprint(first) {
			t.Errorf("second register = %d %v, want 201 %v", code, again, first)
		}
		attempt := e.mail.wait(t, "Alice@Example.com", "Sign-up attempt")
		if strings.Contains(attempt.Text, "token=") {
			t.Errorf("sign-up attempt email carries a token:\n%s", attempt.Text)
		}

		// Unverified accounts cannot sign in.
		code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "alice@example.com", "password": strongPassword})
		if code != 403 || body["code"] != "email_not_verified" {
			t.Errorf("login before verification = %d %v", code, body)
		}

		code, body, _ = call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": tok})
		if code != 200 || body["email_verified"] != true {
			t.Fatalf("verify = %d %v", code, body)
		}
		code, body, _ = call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": tok})
		if code != 400 || body["code"] != "invalid_token" {
			t.Errorf("second use of the token = %d %v, want 400 invalid_token", code, body)
		}

		at := e.login(t, "ALICE@example.com", strongPassword)
		code, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...)
		if code != 200 || me["email"] != "Alice@Example.com" || me["email_verified"] != true || me["email_verified_at"] == nil || me["name"] != "Alice" {
			t.Errorf("/v1/me = %d %v", code, me)
		}
	})

	t.Run("ParallelVerificationIsOneTime", func(t *testing.T) {
		code, _, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": "race@example.com", "password": strongPassword})
		if code != 201 {
			t.Fatal(code)
		}
		tok := linkToken(t, e.mail.wait(t, "race@example.com", "Verify"), "verify-email")
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for range 10 {
			wg.Go(func() {
				c, _, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": tok})
				mu.Lock()
				codes[c]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if codes[200] != 1 || codes[400] != 9 {
			t.Errorf("parallel verifications: %v, want exactly one 200", codes)
		}
	})

	t.Run("ResendSupersedes", func(t *testing.T) {
		call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": "resend@example.com", "password": strongPassword})
		old := linkToken(t, e.mail.wait(t, "resend@example.com", "Verify"), "verify-email")
		code, body, _ := call(t, "POST", e.url("/v1/auth/verify-email/resend"), map[string]string{"email": "resend@example.com"})
		if code != 202 {
			t.Fatalf("resend = %d %v", code, body)
		}
		fresh := linkToken(t, e.mail.wait(t, "resend@example.com", "Verify"), "verify-email")
		if c, _, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": old}); c != 400 {
			t.Errorf("superseded token accepted: %d", c)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": fresh}); c != 200 {
			t.Errorf("fresh token refused: %d", c)
		}
		code, unknown, _ := call(t, "POST", e.url("/v1/auth/verify-email/resend"), map[string]string{"email": "nobody@example.com"})
		if code != 202 || fmt.Sprint(unknown) != fmt.Sprint(body) {
			t.Errorf("resend for unknown = %d %v, want the same 202 %v", code, unknown, body)
		}
	})

	t.Run("ForgotAndReset", func(t *testing.T) {
		e.signUp(t, "bob@example.com")
		// Known and unknown addresses do the same work on the request:
		// exactly one job each, which does the rest.
		jobs := e.countJobs(t, "user.email_request")
		code, known, _ := call(t, "POST", e.url("/v1/auth/password/forgot"), map[string]string{"email": "bob@example.com"})
		if n := e.countJobs(t, "user.email_request"); n != jobs+1 {
			t.Errorf("forgot for a known address enqueued %d request jobs, want 1", n-jobs)
		}
		code2, unknown, _ := call(t, "POST", e.url("/v1/auth/password/forgot"), map[string]string{"email": "nobody-here@example.com"})
		if n := e.countJobs(t, "user.email_request"); n != jobs+2 {
			t.Errorf("forgot for an unknown address enqueued %d request jobs, want 1", n-jobs-1)
		}
		if code != 202 || code2 != 202 || fmt.Sprint(known) != fmt.Sprint(unknown) {
			t.Errorf("forgot known = %d %v, unknown = %d %v: must be identical", code, known, code2, unknown)
		}
		e.mail.none(t, "nobody-here@example.com", 300*time.Millisecond)
		tok := linkToken(t, e.mail.wait(t, "bob@example.com", "Reset your"), "reset-password")

		code, body, _ := call(t, "POST", e.url("/v1/auth/password/reset"), map[string]string{"token": tok, "password": "short"})
		if code != 422 || body["code"] != "validation_failed" {
			t.Fatalf("reset with a weak password = %d %v", code, body)
		}
		newPassword := "a different, longer passphrase 7"
		code, body, _ = call(t, "POST", e.url("/v1/auth/password/reset"), map[string]string{"token": tok, "password": newPassword})
		if code != 200 {
			t.Fatalf("reset = %d %v (a refused weak password must not use up the token)", code, body)
		}
		code, body, _ = call(t, "POST", e.url("/v1/auth/password/reset"), map[string]string{"token": tok, "password": newPassword + "x"})
		if code != 400 || body["code"] != "invalid_token" {
			t.Errorf("second reset with the token = %d %v", code, body)
		}
		e.mail.wait(t, "bob@example.com", "password was changed")
		if c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "bob@example.com", "password": strongPassword}); c != 401 || b["code"] != "invalid_credentials" {
			t.Errorf("old password after reset = %d %v", c, b)
		}
		e.login(t, "bob@example.com", newPassword)
	})

	t.Run("NonASCIIAddressesAreValidationErrors", func(t *testing.T) {
		// The mailer cannot send to these: they were a 500 on register and
		// on forgot for an existing account (202 for unknown ones).
		for _, c := range []struct{ path, email string }{
			{"/v1/auth/register", "j\u00f6rg@example.com"},
			{"/v1/auth/password/forgot", "j\u00f6rg@example.com"},
			{"/v1/auth/verify-email/resend", "\u212Aate@example.com"},
		} {
			in := map[string]string{"email": c.email}
			if c.path == "/v1/auth/register" {
				in["password"] = strongPassword
			}
			code, body, _ := call(t, "POST", e.url(c.path), in)
			if code != 422 || !slices.Contains(rules(body, "email"), "ascii") {
				t.Errorf("%s %q = %d %v, want 422 with rule ascii", c.path, c.email, code, body)
			}
		}
	})

	t.Run("PasswordPolicyNamesEveryRule", func(t *testing.T) {
		cases := []struct {
			email, password string
			want            []string
		}{
			{"p1@example.com", "short", []string{"min_length", "strength"}},
			{"p2@example.com", "aaaaaaaaaaaaaaaa", []string{"strength"}},
			{"correcthorse@example.com", "correcthorse battery 99 Staple!", []string{"contains_email"}},
			{"p4@example.com", "Tr0ub4dor&3-horse-staple-correct", []string{"breached"}},
		}
		for _, c := range cases {
			code, body, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": c.email, "password": c.password})
			if code != 422 || body["code"] != "validation_failed" {
				t.Errorf("%q: %d %v, want 422", c.password, code, body)
				continue
			}
			got := rules(body, "password")
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("%q: rules %v lack %s", c.password, got, w)
				}
			}
		}
		code, body, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": "not-an-email", "password": "x"})
		if code != 422 || len(rules(body, "email")) == 0 || len(rules(body, "password")) == 0 {
			t.Errorf("bad email and password: %d %v, want both fields named", code, body)
		}
	})

	t.Run("ProfileAndActivity", func(t *testing.T) {
		at := e.signUp(t, "carol@example.com")
		code, me, _ := call(t, "PATCH", e.url("/v1/me"), map[string]any{
			"given_name": "Carol", "family_name": "Danvers", "locale": "en-gb", "zoneinfo": "Europe/London",
			"phone_number": "+44 20 7946 0958", "picture": "https://example.com/c.png", "metadata": map[string]any{"theme": "dark"},
		}, bearer(at)...)
		if code != 200 || me["given_name"] != "Carol" || me["locale"] != "en-GB" || me["phone_number"] != "+442079460958" {
			t.Fatalf("PATCH /v1/me = %d %v", code, me)
		}
		code, body, _ := call(t, "PATCH", e.url("/v1/me"), map[string]any{"zoneinfo": "Mars/Olympus", "picture": "javascript:alert(1)", "locale": "!!"}, bearer(at)...)
		if code != 422 || len(rules(body, "zoneinfo")) == 0 || len(rules(body, "picture")) == 0 || len(rules(body, "locale")) == 0 {
			t.Errorf("invalid PATCH = %d %v", code, body)
		}
		code, body, _ = call(t, "PATCH", e.url("/v1/me"), map[string]any{"app_metadata": map[string]any{"role": "admin"}}, bearer(at)...)
		if code != 400 || body["code"] != "invalid_json" {
			t.Errorf("PATCH of app_metadata = %d %v, want refused", code, body)
		}

		// Email change: verification to the new address, notice to the old.
		code, me, _ = call(t, "PATCH", e.url("/v1/me"), map[string]any{"email": "carol.new@example.com"}, bearer(at)...)
		if code != 200 || me["email"] != "carol@example.com" || me["pending_email"] != "carol.new@example.com" {
			t.Fatalf("email change request = %d %v", code, me)
		}
		e.mail.wait(t, "carol@example.com", "")
		tok := linkToken(t, e.mail.wait(t, "carol.new@example.com", ""), "verify-email")
		if code, body, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": tok}); code != 200 || body["email"] != "carol.new@example.com" {
			t.Fatalf("confirm email change = %d %v", code, body)
		}
		code, me, _ = call(t, "GET", e.url("/v1/me"), nil, bearer(at)...)
		if code != 200 || me["email"] != "carol.new@example.com" {
			t.Errorf("email after change = %v", me["email"])
		}

		code, act, _ := call(t, "GET", e.url("/v1/me/activity?limit=2"), nil, bearer(at)...)
		if code != 200 {
			t.Fatalf("activity = %d %v", code, act)
		}
		var actions []string
		events := act["events"].([]any)
		next, _ := act["next_cursor"].(string)
		for next != "" && len(events) < 50 {
			for _, ev := range events {
				actions = append(actions, ev.(map[string]any)["action"].(string))
			}
			_, page, _ := call(t, "GET", e.url("/v1/me/activity?limit=2&cursor="+next), nil, bearer(at)...)
			events = page["events"].([]any)
			next, _ = page["next_cursor"].(string)
		}
		for _, ev := range events {
			actions = append(actions, ev.(map[string]any)["action"].(string))
		}
		for _, want := range []string{"user.registered", "user.email_verified", "user.profile_updated", "user.email_change_requested", "user.email_changed"} {
			if !slices.Contains(actions, want) {
				t.Errorf("activity %v lacks %s", actions, want)
			}
		}
		if actions[len(actions)-1] != "user.registered" {
			t.Errorf("activity is not newest first: %v", actions)
		}

		// Password change needs the current password and ends other sessions.
		other := e.login(t, "carol.new@example.com", strongPassword)
		code, body, _ = call(t, "POST", e.url("/v1/me/password"), map[string]string{"current_password": "wrong wrong wrong", "new_password": "another fine passphrase 8"}, bearer(at)...)
		if code != 403 || body["code"] != "invalid_current_password" {
			t.Errorf("wrong current password = %d %v", code, body)
		}
		code, body, _ = call(t, "POST", e.url("/v1/me/password"), map[string]string{"current_password": strongPassword, "new_password": "another fine passphrase 8"}, bearer(at)...)
		if code != 200 {
			t.Fatalf("password change = %d %v", code, body)
		}
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(other)...); c != 401 {
			t.Errorf("other session still works after password change: %d", c)
		}
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); c != 200 {
			t.Errorf("current session ended by its own password change: %d", c)
		}
	})

	t.Run("EmailChangeIsConfirmedThroughTheLockout", func(t *testing.T) {
		at := e.signUp(t, "dora@example.com")
		code, me, _ := call(t, "PATCH", e.url("/v1/me"), map[string]any{"email": "dora.new@example.com", "current_password": strongPassword}, bearer(at)...)
		if code != 200 || me["pending_email"] != "dora.new@example.com" {
			t.Fatalf("email change with the current password = %d %v", code, me)
		}
		// Wrong current passwords count towards the account lock.
		var locked bool
		for i := 0; i < 10 && !locked; i++ {
			code, body, h := call(t, "PATCH", e.url("/v1/me"), map[string]any{"email": "thief@example.net", "current_password": "not the password at all"}, bearer(at)...)
			switch {
			case code == 403 && body["code"] == "invalid_current_password":
			case code == 429 && body["code"] == "account_locked" && h.Get("Retry-After") != "":
				locked = true
			default:
				t.Fatalf("email change with a wrong password = %d %v", code, body)
			}
		}
		if !locked {
			t.Fatal("10 wrong current passwords did not lock the account")
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "dora@example.com", "password": strongPassword}); c != 429 || b["code"] != "account_locked" {
			t.Errorf("sign-in after the wrong confirmations = %d %v, want 429 account_locked", c, b)
		}
		if _, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); me["pending_email"] != "dora.new@example.com" {
			t.Errorf("pending email after refused changes = %v", me["pending_email"])
		}
	})

	t.Run("ImportLegacyHashes", func(t *testing.T) {
		bc, _ := bcrypt.GenerateFromPassword([]byte("legacy bcrypt password 1"), 10)
		salt := "seasalt123"
		dk, err := pbkdf2.Key(sha256.New, "legacy django password 2", []byte(salt), 1000, 32)
		if err != nil {
			t.Fatal(err)
		}
		django := fmt.Sprintf("pbkdf2_sha256$1000$%s$%s", salt, base64.StdEncoding.EncodeToString(dk))
		lines := strings.Join([]string{
			fmt.Sprintf(`{"email":"bc@example.com","password_hash":%q,"email_verified":true,"name":"B C"}`, bc),
			fmt.Sprintf(`{"email":"dj@example.com","password_hash":%q,"email_verified":true,"metadata":{"plan":"pro"}}`, django),
			`{"email":"broken@example.com","password_hash":"md5$nope"}`,
			`not json`,
		}, "\n")
		file := filepath.Join(t.TempDir(), "users.jsonl")
		os.WriteFile(file, []byte(lines), 0o600)
		var stdout, stderr bytes.Buffer
		env := Env{Args: []string{"users", "import", file, "--output", "json"}, Getenv: func(k string) string { return e.cfgEnv[k] }, Stdout: &stdout, Stderr: &stderr}
		for k, v := range map[string]string{"GATEHOUSE_ENV": "test", "GATEHOUSE_LOG_LEVEL": "error"} {
			if _, ok := e.cfgEnv[k]; !ok {
				e.cfgEnv[k] = v
			}
		}
		code := Run(context.Background(), env)
		var res struct {
			Imported int
			Failed   []struct {
				Line  int
				Error string
			}
		}
		json.Unmarshal(stdout.Bytes(), &res)
		if code != exitError || res.Imported != 2 || len(res.Failed) != 2 || res.Failed[0].Line != 3 || res.Failed[1].Line != 4 {
			t.Fatalf("import = exit %d %+v\nstdout %s\nstderr %s", code, res, stdout.String(), stderr.String())
		}
		for email, pw := range map[string]string{"bc@example.com": "legacy bcrypt password 1", "dj@example.com": "legacy django password 2"} {
			e.login(t, email, pw)
			var hash string
			q := "SELECT password_hash FROM users WHERE email_normalized = $1"
			if e.dialect == "sqlite" {
				q = "SELECT password_hash FROM users WHERE email_normalized = ?"
			}
			if err := e.db.QueryRow(q, email).Scan(&hash); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
				t.Errorf("%s: stored hash after login = %.20s…, want Argon2id", email, hash)
			}
			e.login(t, email, pw) // and the upgraded hash works
		}
		if c, _, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "broken@example.com", "password": "x"}); c != 401 {
			t.Errorf("a rejected line created an account: login = %d", c)
		}
	})

	t.Run("NoPlaintextSecretsAtRest", func(t *testing.T) {
		// Gather every secret the flows above handed out, then scan every
		// text column of every table for them.
		var secrets []string
		secrets = append(secrets, strongPassword, "a different, longer passphrase 7", "another fine passphrase 8")
		names, _ := filepath.Glob(filepath.Join(e.mail.dir, "*.eml"))
		for _, n := range names {
			msg := readMessage(t, n)
			for _, match := range tokenLink.FindAllStringSubmatch(msg.Text, -1) {
				secrets = append(secrets, match[2])
			}
		}
		if len(secrets) < 8 {
			t.Fatalf("only %d secrets gathered; the flows above did not run", len(secrets))
		}
		dump := dumpDatabase(t, e.db, e.dialect)
		for _, s := range secrets {
			if strings.Contains(dump, s) {
				t.Errorf("the database holds a secret in plain text: %.6s…", s)
			}
		}
	})
}

// countJobs counts the River jobs of a kind, in any state.
func (e *accountEnv) countJobs(t *testing.T, kind string) int {
	t.Helper()
	q := "SELECT COUNT(*) FROM river_job WHERE kind = $1"
	if e.dialect == "sqlite" {
		q = "SELECT COUNT(*) FROM river_job WHERE kind = ?"
	}
	var n int
	if err := e.db.QueryRow(q, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// dumpDatabase renders every row of every table as text.
func dumpDatabase(t *testing.T, db *sql.DB, dialect string) string {
	t.Helper()
	q := "SELECT name FROM sqlite_master WHERE type = 'table'"
	if dialect == "postgres" {
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tbl := range tables {
		rows, err := db.Query(`SELECT * FROM "` + tbl + `"`)
		if err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				switch v := v.(type) {
				case []byte:
					b.Write(v)
				default:
					fmt.Fprint(&b, v)
				}
				b.WriteByte('\t')
			}
			b.WriteByte('\n')
		}
		rows.Close()
	}
	if !strings.Contains(b.String(), "@example.com") {
		t.Fatalf("database dump looks empty (%d bytes)", b.Len())
	}
	return b.String()
}

func TestAccountsEmbedded(t *testing.T) {
	runAccountSuite(t, newAccountEnv(t, nil))
}

func TestAccountsPostgresRedis(t *testing.T) {
	runAccountSuite(t, newAccountEnv(t, postgresRedisEnv(t)))
}

// postgresRedisEnv is the environment of a server on a fresh PostgreSQL
// database and its own Redis key prefix.
func postgresRedisEnv(t *testing.T) map[string]string {
	t.Helper()
	dbURL := testenv.PostgresURL(t)
	redisURL, prefix := testenv.Redis(t)
	return map[string]string{"GATEHOUSE_DATABASE_URL": dbURL, "GATEHOUSE_REDIS_URL": redisURL, "GATEHOUSE_REDIS_KEY_PREFIX": prefix}
}
