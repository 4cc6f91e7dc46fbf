package app

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// totpAt is an independent RFC 6238 implementation (SHA-1, 6 digits, 30 s).
func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		t.Fatalf("secret %q is not base32: %v", secret, err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

// twilioEmulator speaks the contract of Twilio's Messages API.
type twilioEmulator struct {
	*httptest.Server
	mu   sync.Mutex
	sent []url2
	// unreachable numbers are refused with Twilio's error 21612, a
	// permanent failure.
	unreachable map[string]bool
}

// refuse makes the emulator refuse every later message to the number.
func (e *twilioEmulator) refuse(to string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.unreachable[to] = true
}

type url2 struct{ To, Body string }

func startTwilio(t *testing.T, sid, token string) *twilioEmulator {
	e := &twilioEmulator{unreachable: map[string]bool{}}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != sid || p != token || r.URL.Path != "/2010-04-01/Accounts/"+sid+"/Messages.json" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"code":20003,"message":"Authenticate","status":401}`)
			return
		}
		r.ParseForm()
		e.mu.Lock()
		if e.unreachable[r.PostForm.Get("To")] {
			e.mu.Unlock()
			w.WriteHeader(400)
			fmt.Fprint(w, `{"code":21612,"message":"The 'To' phone number is not currently reachable via SMS","status":400}`)
			return
		}
		e.sent = append(e.sent, url2{To: r.PostForm.Get("To"), Body: r.PostForm.Get("Body")})
		n := len(e.sent)
		e.mu.Unlock()
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"sid":"SM%032d","status":"queued","to":%q}`, n, r.PostForm.Get("To"))
	}))
	t.Cleanup(e.Close)
	return e
}

var smsCode = regexp.MustCompile(`\b(\d{6})\b`)

// waitCode returns the code of the next text message to the number.
func (e *twilioEmulator) waitCode(t *testing.T, to string, seen int) (string, int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		for i := seen; i < len(e.sent); i++ {
			if e.sent[i].To == to {
				m := smsCode.FindStringSubmatch(e.sent[i].Body)
				e.mu.Unlock()
				if m == nil {
					t.Fatalf("no code in SMS %q", e.sent[i].Body)
				}
				return m[1], i + 1
			}
		}
		e.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no text message to %s arrived", to)
	return "", 0
}

var mailCode = regexp.MustCompile(`(?m)^\s*(\d{6})\s*$`)

func emailCode(t *testing.T, m message) string {
	t.Helper()
	c := mailCode.FindStringSubmatch(m.Text)
	if c == nil {
		t.Fatalf("no code in the email %q:\n%s", m.Subject, m.Text)
	}
	return c[1]
}

func claimsOf(t *testing.T, at string) map[string]any {
	t.Helper()
	parts := strings.Split(at, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

func amrOf(t *testing.T, at string) []string {
	var out []string
	for _, a := range claimsOf(t, at)["amr"].([]any) {
		out = append(out, a.(string))
	}
	return out
}

func loginMFA(t *testing.T, e *accountEnv, email string) map[string]any {
	t.Helper()
	code, body, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": strongPassword})
	if code != 200 {
		t.Fatalf("login = %d %v", code, body)
	}
	return body
}

func TestMFAEmbedded(t *testing.T) { runMFASuite(t, nil) }

func TestMFAPostgresRedis(t *testing.T) {
	runMFASuite(t, postgresRedisEnv(t))
}

func runMFASuite(t *testing.T, env map[string]string) {
	const sid, token = "AC00000000000000000000000000000001", "twilio-test-token"
	tw := startTwilio(t, sid, token)
	all := map[string]string{
		"GATEHOUSE_TWILIO_ACCOUNT_SID": sid, "GATEHOUSE_TWILIO_AUTH_TOKEN": token,
		"GATEHOUSE_TWILIO_FROM": "+15005550006", "GATEHOUSE_TWILIO_BASE_URL": tw.URL,
	}
	for k, v := range env {
		all[k] = v
	}
	e := newAccountEnv(t, all)
	var secrets []string
	var adminToken string
	admin := func(t *testing.T) string {
		t.Helper()
		if adminToken == "" {
			if _, code := e.cli(t, "users", "create", "--email", "mfa-admin@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
				t.Fatal("create admin")
			}
			adminToken = e.login(t, "mfa-admin@example.com", strongPassword)
		}
		return adminToken
	}

	t.Run("TOTP", func(t *testing.T) {
		at := e.signUp(t, "totp@example.com")
		code, enr, _ := call(t, "POST", e.url("/v1/me/mfa/totp"), nil, bearer(at)...)
		if code != 201 || !strings.HasPrefix(enr["otpauth_uri"].(string), "otpauth://totp/") || !strings.HasPrefix(enr["qr_code"].(string), "data:image/png;base64,") {
			t.Fatalf("enrol = %d %v", code, enr)
		}
		secret := enr["secret"].(string)
		secrets = append(secrets, secret)
		id := enr["id"].(string)
		// Not active before confirmation: login still gives tokens.
		if b := loginMFA(t, e, "totp@example.com"); b["mfa_required"] == true {
			t.Fatalf("unconfirmed device already required at login: %v", b)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+id+"/confirm"), map[string]string{"code": "000000"}, bearer(at)...); c != 401 {
			t.Errorf("confirm with a wrong code = %d %v", c, b)
		}
		awayFromStepEdge()
		prev := totpAt(t, secret, time.Now().Add(-30*time.Second))
		if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+id+"/confirm"), map[string]string{"code": prev}, bearer(at)...); c != 200 || b["confirmed"] != true {
			t.Fatalf("confirm = %d %v", c, b)
		}
		e.mail.wait(t, "totp@example.com", "Security settings")

		b := loginMFA(t, e, "totp@example.com")
		if b["mfa_required"] != true || b["access_token"] != nil || !slices.Contains(toStrings(b["methods"]), "totp") {
			t.Fatalf("login with TOTP = %v", b)
		}
		mt := b["mfa_token"].(string)
		now := totpAt(t, secret, time.Now())
		if now == prev {
			t.Skip("codes of adjacent steps coincide; rerun")
		}
		c, tok, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "totp", "code": now})
		if c != 200 || tok["access_token"] == nil {
			t.Fatalf("verify = %d %v", c, tok)
		}
		amr := amrOf(t, tok["access_token"].(string))
		if !slices.Contains(amr, "mfa") || !slices.Contains(amr, "otp") || !slices.Contains(amr, "pwd") {
			t.Errorf("amr = %v, want pwd, mfa, otp", amr)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "totp", "code": now}); c != 401 {
			t.Errorf("mfa_token reused = %d", c)
		}
		// Replay of the accepted code in a new login is refused.
		mt2 := loginMFA(t, e, "totp@example.com")["mfa_token"].(string)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt2, "method": "totp", "code": now}); c != 401 || b["code"] != "invalid_code" {
			t.Errorf("replayed TOTP code = %d %v", c, b)
		}
		// Wrong codes kill the token (this one has had one failure already).
		for i := 0; i < 4; i++ {
			call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt2, "method": "totp", "code": "000001"})
		}
		next := totpAt(t, secret, time.Now().Add(30*time.Second))
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt2, "method": "totp", "code": next}); c != 401 || b["code"] != "invalid_mfa_token" {
			t.Errorf("after 5 wrong codes = %d %v, want invalid_mfa_token", c, b)
		}
	})

	// A stolen access token whose sign-in is old cannot make itself
	// "recently authenticated" with a factor it adds itself.
	t.Run("ReauthNeedsAFactorFromBeforeTheSignIn", func(t *testing.T) {
		e.signUp(t, "stale-token@example.com")
		c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "stale-token@example.com", "password": strongPassword})
		if c != 200 {
			t.Fatalf("login = %d %v", c, b)
		}
		ageAuthTime(t, e, b["session_id"].(string), 10*time.Minute)
		c, r, _ := call(t, "POST", e.url("/oauth2/token"), map[string]string{"grant_type": "refresh_token", "refresh_token": b["refresh_token"].(string)})
		if c != 200 {
			t.Fatalf("refresh = %d %v", c, r)
		}
		stale := r["access_token"].(string)
		secret := enrolTOTP(t, e, stale)
		secrets = append(secrets, secret)
		next := totpAt(t, secret, time.Now().Add(30*time.Second))
		if c, b, _ := call(t, "POST", e.url("/v1/auth/reauthenticate"), map[string]string{"method": "totp", "code": next}, bearer(stale)...); c != 401 || b["access_token"] != nil {
			t.Fatalf("reauthenticate with a factor added by this session = %d %v, want 401", c, b)
		}
		// The password still works, and after it the factor counts.
		if c, b, _ := call(t, "POST", e.url("/v1/auth/reauthenticate"), map[string]string{"password": strongPassword}, bearer(stale)...); c != 200 || b["access_token"] == nil {
			t.Fatalf("reauthenticate with the password = %d %v", c, b)
		}
	})

	// A password changed while a login waits for its second factor voids
	// that login: the second factor alone must not finish a sign-in whose
	// password is no longer the account's.
	t.Run("PasswordChangeVoidsPendingLogin", func(t *testing.T) {
		at := e.signUp(t, "stamp@example.com")
		_, enr, _ := call(t, "POST", e.url("/v1/me/mfa/totp"), nil, bearer(at)...)
		secret := enr["secret"].(string)
		secrets = append(secrets, secret)
		awayFromStepEdge()
		prev := totpAt(t, secret, time.Now().Add(-30*time.Second))
		if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+enr["id"].(string)+"/confirm"), map[string]string{"code": prev}, bearer(at)...); c != 200 {
			t.Fatalf("confirm = %d %v", c, b)
		}
		mt := loginMFA(t, e, "stamp@example.com")["mfa_token"].(string)
		const newPassword = "a different fine passphrase 11"
		if c, b, _ := call(t, "POST", e.url("/v1/me/password"), map[string]string{"current_password": strongPassword, "new_password": newPassword}, bearer(at)...); c != 204 && c != 200 {
			t.Fatalf("change password = %d %v", c, b)
		}
		now := totpAt(t, secret, time.Now())
		if now == prev {
			t.Skip("codes of adjacent steps coincide; rerun")
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "totp", "code": now}); c != 401 || b["code"] != "invalid_credentials" || b["access_token"] != nil {
			t.Fatalf("second factor after a password change = %d %v, want 401 invalid_credentials", c, b)
		}
		c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": "stamp@example.com", "password": newPassword})
		if c != 200 || b["mfa_required"] != true {
			t.Fatalf("login with the new password = %d %v", c, b)
		}
		next := totpAt(t, secret, time.Now().Add(30*time.Second))
		if c, tok, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": b["mfa_token"].(string), "method": "totp", "code": next}); c != 200 || tok["access_token"] == nil {
			t.Fatalf("second factor of a login with the new password = %d %v", c, tok)
		}
	})

	t.Run("EmailCodesAndBackupCodes", func(t *testing.T) {
		at := e.signUp(t, "backup@example.com")
		c, b, _ := call(t, "POST", e.url("/v1/me/mfa/email"), nil, bearer(at)...)
		if c != 201 {
			t.Fatalf("enrol email = %d %v", c, b)
		}
		code := emailCode(t, e.mail.wait(t, "backup@example.com", "verification code"))
		secrets = append(secrets, code)
		if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+b["id"].(string)+"/confirm"), map[string]string{"code": code}, bearer(at)...); c != 200 {
			t.Fatalf("confirm email = %d %v", c, b)
		}
		c, bc, _ := call(t, "POST", e.url("/v1/me/mfa/backup-codes"), nil, bearer(at)...)
		codes := toStrings(bc["codes"])
		if c != 201 || len(codes) != 10 {
			t.Fatalf("backup codes = %d %v", c, bc)
		}
		secrets = append(secrets, codes...)
		_, devs, _ := call(t, "GET", e.url("/v1/me/mfa/devices"), nil, bearer(at)...)
		if devs["backup_codes_remaining"] != float64(10) {
			t.Errorf("devices = %v", devs)
		}

		// Email code at login: sent on challenge, works once.
		mt := loginMFA(t, e, "backup@example.com")["mfa_token"].(string)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "email"}); c != 200 {
			t.Fatalf("challenge email = %d %v", c, b)
		}
		ec := emailCode(t, e.mail.wait(t, "backup@example.com", "verification code"))
		secrets = append(secrets, ec)
		c, tok, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "email", "code": ec})
		if c != 200 || !slices.Contains(amrOf(t, tok["access_token"].(string)), "email") {
			t.Fatalf("verify email = %d %v", c, tok)
		}
		mt = loginMFA(t, e, "backup@example.com")["mfa_token"].(string)
		if c, _, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "email", "code": ec}); c != 401 {
			t.Errorf("email code reused = %d", c)
		}

		// Backup codes: each once.
		mt = loginMFA(t, e, "backup@example.com")["mfa_token"].(string)
		c, tok, _ = call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "backup_code", "code": strings.ToLower(codes[0])})
		if c != 200 {
			t.Fatalf("backup code = %d %v", c, tok)
		}
		e.mail.wait(t, "backup@example.com", "Security settings")
		mt = loginMFA(t, e, "backup@example.com")["mfa_token"].(string)
		if c, _, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "backup_code", "code": codes[0]}); c != 401 {
			t.Errorf("backup code reused = %d", c)
		}
		// Regenerating voids the old set.
		fresh := tok["access_token"].(string)
		_, again, _ := call(t, "POST", e.url("/v1/me/mfa/backup-codes"), nil, bearer(fresh)...)
		newCodes := toStrings(again["codes"])
		secrets = append(secrets, newCodes...)
		if c, _, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "backup_code", "code": codes[1]}); c != 401 {
			t.Errorf("old backup code after regeneration = %d", c)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "backup_code", "code": newCodes[0]}); c != 200 {
			t.Errorf("new backup code = %d", c)
		}
	})

	t.Run("SMS", func(t *testing.T) {
		at := e.signUp(t, "sms@example.com")
		c, b, _ := call(t, "POST", e.url("/v1/me/mfa/sms"), map[string]string{"phone_number": "+1 415 555 2671"}, bearer(at)...)
		if c != 201 {
			t.Fatalf("enrol sms = %d %v", c, b)
		}
		code, seen := tw.waitCode(t, "+14155552671", 0)
		secrets = append(secrets, code)
		if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+b["id"].(string)+"/confirm"), map[string]string{"code": code}, bearer(at)...); c != 200 {
			t.Fatalf("confirm sms = %d %v", c, b)
		}
		mt := loginMFA(t, e, "sms@example.com")["mfa_token"].(string)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "sms"}); c != 200 {
			t.Fatalf("challenge sms = %d %v", c, b)
		}
		code, _ = tw.waitCode(t, "+14155552671", seen)
		secrets = append(secrets, code)
		c, tok, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "sms", "code": code})
		if c != 200 || !slices.Contains(amrOf(t, tok["access_token"].(string)), "sms") {
			t.Fatalf("verify sms = %d %v", c, tok)
		}
		mt = loginMFA(t, e, "sms@example.com")["mfa_token"].(string)
		if c, _, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "sms", "code": code}); c != 401 {
			t.Errorf("sms code reused = %d", c)
		}
		// Removing a factor needs a recent authentication: a fresh login is.
		_, devs, _ := call(t, "GET", e.url("/v1/me/mfa/devices"), nil, bearer(tok["access_token"].(string))...)
		id := devs["devices"].([]any)[0].(map[string]any)["id"].(string)
		if c, _, _ := call(t, "DELETE", e.url("/v1/me/mfa/devices/"+id), nil, bearer(tok["access_token"].(string))...); c != 204 {
			t.Errorf("remove device = %d", c)
		}
	})

	t.Run("OrganisationForcesEnrolment", func(t *testing.T) {
		if _, code := e.cli(t, "users", "create", "--email", "boss@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
			t.Fatal("create admin")
		}
		admin := e.login(t, "boss@example.com", strongPassword)
		memberAT := e.signUp(t, "member@example.com")
		_, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(memberAT)...)
		c, org, _ := call(t, "POST", e.url("/v1/admin/organizations"), map[string]any{"name": "Acme", "slug": "acme", "policy": map[string]any{"mfa_required": true}}, bearer(admin)...)
		if c != 201 {
			t.Fatalf("create org = %d %v", c, org)
		}
		if c, b, _ := call(t, "PUT", e.url("/v1/admin/organizations/"+org["id"].(string)+"/members/"+me["id"].(string)), map[string]string{"role": "member"}, bearer(admin)...); c != 200 {
			t.Fatalf("add member = %d %v", c, b)
		}
		b := loginMFA(t, e, "member@example.com")
		if b["mfa_enrollment_required"] != true || b["access_token"] != nil {
			t.Fatalf("member login under an MFA policy = %v", b)
		}
		et := b["enrollment_token"].(string)
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(et)...); c != 401 {
			t.Errorf("enrollment token opened /v1/me: %d", c)
		}
		c, dev, _ := call(t, "POST", e.url("/v1/me/mfa/email"), nil, bearer(et)...)
		if c != 201 {
			t.Fatalf("enrol with the enrollment token = %d %v", c, dev)
		}
		code := emailCode(t, e.mail.wait(t, "member@example.com", "verification code"))
		c, tok, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+dev["id"].(string)+"/confirm"), map[string]string{"code": code}, bearer(et)...)
		if c != 200 || tok["access_token"] == nil {
			t.Fatalf("confirm with the enrollment token = %d %v, want a login response", c, tok)
		}
		if !slices.Contains(amrOf(t, tok["access_token"].(string)), "mfa") {
			t.Errorf("amr after enrolment = %v", amrOf(t, tok["access_token"].(string)))
		}
		if b := loginMFA(t, e, "member@example.com"); b["mfa_required"] != true {
			t.Errorf("next login = %v, want the second factor", b)
		}
	})

	// The email code stands in for a text message only when one failed for
	// that sign-in: otherwise an SMS factor could be passed with the
	// mailbox alone.
	t.Run("EmailFallbackOnlyAfterSMSFailed", func(t *testing.T) {
		const email, phone = "fallback@example.com", "+14155552672"
		at := e.signUp(t, email)
		secrets = append(secrets, enrolSMS(t, e, tw, at, phone))
		b := loginMFA(t, e, email)
		mt := b["mfa_token"].(string)
		if m := toStrings(b["methods"]); !slices.Equal(m, []string{"sms"}) {
			t.Fatalf("methods = %v, want [sms]", m)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "email"}); c != 400 || b["code"] != "method_unavailable" {
			t.Errorf("email code before any SMS failed = %d %v, want 400 method_unavailable", c, b)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "email", "code": "123456"}); c != 400 || b["code"] != "method_unavailable" {
			t.Errorf("verify email before any SMS failed = %d %v, want 400 method_unavailable", c, b)
		}
		// The text message fails: the email code is sent instead.
		tw.refuse(phone)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "sms"}); c != 200 {
			t.Fatalf("challenge sms = %d %v", c, b)
		}
		code := emailCode(t, e.mail.wait(t, email, "verification code"))
		secrets = append(secrets, code)
		c, tok, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "email", "code": code})
		if c != 200 || tok["access_token"] == nil {
			t.Fatalf("verify the fallback email code = %d %v", c, tok)
		}
		if amr := amrOf(t, tok["access_token"].(string)); !slices.Contains(amr, "email") || !slices.Contains(amr, "mfa") || slices.Contains(amr, "sms") {
			t.Errorf("amr = %v, want pwd, mfa, email", amr)
		}
		// The fallback belongs to that sign-in only.
		mt = loginMFA(t, e, email)["mfa_token"].(string)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "email"}); c != 400 || b["code"] != "method_unavailable" {
			t.Errorf("email code in the next sign-in = %d %v, want 400 method_unavailable", c, b)
		}
	})

	// A sign-in by magic link has proved the mailbox already: the email
	// code cannot be its second factor, not even as the SMS fallback.
	t.Run("NoEmailFallbackAfterMagicLink", func(t *testing.T) {
		const email, phone = "fallback-magic@example.com", "+14155552673"
		at := e.signUp(t, email)
		secrets = append(secrets, enrolSMS(t, e, tw, at, phone))
		id := userID(t, e, at)
		call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": email})
		tok := magicToken(t, e.mail.wait(t, email, "sign-in link"))
		c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok})
		if c != 200 || b["mfa_required"] != true {
			t.Fatalf("magic link = %d %v, want the MFA step", c, b)
		}
		mt := b["mfa_token"].(string)
		tw.refuse(phone)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "sms"}); c != 200 {
			t.Fatalf("challenge sms = %d %v", c, b)
		}
		waitAudit(t, e, "mfa.sms_failed", id, 1)
		noEmailFallback(t, e, mt)
	})

	// Nor can an email device be the second factor of a magic-link
	// sign-in: with only that factor, the answer is to use the password.
	t.Run("NoEmailDeviceAfterMagicLink", func(t *testing.T) {
		const email = "email-factor-magic@example.com"
		at := e.signUp(t, email)
		c, dev, _ := call(t, "POST", e.url("/v1/me/mfa/email"), nil, bearer(at)...)
		if c != 201 {
			t.Fatalf("enrol email = %d %v", c, dev)
		}
		code := emailCode(t, e.mail.wait(t, email, "verification code"))
		secrets = append(secrets, code)
		if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+dev["id"].(string)+"/confirm"), map[string]string{"code": code}, bearer(at)...); c != 200 {
			t.Fatalf("confirm email = %d %v", c, b)
		}
		call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": email})
		tok := magicToken(t, e.mail.wait(t, email, "sign-in link"))
		if c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok}); c != 403 || b["code"] != "password_sign_in_required" || b["access_token"] != nil {
			t.Fatalf("magic link with only an email factor = %d %v, want 403 password_sign_in_required", c, b)
		}
		// With another factor too, the email one is not offered.
		secrets = append(secrets, enrolTOTP(t, e, at))
		call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": email})
		tok = magicToken(t, e.mail.wait(t, email, "sign-in link"))
		c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok})
		if c != 200 || b["mfa_required"] != true || slices.Contains(toStrings(b["methods"]), "email") || !slices.Contains(toStrings(b["methods"]), "totp") {
			t.Fatalf("magic link with TOTP and email factors = %d %v, want the MFA step with totp and without email", c, b)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": b["mfa_token"].(string), "method": "email"}); c != 400 || b["code"] != "method_unavailable" {
			t.Errorf("email challenge after a magic link = %d %v, want 400 method_unavailable", c, b)
		}
	})

	// An organisation that allows only text messages gets no email codes.
	t.Run("NoEmailFallbackAgainstPolicy", func(t *testing.T) {
		const email, phone = "fallback-policy@example.com", "+14155552674"
		at := e.signUp(t, email)
		secrets = append(secrets, enrolSMS(t, e, tw, at, phone))
		id := userID(t, e, at)
		joinOrg(t, e, admin(t), "sms-only", map[string]any{"mfa_required": true, "allowed_methods": []string{"sms"}}, id)
		mt := loginMFA(t, e, email)["mfa_token"].(string)
		tw.refuse(phone)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "sms"}); c != 200 {
			t.Fatalf("challenge sms = %d %v", c, b)
		}
		waitAudit(t, e, "mfa.sms_failed", id, 1)
		noEmailFallback(t, e, mt)
	})

	// When a policy disallows every factor the user has, the password alone
	// must not open enrolment: one of the existing factors comes first.
	t.Run("ForcedEnrolmentNeedsAnExistingFactor", func(t *testing.T) {
		const email = "forced@example.com"
		at := e.signUp(t, email)
		enrolEmailFactor(t, e, email, at)
		joinOrg(t, e, admin(t), "totp-only", map[string]any{"mfa_required": true, "allowed_methods": []string{"totp"}}, userID(t, e, at))
		b := loginMFA(t, e, email)
		if b["mfa_required"] != true || b["enrollment_token"] != nil || b["access_token"] != nil || !slices.Equal(toStrings(b["methods"]), []string{"email"}) {
			t.Fatalf("login = %v, want mfa_required with the existing factor (email) and no enrollment_token", b)
		}
		mt := b["mfa_token"].(string)
		if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/totp"), nil, bearer(mt)...); c != 401 {
			t.Fatalf("enrolment with the mfa_token = %d %v, want 401", c, b)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "email"}); c != 200 {
			t.Fatalf("challenge email = %d %v", c, b)
		}
		code := emailCode(t, e.mail.wait(t, email, "verification code"))
		secrets = append(secrets, code)
		c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "email", "code": code})
		if c != 200 || b["mfa_enrollment_required"] != true || b["access_token"] != nil || !slices.Equal(toStrings(b["methods"]), []string{"totp"}) {
			t.Fatalf("verify = %d %v, want mfa_enrollment_required for totp", c, b)
		}
		et := b["enrollment_token"].(string)
		c, enr, _ := call(t, "POST", e.url("/v1/me/mfa/totp"), nil, bearer(et)...)
		if c != 201 {
			t.Fatalf("enrol totp with the enrollment token = %d %v", c, enr)
		}
		secrets = append(secrets, enr["secret"].(string))
		c, tok, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+enr["id"].(string)+"/confirm"), map[string]string{"code": totpAt(t, enr["secret"].(string), time.Now())}, bearer(et)...)
		if c != 200 || tok["access_token"] == nil {
			t.Fatalf("confirm = %d %v, want a login response", c, tok)
		}
		amr := amrOf(t, tok["access_token"].(string))
		for _, want := range []string{"pwd", "mfa", "email", "otp"} {
			if !slices.Contains(amr, want) {
				t.Errorf("amr = %v, want %s in it", amr, want)
			}
		}
	})

	// Organisations whose allowed methods have nothing in common allow no
	// method, not every method.
	t.Run("PoliciesWithNoCommonMethod", func(t *testing.T) {
		const email = "conflict@example.com"
		at := e.signUp(t, email)
		secrets = append(secrets, enrolTOTP(t, e, at))
		id := userID(t, e, at)
		joinOrg(t, e, admin(t), "conflict-totp", map[string]any{"mfa_required": true, "allowed_methods": []string{"totp"}}, id)
		joinOrg(t, e, admin(t), "conflict-sms", map[string]any{"mfa_required": true, "allowed_methods": []string{"sms"}}, id)
		c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": strongPassword})
		if c != 403 || b["code"] != "mfa_policy_conflict" {
			t.Fatalf("login = %d %v, want 403 mfa_policy_conflict", c, b)
		}
	})

	// Every MFA change sends a notice, renaming and the default included.
	t.Run("RenameAndDefaultSendNotices", func(t *testing.T) {
		const email = "notices@example.com"
		at := e.signUp(t, email)
		enrolEmailFactor(t, e, email, at)
		e.mail.wait(t, email, "Security settings")
		secrets = append(secrets, enrolTOTP(t, e, at))
		e.mail.wait(t, email, "Security settings")
		ids := map[string]string{}
		_, devs, _ := call(t, "GET", e.url("/v1/me/mfa/devices"), nil, bearer(at)...)
		for _, d := range devs["devices"].([]any) {
			ids[d.(map[string]any)["type"].(string)] = d.(map[string]any)["id"].(string)
		}
		if c, b, _ := call(t, "PATCH", e.url("/v1/me/mfa/devices/"+ids["email"]), map[string]any{"name": "Work mail"}, bearer(at)...); c != 200 || b["name"] != "Work mail" {
			t.Fatalf("rename = %d %v", c, b)
		}
		if m := e.mail.wait(t, email, "Security settings"); !strings.Contains(m.Text, "renamed") || strings.Contains(m.Text, "Work mail") {
			t.Errorf("rename notice should say a factor was renamed, without the caller's text:\n%s", m.Text)
		}
		if c, b, _ := call(t, "PATCH", e.url("/v1/me/mfa/devices/"+ids["totp"]), map[string]any{"is_default": true}, bearer(at)...); c != 200 || b["is_default"] != true {
			t.Fatalf("set default = %d %v", c, b)
		}
		if m := e.mail.wait(t, email, "Security settings"); !strings.Contains(m.Text, "default") {
			t.Errorf("default notice should say the default changed:\n%s", m.Text)
		}
	})

	// Reauthentication by password counts in the login lockout.
	t.Run("ReauthenticationCountsInTheLoginLockout", func(t *testing.T) {
		const email = "reauth@example.com"
		at := e.signUp(t, email)
		for i := range 5 { // GATEHOUSE_LOCKOUT_THRESHOLD
			if c, b, _ := call(t, "POST", e.url("/v1/auth/reauthenticate"), map[string]string{"password": fmt.Sprintf("wrong password %d", i)}, bearer(at)...); c != 401 {
				t.Fatalf("wrong password %d = %d %v, want 401", i+1, c, b)
			}
		}
		c, b, h := call(t, "POST", e.url("/v1/auth/reauthenticate"), map[string]string{"password": strongPassword}, bearer(at)...)
		if c != 429 || b["code"] != "account_locked" || h.Get("Retry-After") == "" {
			t.Fatalf("reauthentication after 5 wrong passwords = %d %v, want 429 account_locked", c, b)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": strongPassword}); c != 429 || b["code"] != "account_locked" {
			t.Errorf("login after 5 wrong reauthentications = %d %v, want 429 account_locked", c, b)
		}
		e.mail.wait(t, email, "temporarily locked")
	})

	t.Run("NoSecretsAtRest", func(t *testing.T) {
		if len(secrets) < 20 {
			t.Fatalf("only %d secrets collected", len(secrets))
		}
		dump := dumpDatabase(t, e.db, e.dialect)
		for _, s := range secrets {
			for _, form := range []string{s, strings.ReplaceAll(s, "-", "")} {
				// Numeric codes only count standing alone, not inside the
				// digits of a timestamp.
				re := regexp.MustCompile(`(^|[^0-9A-Za-z])` + regexp.QuoteMeta(form) + `([^0-9A-Za-z]|$)`)
				if re.MatchString(dump) {
					t.Errorf("the database holds an MFA secret or code in plain text: %.4s…", form)
				}
			}
		}
	})
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
	}
	return out
}

// noEmailFallback checks that the sign-in can neither ask for nor use an
// email code.
func noEmailFallback(t *testing.T, e *accountEnv, mt string) {
	t.Helper()
	if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "email"}); c != 400 || b["code"] != "method_unavailable" {
		t.Errorf("challenge email = %d %v, want 400 method_unavailable", c, b)
	}
	if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "email", "code": "123456"}); c != 400 || b["code"] != "method_unavailable" {
		t.Errorf("verify email = %d %v, want 400 method_unavailable", c, b)
	}
}

// enrolTOTP gives the account a confirmed authenticator app and returns
// its secret.
func enrolTOTP(t *testing.T, e *accountEnv, at string) string {
	t.Helper()
	c, enr, _ := call(t, "POST", e.url("/v1/me/mfa/totp"), nil, bearer(at)...)
	if c != 201 {
		t.Fatalf("enrol totp = %d %v", c, enr)
	}
	secret := enr["secret"].(string)
	awayFromStepEdge()
	prev := totpAt(t, secret, time.Now().Add(-30*time.Second))
	if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+enr["id"].(string)+"/confirm"), map[string]string{"code": prev}, bearer(at)...); c != 200 {
		t.Fatalf("confirm totp = %d %v", c, b)
	}
	return secret
}

// awayFromStepEdge waits, when a TOTP time step ends within 3 seconds,
// for the next one: the server checks a code a moment after the test
// computed it, and a code of the previous step is two steps old once the
// step has turned.
func awayFromStepEdge() {
	if left := 30 - time.Now().Unix()%30; left <= 3 {
		time.Sleep(time.Duration(left)*time.Second + 100*time.Millisecond)
	}
}

// enrolSMS gives the account a confirmed phone and returns the
// confirmation code it was texted.
func enrolSMS(t *testing.T, e *accountEnv, tw *twilioEmulator, at, phone string) string {
	t.Helper()
	tw.mu.Lock()
	seen := len(tw.sent)
	tw.mu.Unlock()
	c, b, _ := call(t, "POST", e.url("/v1/me/mfa/sms"), map[string]string{"phone_number": phone}, bearer(at)...)
	if c != 201 {
		t.Fatalf("enrol sms = %d %v", c, b)
	}
	code, _ := tw.waitCode(t, phone, seen)
	if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+b["id"].(string)+"/confirm"), map[string]string{"code": code}, bearer(at)...); c != 200 {
		t.Fatalf("confirm sms = %d %v", c, b)
	}
	return code
}

func userID(t *testing.T, e *accountEnv, at string) string {
	t.Helper()
	_, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...)
	id, _ := me["id"].(string)
	if id == "" {
		t.Fatalf("/v1/me = %v", me)
	}
	return id
}

// joinOrg creates an organisation with the policy and adds the user.
func joinOrg(t *testing.T, e *accountEnv, admin, slug string, policy map[string]any, userID string) {
	t.Helper()
	c, org, _ := call(t, "POST", e.url("/v1/admin/organizations"), map[string]any{"name": slug, "slug": slug, "policy": policy}, bearer(admin)...)
	if c != 201 {
		t.Fatalf("create org = %d %v", c, org)
	}
	if c, b, _ := call(t, "PUT", e.url("/v1/admin/organizations/"+org["id"].(string)+"/members/"+userID), map[string]string{"role": "member"}, bearer(admin)...); c != 200 {
		t.Fatalf("add member = %d %v", c, b)
	}
}

// waitAudit waits until the user has at least n audit events of action.
func waitAudit(t *testing.T, e *accountEnv, action, subjectID string, n int) {
	t.Helper()
	q := "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2"
	if e.dialect == "sqlite" {
		q = "SELECT count(*) FROM audit_events WHERE action = ? AND subject_id = ?"
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got int
		if err := e.db.QueryRow(q, action, subjectID).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events of %s, want %d", got, action, subjectID, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMFALockoutEmbedded(t *testing.T) { runMFALockout(t, nil) }

func TestMFALockoutPostgresRedis(t *testing.T) { runMFALockout(t, postgresRedisEnv(t)) }

// wrongTOTP returns a code that no step of the secret around now accepts.
func wrongTOTP(t *testing.T, secret string) string {
	t.Helper()
	for _, c := range []string{"000000", "111111", "222222"} {
		ok := true
		for d := -2; d <= 2; d++ {
			ok = ok && totpAt(t, secret, time.Now().Add(time.Duration(d)*30*time.Second)) != c
		}
		if ok {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}

// runMFALockout checks the per-user lock of second-factor verification:
// wrong codes count across every mfa_token of the user (each login opens a
// fresh one), so that knowing the password does not allow guessing codes
// for ever.
func runMFALockout(t *testing.T, env map[string]string) {
	all := map[string]string{"GATEHOUSE_MFA_LOCKOUT_THRESHOLD": "3"}
	for k, v := range env {
		all[k] = v
	}
	e := newAccountEnv(t, all)
	verify := func(mt, code string) (int, map[string]any, http.Header) {
		return call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "totp", "code": code})
	}

	t.Run("WrongCodesAcrossTokensLock", func(t *testing.T) {
		const email = "guess@example.com"
		at := e.signUp(t, email)
		secret := enrolTOTP(t, e, at)
		wrong := wrongTOTP(t, secret)
		mt := loginMFA(t, e, email)["mfa_token"].(string)
		for i := range 2 {
			if c, b, _ := verify(mt, wrong); c != 401 || b["code"] != "invalid_code" {
				t.Fatalf("wrong code %d = %d %v", i+1, c, b)
			}
		}
		// A new login, a new mfa_token: the count goes on.
		mt = loginMFA(t, e, email)["mfa_token"].(string)
		if c, b, _ := verify(mt, wrong); c != 401 || b["code"] != "invalid_code" {
			t.Fatalf("third wrong code = %d %v", c, b)
		}
		c, b, h := verify(mt, totpAt(t, secret, time.Now()))
		if c != 429 || b["code"] != "mfa_locked" || h.Get("Retry-After") == "" {
			t.Fatalf("right code after 3 wrong ones = %d %v %v, want 429 mfa_locked with Retry-After", c, b, h)
		}
		// Another login does not help, and neither does reauthentication.
		mt = loginMFA(t, e, email)["mfa_token"].(string)
		if c, b, _ := verify(mt, totpAt(t, secret, time.Now())); c != 429 || b["code"] != "mfa_locked" {
			t.Errorf("right code in a new login = %d %v, want 429 mfa_locked", c, b)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/reauthenticate"), map[string]string{"method": "totp", "code": totpAt(t, secret, time.Now())}, bearer(at)...); c != 429 || b["code"] != "mfa_locked" {
			t.Errorf("reauthentication with a code while locked = %d %v, want 429 mfa_locked", c, b)
		}
		e.mail.wait(t, email, "temporarily locked")
		waitAudit(t, e, "security.mfa_locked", userID(t, e, at), 1)
	})

	t.Run("ARightCodeResetsTheCount", func(t *testing.T) {
		const email = "reset@example.com"
		at := e.signUp(t, email)
		secret := enrolTOTP(t, e, at)
		wrong := wrongTOTP(t, secret)
		mt := loginMFA(t, e, email)["mfa_token"].(string)
		for range 2 {
			verify(mt, wrong)
		}
		if c, b, _ := verify(mt, totpAt(t, secret, time.Now())); c != 200 {
			t.Fatalf("right code = %d %v", c, b)
		}
		mt = loginMFA(t, e, email)["mfa_token"].(string)
		for i := range 2 {
			if c, b, _ := verify(mt, wrong); c != 401 || b["code"] != "invalid_code" {
				t.Fatalf("wrong code %d after a right one = %d %v, want 401", i+1, c, b)
			}
		}
		if c, b, _ := verify(mt, totpAt(t, secret, time.Now().Add(30*time.Second))); c != 200 {
			t.Errorf("right code = %d %v", c, b)
		}
	})

	// An administrator lifts both locks at once (POST
	// /v1/admin/users/{id}/unlock): the user signs in with the password
	// and the code again; the unlock is recorded; a non-admin may not.
	t.Run("AnAdministratorUnlocks", func(t *testing.T) {
		const email = "locked-out@example.com"
		at := e.signUp(t, email)
		id := userID(t, e, at)
		secret := enrolTOTP(t, e, at)
		wrong := wrongTOTP(t, secret)
		mt := loginMFA(t, e, email)["mfa_token"].(string)
		for range 3 {
			verify(mt, wrong)
		}
		for range 5 {
			call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": "not the password at all"})
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": strongPassword}); c != 429 || b["code"] != "account_locked" {
			t.Fatalf("login after 5 wrong passwords = %d %v, want 429 account_locked", c, b)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/admin/users/"+id+"/unlock"), nil, bearer(at)...); c != 403 {
			t.Errorf("unlock by a non-admin = %d, want 403", c)
		}
		if _, code := e.cli(t, "users", "create", "--email", "unlocker@example.com", "--password-stdin", "--admin", "--verified"); code != 0 {
			t.Fatal("users create --admin failed")
		}
		admin := e.login(t, "unlocker@example.com", strongPassword)
		c, b, _ := call(t, "POST", e.url("/v1/admin/users/"+id+"/unlock"), nil, bearer(admin)...)
		if c != 200 || fmt.Sprint(b["locks_lifted"]) != "[mfa sign_in]" {
			t.Fatalf("unlock = %d %v, want both locks lifted", c, b)
		}
		mt = loginMFA(t, e, email)["mfa_token"].(string)
		if c, b, _ := verify(mt, totpAt(t, secret, time.Now())); c != 200 {
			t.Errorf("sign-in after the unlock = %d %v", c, b)
		}
		c, b, _ = call(t, "POST", e.url("/v1/admin/users/"+id+"/unlock"), nil, bearer(admin)...)
		if c != 200 || fmt.Sprint(b["locks_lifted"]) != "[]" {
			t.Errorf("unlock of an account not locked = %d %v, want nothing lifted", c, b)
		}
		waitAudit(t, e, "admin.user_unlocked", id, 2)
	})

	// Parallel guesses across several mfa_tokens: each is counted before
	// its code is checked, so no more than the threshold are ever checked.
	t.Run("ParallelGuesses", func(t *testing.T) {
		const email = "parallel@example.com"
		at := e.signUp(t, email)
		secret := enrolTOTP(t, e, at)
		wrong := wrongTOTP(t, secret)
		var tokens []string
		for range 3 {
			tokens = append(tokens, loginMFA(t, e, email)["mfa_token"].(string))
		}
		var mu sync.Mutex
		answers := map[string]int{}
		var wg sync.WaitGroup
		for i := range 9 {
			wg.Go(func() {
				c, b, _ := verify(tokens[i%3], wrong)
				mu.Lock()
				answers[fmt.Sprint(c, " ", b["code"])]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if answers["401 invalid_code"] != 3 || answers["429 mfa_locked"] != 6 {
			t.Errorf("answers to 9 parallel wrong codes = %v, want 3 checked (401 invalid_code) and 6 refused (429 mfa_locked)", answers)
		}
	})
}

func TestMFAParallelVerifyEmbedded(t *testing.T) { runMFAParallelVerify(t, nil) }

func TestMFAParallelVerifyPostgresRedis(t *testing.T) {
	runMFAParallelVerify(t, postgresRedisEnv(t))
}

// runMFAParallelVerify sends many verifications of one mfa_token at once,
// each with a right code: one signs in, and nothing one-time is spent by
// the others (issue 12). The per-user throttle lets 10 through and answers
// the rest 429 rate_limited; every other loser finds the sign-in over
// (401 invalid_mfa_token) — none is told its right code is wrong.
func runMFAParallelVerify(t *testing.T, env map[string]string) {
	e := newAccountEnv(t, env)
	sessions := func(t *testing.T, at string) int {
		t.Helper()
		q := "SELECT count(*) FROM sessions WHERE user_id = $1"
		if e.dialect == "sqlite" {
			q = "SELECT count(*) FROM sessions WHERE user_id = ?"
		}
		var n int
		if err := e.db.QueryRow(q, userID(t, e, at)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// race sends one verification per code at once and returns the access
	// tokens of the 200 answers and a count of the other answers.
	race := func(t *testing.T, mt, method string, codes []string) ([]string, map[string]int) {
		t.Helper()
		var (
			mu      sync.Mutex
			wg      sync.WaitGroup
			tokens  []string
			answers = map[string]int{}
		)
		start := make(chan struct{})
		for _, code := range codes {
			wg.Go(func() {
				<-start
				c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": method, "code": code})
				mu.Lock()
				defer mu.Unlock()
				if c == 200 {
					if at, _ := b["access_token"].(string); at != "" {
						tokens = append(tokens, at)
						return
					}
				}
				answers[fmt.Sprint(c, " ", b["code"])]++
			})
		}
		close(start)
		wg.Wait()
		return tokens, answers
	}
	losersOK := func(t *testing.T, answers map[string]int) {
		t.Helper()
		for a := range answers {
			if a != "401 invalid_mfa_token" && a != "429 rate_limited" {
				t.Errorf("a parallel verification with a right code answered %s (all answers but the 200: %v), want 401 invalid_mfa_token or 429 rate_limited", a, answers)
			}
		}
	}

	t.Run("BackupCodes", func(t *testing.T) {
		const email = "race-backup@example.com"
		at := e.signUp(t, email)
		enrolEmailFactor(t, e, email, at)
		c, bc, _ := call(t, "POST", e.url("/v1/me/mfa/backup-codes"), nil, bearer(at)...)
		codes := toStrings(bc["codes"])
		if c != 201 || len(codes) != 10 {
			t.Fatalf("backup codes = %d %v", c, bc)
		}
		before := sessions(t, at)
		mt := loginMFA(t, e, email)["mfa_token"].(string)
		// Twenty verifications, each of the ten codes twice.
		tokens, answers := race(t, mt, "backup_code", append(slices.Clone(codes), codes...))
		if len(tokens) != 1 {
			t.Fatalf("%d of 20 parallel verifications signed in (others: %v), want exactly 1", len(tokens), answers)
		}
		losersOK(t, answers)
		if got := sessions(t, at); got != before+1 {
			t.Errorf("sessions = %d after the race, want %d (exactly one new)", got, before+1)
		}
		_, devs, _ := call(t, "GET", e.url("/v1/me/mfa/devices"), nil, bearer(tokens[0])...)
		if devs["backup_codes_remaining"] != float64(9) {
			t.Errorf("backup codes left after one sign-in = %v, want 9", devs["backup_codes_remaining"])
		}
	})

	t.Run("EmailCode", func(t *testing.T) {
		const email = "race-email@example.com"
		at := e.signUp(t, email)
		enrolEmailFactor(t, e, email, at)
		before := sessions(t, at)
		mt := loginMFA(t, e, email)["mfa_token"].(string)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "email"}); c != 200 {
			t.Fatalf("challenge email = %d %v", c, b)
		}
		code := emailCode(t, e.mail.wait(t, email, "verification code"))
		tokens, answers := race(t, mt, "email", slices.Repeat([]string{code}, 20))
		if len(tokens) != 1 {
			t.Fatalf("%d of 20 parallel verifications signed in (others: %v), want exactly 1", len(tokens), answers)
		}
		losersOK(t, answers)
		if got := sessions(t, at); got != before+1 {
			t.Errorf("sessions = %d after the race, want %d (exactly one new)", got, before+1)
		}
	})

	// TOTP codes were one-time already (each time step is accepted once):
	// the losers are answered as those of the other methods.
	t.Run("TOTP", func(t *testing.T) {
		const email = "race-totp@example.com"
		at := e.signUp(t, email)
		secret := enrolTOTP(t, e, at)
		before := sessions(t, at)
		mt := loginMFA(t, e, email)["mfa_token"].(string)
		code := totpAt(t, secret, time.Now().Add(30*time.Second))
		tokens, answers := race(t, mt, "totp", slices.Repeat([]string{code}, 20))
		if len(tokens) != 1 {
			t.Fatalf("%d of 20 parallel verifications signed in (others: %v), want exactly 1", len(tokens), answers)
		}
		losersOK(t, answers)
		if got := sessions(t, at); got != before+1 {
			t.Errorf("sessions = %d after the race, want %d (exactly one new)", got, before+1)
		}
	})
}
