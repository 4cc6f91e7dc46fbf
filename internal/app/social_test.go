package app

import (
	"bytes"
	"database/sql"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
)

const appRedirect = "https://app.example.com/after"

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// doNoRedirect sends req to Gatehouse without following redirects and
// checks the answer against the OpenAPI document; its body is read.
func doNoRedirect(t testing.TB, req *http.Request) *http.Response {
	t.Helper()
	res, body := doWith(t, noRedirects, req)
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res
}

// oauthFlow runs start → provider → callback and returns the final
// redirect (to the application) as a URL.
type oauthFlow struct {
	t      *testing.T
	e      *accountEnv
	cookie *http.Cookie
	cbPath string // the callback path and query the provider sent back
}

func startOAuth(t *testing.T, e *accountEnv, provider string) *oauthFlow {
	t.Helper()
	return startOAuthWith(t, e, provider, nil)
}

// startOAuthWith is startOAuth with more parameters for the start.
func startOAuthWith(t *testing.T, e *accountEnv, provider string, extra url.Values) *oauthFlow {
	t.Helper()
	q := url.Values{"redirect_to": {appRedirect}}
	for k, v := range extra {
		q[k] = v
	}
	req, _ := http.NewRequest("GET", e.url("/v1/auth/oauth/"+provider+"/start?"+q.Encode()), nil)
	res := doNoRedirect(t, req)
	if res.StatusCode != 302 {
		t.Fatalf("start = %d", res.StatusCode)
	}
	f := &oauthFlow{t: t, e: e}
	for _, c := range res.Cookies() {
		if c.Name == "gatehouse_oauth" {
			f.cookie = c
		}
	}
	if f.cookie == nil || !f.cookie.HttpOnly {
		t.Fatalf("no HttpOnly browser-binding cookie: %v", res.Header["Set-Cookie"])
	}
	authURL := res.Header.Get("Location")
	if !strings.Contains(authURL, "code_challenge=") || !strings.Contains(authURL, "code_challenge_method=S256") || !strings.Contains(authURL, "nonce=") || !strings.Contains(authURL, "state=") {
		t.Errorf("authorisation URL lacks PKCE, nonce or state: %s", authURL)
	}
	// The provider authenticates the (queued) user and redirects back.
	res, err := noRedirects.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	back, err := url.Parse(res.Header.Get("Location"))
	if err != nil || res.StatusCode != 302 {
		t.Fatalf("provider answered %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	f.cbPath = back.Path + "?" + back.RawQuery
	return f
}

// callback delivers the provider's redirect to Gatehouse with the given
// cookie and returns Gatehouse's answer.
func (f *oauthFlow) callback(cookie *http.Cookie) (int, *url.URL) {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.e.s.public+f.cbPath, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	res := doNoRedirect(f.t, req)
	loc, _ := url.Parse(res.Header.Get("Location"))
	return res.StatusCode, loc
}

func exchangeCode(t *testing.T, e *accountEnv, loc *url.URL) map[string]any {
	t.Helper()
	if loc == nil || !strings.HasPrefix(loc.String(), appRedirect) {
		t.Fatalf("callback went to %v, want %s", loc, appRedirect)
	}
	for k := range loc.Query() {
		if k != "code" {
			t.Fatalf("the redirect carries %q: %s", k, loc)
		}
	}
	code, body, _ := call(t, "POST", e.url("/v1/auth/oauth/exchange"), map[string]string{"code": loc.Query().Get("code")})
	if code != 200 {
		t.Fatalf("exchange = %d %v", code, body)
	}
	return body
}

// accountExists runs a social sign-in whose verified email is that of an
// account not linked to the identity, and returns the link_token.
func accountExists(t *testing.T, e *accountEnv, m *mockoidc.MockOIDC, subject, email string) string {
	t.Helper()
	m.QueueUser(&mockoidc.MockUser{Subject: subject, Email: email, EmailVerified: true})
	f := startOAuth(t, e, "okta")
	_, loc := f.callback(f.cookie)
	q := loc.Query()
	if q.Get("error") != "account_exists" || q.Get("link_token") == "" || q.Get("code") != "" {
		t.Fatalf("social sign-in as %s = %s, want error=account_exists with a link_token", email, loc)
	}
	return q.Get("link_token")
}

// identities lists the providers of the caller's linked identities.
func identities(t *testing.T, e *accountEnv, at string) []string {
	t.Helper()
	c, body, _ := call(t, "GET", e.url("/v1/me/identities"), nil, bearer(at)...)
	if c != 200 {
		t.Fatalf("identities = %d %v", c, body)
	}
	var out []string
	for _, id := range body["identities"].([]any) {
		out = append(out, id.(map[string]any)["provider"].(string))
	}
	return out
}

// enrolEmailFactor gives the account a confirmed email second factor.
func enrolEmailFactor(t *testing.T, e *accountEnv, email, at string) {
	t.Helper()
	c, dev, _ := call(t, "POST", e.url("/v1/me/mfa/email"), nil, bearer(at)...)
	if c != 201 {
		t.Fatalf("enrol email = %d %v", c, dev)
	}
	code := emailCode(t, e.mail.wait(t, email, "verification code"))
	if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+dev["id"].(string)+"/confirm"), map[string]string{"code": code}, bearer(at)...); c != 200 {
		t.Fatalf("confirm email = %d %v", c, b)
	}
}

// confirmLink proves the account of a link_token with its password.
func confirmLink(t *testing.T, e *accountEnv, linkToken string) (int, map[string]any) {
	t.Helper()
	c, body, _ := call(t, "POST", e.url("/v1/auth/oauth/link/confirm"), map[string]string{"link_token": linkToken, "password": strongPassword})
	return c, body
}

// verifyEmailCode completes a login's MFA step with an emailed code.
func verifyEmailCode(t *testing.T, e *accountEnv, email, mfaToken string) map[string]any {
	t.Helper()
	if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mfaToken, "method": "email"}); c != 200 {
		t.Fatalf("challenge email = %d %v", c, b)
	}
	code := emailCode(t, e.mail.wait(t, email, "verification code"))
	c, tok, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mfaToken, "method": "email", "code": code})
	if c != 200 || tok["access_token"] == nil {
		t.Fatalf("verify email = %d %v", c, tok)
	}
	return tok
}

func TestSocialSignIn(t *testing.T) { runSocialSignIn(t, nil) }

func TestSocialSignInPostgresRedis(t *testing.T) {
	runSocialSignIn(t, postgresRedisEnv(t))
}

// newSocialEnv starts a mock OpenID provider and a server that knows it
// twice: as "okta", and as "trusted", whose verified emails are trusted
// for linking (auto-link on); settings from each of more are added.
func newSocialEnv(t *testing.T, more ...map[string]string) (*accountEnv, *mockoidc.MockOIDC) {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	all := map[string]string{
		"GATEHOUSE_SOCIAL_OKTA_TYPE":             "oidc",
		"GATEHOUSE_SOCIAL_OKTA_ISSUER":           m.Issuer(),
		"GATEHOUSE_SOCIAL_OKTA_CLIENT_ID":        m.ClientID,
		"GATEHOUSE_SOCIAL_OKTA_CLIENT_SECRET":    m.ClientSecret,
		"GATEHOUSE_SOCIAL_TRUSTED_TYPE":          "oidc",
		"GATEHOUSE_SOCIAL_TRUSTED_ISSUER":        m.Issuer(),
		"GATEHOUSE_SOCIAL_TRUSTED_CLIENT_ID":     m.ClientID,
		"GATEHOUSE_SOCIAL_TRUSTED_CLIENT_SECRET": m.ClientSecret,
		"GATEHOUSE_SOCIAL_TRUSTED_AUTO_LINK":     "true",
		"GATEHOUSE_REDIRECT_ALLOWLIST":           appRedirect,
	}
	for _, env := range more {
		for k, v := range env {
			all[k] = v
		}
	}
	return newAccountEnv(t, all), m
}

func runSocialSignIn(t *testing.T, env map[string]string) {
	e, m := newSocialEnv(t, env)

	var samID string
	t.Run("SignUpThenSignIn", func(t *testing.T) {
		m.QueueUser(&mockoidc.MockUser{Subject: "okta-sam", Email: "sam@example.com", EmailVerified: true})
		f := startOAuth(t, e, "okta")
		code, loc := f.callback(f.cookie)
		if code != 302 {
			t.Fatalf("callback = %d", code)
		}
		tok := exchangeCode(t, e, loc)
		at := tok["access_token"].(string)
		amr := amrOf(t, at)
		if !contains(amr, "fed") || !contains(amr, "okta") {
			t.Errorf("amr = %v, want fed and the provider", amr)
		}
		_, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...)
		if me["email"] != "sam@example.com" || me["email_verified"] != true {
			t.Fatalf("/v1/me = %v", me)
		}
		samID = me["id"].(string)
		_, ids, _ := call(t, "GET", e.url("/v1/me/identities"), nil, bearer(at)...)
		if l := ids["identities"].([]any); len(l) != 1 || l[0].(map[string]any)["provider"] != "okta" {
			t.Errorf("identities = %v", ids)
		}
		// The code works once; the state works once.
		if c, _, _ := call(t, "POST", e.url("/v1/auth/oauth/exchange"), map[string]string{"code": loc.Query().Get("code")}); c != 400 {
			t.Errorf("second exchange = %d, want 400", c)
		}
		if c, _ := f.callback(f.cookie); c != 400 {
			t.Errorf("replayed state = %d, want 400", c)
		}
		// Unlinking the only way in is refused.
		id := ids["identities"].([]any)[0].(map[string]any)["id"].(string)
		if c, b, _ := call(t, "DELETE", e.url("/v1/me/identities/"+id), nil, bearer(at)...); c != 409 || b["code"] != "last_sign_in_method" {
			t.Errorf("unlink last method = %d %v", c, b)
		}

		m.QueueUser(&mockoidc.MockUser{Subject: "okta-sam", Email: "sam@example.com", EmailVerified: true})
		f = startOAuth(t, e, "okta")
		_, loc = f.callback(f.cookie)
		at = exchangeCode(t, e, loc)["access_token"].(string)
		if _, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); me["id"] != samID {
			t.Errorf("second sign-in found user %v, want %s", me["id"], samID)
		}
	})

	t.Run("CodeBoundByChallenge", func(t *testing.T) {
		// The example of RFC 7636, appendix B.
		const verifier, challenge = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
		withChallenge := url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		code := func(extra url.Values) string {
			t.Helper()
			m.QueueUser(&mockoidc.MockUser{Subject: "okta-pkce", Email: "pkce@example.com", EmailVerified: true})
			f := startOAuthWith(t, e, "okta", extra)
			_, loc := f.callback(f.cookie)
			if loc.Query().Get("code") == "" {
				t.Fatalf("callback = %s", loc)
			}
			return loc.Query().Get("code")
		}
		exchange := func(code, verifier string) (int, map[string]any) {
			t.Helper()
			in := map[string]string{"code": code}
			if verifier != "" {
				in["code_verifier"] = verifier
			}
			c, b, _ := call(t, "POST", e.url("/v1/auth/oauth/exchange"), in)
			return c, b
		}
		// A code planted in an application that started with a challenge
		// (or taken from it) is useless without the verifier.
		if c, b := exchange(code(withChallenge), ""); c != 400 || b["code"] != "invalid_code" {
			t.Errorf("exchange without the verifier = %d %v, want 400 invalid_code", c, b)
		}
		if c, b := exchange(code(withChallenge), "another-verifier-of-the-right-length-0123456789"); c != 400 {
			t.Errorf("exchange with another verifier = %d %v, want 400", c, b)
		}
		if c, b := exchange(code(withChallenge), verifier); c != 200 || b["access_token"] == nil {
			t.Errorf("exchange with the verifier = %d %v, want tokens", c, b)
		}
		// A verifier for a flow that had no challenge: the challenge was
		// stripped on the way.
		if c, b := exchange(code(nil), verifier); c != 400 {
			t.Errorf("exchange with a verifier but no challenge = %d %v, want 400", c, b)
		}
		// Without either, as before.
		if c, b := exchange(code(nil), ""); c != 200 {
			t.Errorf("exchange without a challenge = %d %v, want tokens", c, b)
		}
		for _, bad := range []url.Values{
			{"code_challenge": {challenge}, "code_challenge_method": {"plain"}},
			{"code_challenge": {"short"}},
			{"code_challenge_method": {"S256"}},
		} {
			c, b, _ := call(t, "GET", e.url("/v1/auth/oauth/okta/start?redirect_to="+url.QueryEscape(appRedirect)+"&"+bad.Encode()), nil)
			if c != 400 || b["code"] != "invalid_code_challenge" {
				t.Errorf("start with %v = %d %v, want 400 invalid_code_challenge", bad, c, b)
			}
		}
	})

	t.Run("ForeignBrowserState", func(t *testing.T) {
		m.QueueUser(&mockoidc.MockUser{Subject: "okta-x", Email: "x@example.com", EmailVerified: true})
		f := startOAuth(t, e, "okta")
		if c, _ := f.callback(&http.Cookie{Name: "gatehouse_oauth", Value: "another-browser"}); c != 400 {
			t.Errorf("state from another browser = %d, want 400", c)
		}
		if c, _ := f.callback(nil); c != 400 {
			t.Errorf("state without the cookie = %d, want 400", c)
		}
	})

	t.Run("NoTakeoverOfExistingAccount", func(t *testing.T) {
		e.signUp(t, "victim@example.com")
		m.QueueUser(&mockoidc.MockUser{Subject: "okta-attacker", Email: "victim@example.com", EmailVerified: true})
		f := startOAuth(t, e, "okta")
		_, loc := f.callback(f.cookie)
		q := loc.Query()
		if q.Get("error") != "account_exists" || q.Get("link_token") == "" || q.Get("code") != "" {
			t.Fatalf("matching email = %s, want error=account_exists with a link_token and no code", loc)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/auth/oauth/link/confirm"), map[string]string{"link_token": q.Get("link_token"), "password": "not the password at all"}); c != 401 {
			t.Errorf("link confirm with a wrong password = %d, want 401", c)
		}
		c, tok, _ := call(t, "POST", e.url("/v1/auth/oauth/link/confirm"), map[string]string{"link_token": q.Get("link_token"), "password": strongPassword})
		if c != 200 || tok["access_token"] == nil {
			t.Fatalf("link confirm = %d %v", c, tok)
		}
		m.QueueUser(&mockoidc.MockUser{Subject: "okta-attacker", Email: "victim@example.com", EmailVerified: true})
		f = startOAuth(t, e, "okta")
		_, loc = f.callback(f.cookie)
		at := exchangeCode(t, e, loc)["access_token"].(string)
		if _, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); me["email"] != "victim@example.com" {
			t.Errorf("after the link, sign-in reached %v", me["email"])
		}
	})

	t.Run("UnverifiedEmailNeverLinks", func(t *testing.T) {
		e.signUp(t, "owner@example.com")
		m.QueueUser(&mockoidc.MockUser{Subject: "okta-unverified", Email: "owner@example.com", EmailVerified: false})
		f := startOAuth(t, e, "okta")
		_, loc := f.callback(f.cookie)
		if q := loc.Query(); q.Get("error") != "email_not_verified" || q.Get("link_token") != "" || q.Get("code") != "" {
			t.Errorf("unverified provider email = %s", loc)
		}
	})

	t.Run("MagicLink", func(t *testing.T) {
		// The request does the same work for an address with an account
		// and one without: it enqueues one job, which looks the address up.
		const kind = "social.magic_link"
		before := jobCount(t, e, kind)
		code, known, _ := call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": "victim@example.com"})
		if n := jobCount(t, e, kind); n != before+1 {
			t.Errorf("jobs after a request for an account = %d, want %d", n, before+1)
		}
		code2, unknown, _ := call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": "nobody@example.com"})
		if n := jobCount(t, e, kind); n != before+2 {
			t.Errorf("jobs after a request for no account = %d, want %d", n, before+2)
		}
		if code != 202 || code2 != 202 || known["message"] != unknown["message"] {
			t.Errorf("magic link = %d %v / %d %v", code, known, code2, unknown)
		}
		m := e.mail.wait(t, "victim@example.com", "sign-in link")
		waitJobsDone(t, e, kind)
		e.mail.none(t, "nobody@example.com", 300*time.Millisecond)
		tok := magicToken(t, m)
		c, res, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok})
		if c != 200 || res["access_token"] == nil {
			t.Fatalf("magic link verify = %d %v", c, res)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok}); c != 400 {
			t.Errorf("magic link reused = %d, want 400", c)
		}
		// A verified account keeps its password.
		e.login(t, "victim@example.com", strongPassword)
		// MFA still applies (with a factor other than the mailbox, which
		// the link proved already: see TestMFA*/NoEmailDeviceAfterMagicLink).
		enrolTOTP(t, e, res["access_token"].(string))
		call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": "victim@example.com"})
		tok = magicToken(t, e.mail.wait(t, "victim@example.com", "sign-in link"))
		c, res, _ = call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok})
		if c != 200 || res["mfa_required"] != true || res["access_token"] != nil {
			t.Errorf("magic link with MFA = %d %v, want the MFA step", c, res)
		}
	})

	t.Run("MagicLinkToAFormerAddress", func(t *testing.T) {
		at := e.signUp(t, "mover@example.com")
		if c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": "mover@example.com"}); c != 202 {
			t.Fatalf("magic link = %d %v", c, b)
		}
		tok := magicToken(t, e.mail.wait(t, "mover@example.com", "sign-in link"))
		if c, me, _ := call(t, "PATCH", e.url("/v1/me"), map[string]any{"email": "mover.new@example.com"}, bearer(at)...); c != 200 {
			t.Fatalf("email change = %d %v", c, me)
		}
		vt := linkToken(t, e.mail.wait(t, "mover.new@example.com", ""), "verify-email")
		if c, b, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": vt}); c != 200 {
			t.Fatalf("confirm email change = %d %v", c, b)
		}
		// The link proved a mailbox that is no longer the account's.
		if c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok}); c != 400 || b["code"] != "invalid_code" {
			t.Errorf("magic link sent to the former address = %d %v, want 400 invalid_code", c, b)
		}
	})

	t.Run("MagicLinkEndsPreRegistration", func(t *testing.T) {
		// Someone registers the address with their own password and never
		// verifies it; the mailbox's owner then signs in by link.
		const email = "prey@example.com"
		register(t, e, email)
		at := magicSignIn(t, e, email)["access_token"].(string)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": strongPassword}); c != 401 {
			t.Errorf("the pre-registrant's password after the owner's magic link = %d %v, want 401", c, b)
		}
		if _, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); me["email_verified"] != true {
			t.Errorf("/v1/me = %v, want the address verified", me)
		}
		if acts := activity(t, e, at); !contains(acts, "user.unverified_credentials_cleared") {
			t.Errorf("activity = %v, want user.unverified_credentials_cleared", acts)
		}
		// The owner is told what was removed.
		if m := e.mail.wait(t, email, "Security settings"); !strings.Contains(m.Text, "were removed") || strings.Contains(m.Text, "Squatter") {
			t.Errorf("notice of the clearing = %q, want it to say what happened, without the pre-registrant's name", m.Text)
		}
	})

	t.Run("AutoLinkEndsPreRegistration", func(t *testing.T) {
		const email = "prey2@example.com"
		register(t, e, email)
		tok := socialSignIn(t, e, m, "trusted", "trusted-prey2", email)
		at, _ := tok["access_token"].(string)
		if at == "" {
			t.Fatalf("auto-linked sign-in = %v", tok)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": strongPassword}); c != 401 {
			t.Errorf("the pre-registrant's password after the owner's auto-linked sign-in = %d %v, want 401", c, b)
		}
		if ids := identities(t, e, at); len(ids) != 1 || ids[0] != "trusted" {
			t.Errorf("identities = %v, want trusted", ids)
		}
		if _, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(at)...); me["email_verified"] != true {
			t.Errorf("/v1/me = %v, want the address verified", me)
		}

		// Auto-linking to a verified account leaves its password alone.
		e.signUp(t, "trusting@example.com")
		socialSignIn(t, e, m, "trusted", "trusted-trusting", "trusting@example.com")
		e.login(t, "trusting@example.com", strongPassword)
	})

	t.Run("LinkNeedsRecentAuthentication", func(t *testing.T) {
		const email = "stale@example.com"
		e.signUp(t, email)
		login := loginFull(t, e, email, strongPassword)
		ageAuthTime(t, e, login["session_id"].(string), 10*time.Minute)
		c, rb := refresh(t, e, login["refresh_token"].(string))
		if c != 200 {
			t.Fatalf("refresh = %d %v", c, rb)
		}
		stale := rb["access_token"].(string)
		if at, _ := claimsOf(t, stale)["auth_time"].(float64); time.Since(time.Unix(int64(at), 0)) < 9*time.Minute {
			t.Fatalf("auth_time of the refreshed token = %v, want 10 minutes ago", at)
		}
		if c, b, _ := linkStart(t, e, "okta", appRedirect, stale); c != 403 || b["code"] != "reauthentication_required" {
			t.Fatalf("link with an old authentication = %d %v, want 403 reauthentication_required", c, b)
		}
		c, re, _ := call(t, "POST", e.url("/v1/auth/reauthenticate"), map[string]string{"password": strongPassword}, bearer(stale)...)
		if c != 200 {
			t.Fatalf("reauthenticate = %d %v", c, re)
		}
		fresh := re["access_token"].(string)
		c, b, cookie := linkStart(t, e, "okta", appRedirect, fresh)
		if c != 200 || cookie == nil {
			t.Fatalf("link after reauthenticating = %d %v", c, b)
		}
		if loc := finishLink(t, e, m, b["authorization_url"].(string), cookie, "okta-stale", "stale-elsewhere@example.net"); loc.Query().Get("linked") != "okta" {
			t.Fatalf("link = %s", loc)
		}
	})

	t.Run("LinkRedirectOnAllowlist", func(t *testing.T) {
		at := e.signUp(t, "redirects@example.com")
		for _, bad := range []string{"https://evil.example/steal", appRedirect + "/../x", "javascript:alert(1)"} {
			if c, b, _ := linkStart(t, e, "okta", bad, at); c != 400 || b["code"] != "redirect_not_allowed" {
				t.Errorf("link with redirect_to=%s = %d %v, want 400 redirect_not_allowed", bad, c, b)
			}
		}
		for _, good := range []string{appRedirect, ""} {
			if c, b, _ := linkStart(t, e, "okta", good, at); c != 200 {
				t.Errorf("link with redirect_to=%q = %d %v, want 200", good, c, b)
			}
		}
	})

	t.Run("LinkWaitsForTheSecondFactor", func(t *testing.T) {
		const email = "guarded@example.com"
		at := e.signUp(t, email)
		enrolEmailFactor(t, e, email, at)
		lt := accountExists(t, e, m, "okta-guarded", email)
		c, res := confirmLink(t, e, lt)
		if c != 200 || res["mfa_required"] != true || res["access_token"] != nil || res["mfa_token"] == nil {
			t.Fatalf("link confirm with MFA = %d %v, want the MFA step", c, res)
		}
		// The password alone links nothing.
		if ids := identities(t, e, at); len(ids) != 0 {
			t.Fatalf("identities before the second factor = %v, want none", ids)
		}
		if c, _ := confirmLink(t, e, lt); c != 400 {
			t.Errorf("link token reused = %d, want 400", c)
		}
		tok := verifyEmailCode(t, e, email, res["mfa_token"].(string))
		if ids := identities(t, e, tok["access_token"].(string)); len(ids) != 1 || ids[0] != "okta" {
			t.Fatalf("identities after the second factor = %v, want okta", ids)
		}
		// The identity now signs in to the account, through its second factor.
		m.QueueUser(&mockoidc.MockUser{Subject: "okta-guarded", Email: email, EmailVerified: true})
		f := startOAuth(t, e, "okta")
		_, loc := f.callback(f.cookie)
		if b := exchangeCode(t, e, loc); b["mfa_required"] != true || b["access_token"] != nil {
			t.Errorf("social sign-in after the link = %v, want the MFA step", b)
		}
	})

	t.Run("AbandonedSecondFactorNeverLinks", func(t *testing.T) {
		const email = "abandoned@example.com"
		at := e.signUp(t, email)
		enrolEmailFactor(t, e, email, at)

		// The MFA step of the confirmation is never completed; a later
		// login with its own second factor does not carry the link.
		c, res := confirmLink(t, e, accountExists(t, e, m, "okta-abandoned", email))
		if c != 200 || res["mfa_required"] != true {
			t.Fatalf("link confirm with MFA = %d %v, want the MFA step", c, res)
		}
		verifyEmailCode(t, e, email, loginMFA(t, e, email)["mfa_token"].(string))
		if ids := identities(t, e, at); len(ids) != 0 {
			t.Fatalf("identities after an abandoned MFA step = %v, want none", ids)
		}

		// Wrong codes kill the confirmation's mfa_token, and the link with it.
		c, res = confirmLink(t, e, accountExists(t, e, m, "okta-abandoned", email))
		if c != 200 || res["mfa_required"] != true {
			t.Fatalf("link confirm with MFA = %d %v, want the MFA step", c, res)
		}
		mt := res["mfa_token"].(string)
		for range 5 {
			if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/verify"), map[string]string{"mfa_token": mt, "method": "email", "code": "000000"}); c != 401 {
				t.Fatalf("wrong code = %d %v", c, b)
			}
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/mfa/challenge"), map[string]string{"mfa_token": mt, "method": "email"}); c != 401 || b["code"] != "invalid_mfa_token" {
			t.Fatalf("mfa_token after 5 wrong codes = %d %v, want invalid_mfa_token", c, b)
		}
		if ids := identities(t, e, at); len(ids) != 0 {
			t.Errorf("identities after a failed MFA step = %v, want none", ids)
		}
		// Still unlinked: a social sign-in is asked to link again.
		accountExists(t, e, m, "okta-abandoned", email)
	})
}

// TestSocialLinkWaitsForEnrollment: when a policy forces enrolment, a link
// confirmed with the password waits until the factor is enrolled.
func TestSocialLinkWaitsForEnrollment(t *testing.T) {
	e, m := newSocialEnv(t, map[string]string{"GATEHOUSE_MFA_REQUIRED": "true"})
	const email = "enrolling@example.com"
	if c, b, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": email, "password": strongPassword, "name": "Test User"}); c != 201 {
		t.Fatalf("register = %d %v", c, b)
	}
	vt := linkToken(t, e.mail.wait(t, email, "Verify your email"), "verify-email")
	if c, b, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": vt}); c != 200 {
		t.Fatalf("verify = %d %v", c, b)
	}

	c, res := confirmLink(t, e, accountExists(t, e, m, "okta-enrolling", email))
	if c != 200 || res["mfa_enrollment_required"] != true || res["access_token"] != nil || res["enrollment_token"] == nil {
		t.Fatalf("link confirm under a required MFA policy = %d %v, want enrolment", c, res)
	}
	et := res["enrollment_token"].(string)
	// Not linked before the enrolment: the identity still finds only the email.
	accountExists(t, e, m, "okta-enrolling", email)

	c, dev, _ := call(t, "POST", e.url("/v1/me/mfa/email"), nil, bearer(et)...)
	if c != 201 {
		t.Fatalf("enrol with the enrollment token = %d %v", c, dev)
	}
	code := emailCode(t, e.mail.wait(t, email, "verification code"))
	c, tok, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+dev["id"].(string)+"/confirm"), map[string]string{"code": code}, bearer(et)...)
	if c != 200 || tok["access_token"] == nil {
		t.Fatalf("confirm with the enrollment token = %d %v, want a login response", c, tok)
	}
	if ids := identities(t, e, tok["access_token"].(string)); len(ids) != 1 || ids[0] != "okta" {
		t.Fatalf("identities after the enrolment = %v, want okta", ids)
	}
}

func magicToken(t *testing.T, m message) string {
	t.Helper()
	i := strings.Index(m.Text, "/magic-link?token=")
	if i < 0 {
		t.Fatalf("no magic link in %q", m.Text)
	}
	rest := m.Text[i+len("/magic-link?token="):]
	end := strings.IndexFunc(rest, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
	if end < 0 {
		end = len(rest)
	}
	return rest[:end]
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestSocialLinkFromSessionAndBreaker(t *testing.T) {
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	e := newAccountEnv(t, map[string]string{
		"GATEHOUSE_SOCIAL_CORP_TYPE":          "oidc",
		"GATEHOUSE_SOCIAL_CORP_ISSUER":        m.Issuer(),
		"GATEHOUSE_SOCIAL_CORP_CLIENT_ID":     m.ClientID,
		"GATEHOUSE_SOCIAL_CORP_CLIENT_SECRET": m.ClientSecret,
		"GATEHOUSE_REDIRECT_ALLOWLIST":        appRedirect,
	})
	at := e.signUp(t, "linker@example.com")

	// Link from a signed-in session: the start URL comes back as JSON.
	req, _ := http.NewRequest("POST", e.url("/v1/me/identities/corp/link?redirect_to="+url.QueryEscape(appRedirect)), nil)
	req.Header.Set("Authorization", "Bearer "+at)
	res := doNoRedirect(t, req)
	var out map[string]string
	jsonDecode(res, &out)
	res.Body.Close()
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "gatehouse_oauth" {
			cookie = c
		}
	}
	m.QueueUser(&mockoidc.MockUser{Subject: "corp-42", Email: "someone-else@corp.example", EmailVerified: true})
	pres, err := noRedirects.Get(out["authorization_url"])
	if err != nil {
		t.Fatal(err)
	}
	pres.Body.Close()
	back, _ := url.Parse(pres.Header.Get("Location"))
	f := &oauthFlow{t: t, e: e, cookie: cookie, cbPath: back.Path + "?" + back.RawQuery}
	_, loc := f.callback(cookie)
	if loc.Query().Get("linked") != "corp" {
		t.Fatalf("link from session = %s", loc)
	}
	_, ids, _ := call(t, "GET", e.url("/v1/me/identities"), nil, bearer(at)...)
	list := ids["identities"].([]any)
	if len(list) != 1 {
		t.Fatalf("identities = %v", ids)
	}
	// With a password, the identity is not the last way in: unlinking works.
	id := list[0].(map[string]any)["id"].(string)
	if c, _, _ := call(t, "DELETE", e.url("/v1/me/identities/"+id), nil, bearer(at)...); c != 204 {
		t.Errorf("unlink = %d", c)
	}

	// A provider that keeps failing opens the circuit: start answers 503.
	var flows []*oauthFlow
	for range 5 {
		m.QueueUser(&mockoidc.MockUser{Subject: "corp-43", Email: "x@corp.example", EmailVerified: true})
		flows = append(flows, startOAuth(t, e, "corp"))
	}
	m.Shutdown()
	for _, f := range flows {
		_, loc := f.callback(f.cookie)
		if loc.Query().Get("error") != "provider_unavailable" {
			t.Fatalf("callback with the provider down = %s", loc)
		}
	}
	code, body, _ := call(t, "GET", e.url("/v1/auth/oauth/corp/start?redirect_to="+url.QueryEscape(appRedirect)), nil)
	if code != 503 || body["code"] != "provider_unavailable" || !strings.Contains(body["detail"].(string), "magic-link") {
		t.Errorf("start with the circuit open = %d %v", code, body)
	}
	_, metrics := get(t, e.s.admin+"/metrics")
	if !strings.Contains(string(metrics), `gatehouse_social_logins_total{outcome="provider_unavailable",provider="corp"} 5`) {
		t.Errorf("metrics lack the provider outcome counter")
	}
}

// jobCount counts the jobs of a kind in River's table.
func jobCount(t *testing.T, e *accountEnv, kind string) int {
	t.Helper()
	q := "SELECT count(*) FROM river_job WHERE kind = ?"
	if e.dialect == "postgres" {
		q = "SELECT count(*) FROM river_job WHERE kind = $1"
	}
	var n int
	if err := e.db.QueryRow(q, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitJobsDone waits until no job of the kind is left to work.
func waitJobsDone(t *testing.T, e *accountEnv, kind string) {
	t.Helper()
	q := "SELECT count(*) FROM river_job WHERE kind = ? AND state NOT IN ('completed', 'cancelled', 'discarded')"
	if e.dialect == "postgres" {
		q = "SELECT count(*) FROM river_job WHERE kind = $1 AND state NOT IN ('completed', 'cancelled', 'discarded')"
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := e.db.QueryRow(q, kind).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s jobs still pending", n, kind)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ageAuthTime moves a session's auth_time back by d, as if its user had
// signed in that long ago: access tokens refreshed from it carry that time.
func ageAuthTime(t *testing.T, e *accountEnv, sessionID string, d time.Duration) {
	t.Helper()
	at := time.Now().Add(-d).UTC()
	if e.dialect == "postgres" {
		if _, err := e.db.Exec("UPDATE sessions SET auth_time = $1 WHERE id = $2", at, sessionID); err != nil {
			t.Fatal(err)
		}
		return
	}
	db, err := sql.Open("sqlite", "file:"+testConfig(t, e.cfgEnv).SQLitePath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE sessions SET auth_time = ? WHERE id = ?", at.UnixMicro(), sessionID); err != nil {
		t.Fatal(err)
	}
}

// linkStart asks to link provider to the signed-in account and returns the
// answer and the browser-binding cookie.
func linkStart(t *testing.T, e *accountEnv, provider, redirectTo, at string) (int, map[string]any, *http.Cookie) {
	t.Helper()
	u := e.url("/v1/me/identities/" + provider + "/link")
	if redirectTo != "" {
		u += "?redirect_to=" + url.QueryEscape(redirectTo)
	}
	c, body, h := call(t, "POST", u, nil, bearer(at)...)
	var cookie *http.Cookie
	for _, ck := range (&http.Response{Header: h}).Cookies() {
		if ck.Name == "gatehouse_oauth" {
			cookie = ck
		}
	}
	return c, body, cookie
}

// finishLink takes a started link to the provider, which signs in as
// subject, and back to Gatehouse; it returns where Gatehouse sent the
// browser.
func finishLink(t *testing.T, e *accountEnv, m *mockoidc.MockOIDC, authURL string, cookie *http.Cookie, subject, email string) *url.URL {
	t.Helper()
	m.QueueUser(&mockoidc.MockUser{Subject: subject, Email: email, EmailVerified: true})
	res, err := noRedirects.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	back, _ := url.Parse(res.Header.Get("Location"))
	f := &oauthFlow{t: t, e: e, cookie: cookie, cbPath: back.Path + "?" + back.RawQuery}
	_, loc := f.callback(cookie)
	return loc
}

// activity lists the actions of the caller's activity trail.
func activity(t *testing.T, e *accountEnv, at string) []string {
	t.Helper()
	c, body, _ := call(t, "GET", e.url("/v1/me/activity"), nil, bearer(at)...)
	if c != 200 {
		t.Fatalf("activity = %d %v", c, body)
	}
	var out []string
	for _, ev := range body["events"].([]any) {
		out = append(out, ev.(map[string]any)["action"].(string))
	}
	return out
}

// register creates an account and never verifies it: a pre-registration
// by someone who does not own the mailbox.
func register(t *testing.T, e *accountEnv, email string) {
	t.Helper()
	if c, b, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": email, "password": strongPassword, "name": "Squatter"}); c != 201 {
		t.Fatalf("register %s = %d %v", email, c, b)
	}
}

// magicSignIn signs in with an emailed link.
func magicSignIn(t *testing.T, e *accountEnv, email string) map[string]any {
	t.Helper()
	if c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": email}); c != 202 {
		t.Fatalf("magic link = %d %v", c, b)
	}
	tok := magicToken(t, e.mail.wait(t, email, "sign-in link"))
	c, res, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok})
	if c != 200 {
		t.Fatalf("magic link verify = %d %v", c, res)
	}
	return res
}

// socialSignIn signs in through provider as subject with a verified email
// and returns the answer of the code exchange.
func socialSignIn(t *testing.T, e *accountEnv, m *mockoidc.MockOIDC, provider, subject, email string) map[string]any {
	t.Helper()
	m.QueueUser(&mockoidc.MockUser{Subject: subject, Email: email, EmailVerified: true})
	f := startOAuth(t, e, provider)
	_, loc := f.callback(f.cookie)
	return exchangeCode(t, e, loc)
}

// TestSocialPreRegistration: where unverified accounts may sign in, a
// pre-registrant can hold sessions, a second factor and a linked identity
// on an address they do not own; the owner's first sign-in through the
// mailbox (a magic link, or a provider trusted for linking) ends all of it.
func TestSocialPreRegistration(t *testing.T) { runSocialPreRegistration(t, nil) }

func TestSocialPreRegistrationPostgresRedis(t *testing.T) {
	runSocialPreRegistration(t, postgresRedisEnv(t))
}

func runSocialPreRegistration(t *testing.T, env map[string]string) {
	e, m := newSocialEnv(t, map[string]string{"GATEHOUSE_REQUIRE_VERIFIED_EMAIL": "false"}, env)

	// squat registers the address, signs in and enrols a TOTP factor, as
	// someone who does not own the mailbox can; it returns the sign-in.
	squat := func(t *testing.T, email string) map[string]any {
		t.Helper()
		register(t, e, email)
		login := loginFull(t, e, email, strongPassword)
		at := login["access_token"].(string)
		c, enr, _ := call(t, "POST", e.url("/v1/me/mfa/totp"), nil, bearer(at)...)
		if c != 201 {
			t.Fatalf("enrol TOTP = %d %v", c, enr)
		}
		code := totpAt(t, enr["secret"].(string), time.Now())
		if c, b, _ := call(t, "POST", e.url("/v1/me/mfa/devices/"+enr["id"].(string)+"/confirm"), map[string]string{"code": code}, bearer(at)...); c != 200 {
			t.Fatalf("confirm TOTP = %d %v", c, b)
		}
		return login
	}
	// ousted checks that nothing the pre-registrant set up still works.
	ousted := func(t *testing.T, email string, squatter map[string]any, ownerToken string) {
		t.Helper()
		if c, b, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": strongPassword}); c != 401 {
			t.Errorf("the pre-registrant's password = %d %v, want 401", c, b)
		}
		if c, _, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(squatter["access_token"].(string))...); c != 401 {
			t.Errorf("the pre-registrant's access token = %d, want 401", c)
		}
		if c, b := refresh(t, e, squatter["refresh_token"].(string)); c == 200 {
			t.Errorf("the pre-registrant's refresh token = %d %v, want refused", c, b)
		}
		c, devs, _ := call(t, "GET", e.url("/v1/me/mfa/devices"), nil, bearer(ownerToken)...)
		if c != 200 || len(devs["devices"].([]any)) != 0 {
			t.Errorf("the owner's second factors = %d %v, want none", c, devs)
		}
	}

	t.Run("MagicLink", func(t *testing.T) {
		const email = "owner@example.com"
		squatter := squat(t, email)
		// The pre-registrant links their own external account, a way in
		// that would outlive the password.
		c, b, cookie := linkStart(t, e, "okta", appRedirect, squatter["access_token"].(string))
		if c != 200 {
			t.Fatalf("link start = %d %v", c, b)
		}
		if loc := finishLink(t, e, m, b["authorization_url"].(string), cookie, "okta-squatter", "squatter@evil.example"); loc.Query().Get("linked") != "okta" {
			t.Fatalf("link = %s", loc)
		}
		// A sign-in through that identity is under way.
		m.QueueUser(&mockoidc.MockUser{Subject: "okta-squatter", Email: "squatter@evil.example", EmailVerified: true})
		f := startOAuth(t, e, "okta")
		_, pending := f.callback(f.cookie)
		if pending.Query().Get("code") == "" {
			t.Fatalf("the pre-registrant's social sign-in = %s", pending)
		}

		res := magicSignIn(t, e, email)
		at, _ := res["access_token"].(string)
		if at == "" {
			t.Fatalf("the owner's magic link = %v, want tokens without the pre-registrant's second factor", res)
		}
		ousted(t, email, squatter, at)
		if ids := identities(t, e, at); len(ids) != 0 {
			t.Errorf("the owner's identities = %v, want none", ids)
		}
		if c, b, _ := call(t, "POST", e.url("/v1/auth/oauth/exchange"), map[string]string{"code": pending.Query().Get("code")}); c != 400 {
			t.Errorf("the pre-registrant's pending social sign-in = %d %v, want 400", c, b)
		}
		// The pre-registrant's external account no longer reaches it.
		tok := socialSignIn(t, e, m, "okta", "okta-squatter", "squatter@evil.example")
		if tok["access_token"] != nil {
			if _, me, _ := call(t, "GET", e.url("/v1/me"), nil, bearer(tok["access_token"].(string))...); me["email"] == email {
				t.Errorf("the pre-registrant's identity still signs in to %s", email)
			}
		}
	})

	t.Run("AutoLink", func(t *testing.T) {
		const email = "owner2@example.com"
		squatter := squat(t, email)
		tok := socialSignIn(t, e, m, "trusted", "trusted-owner2", email)
		at, _ := tok["access_token"].(string)
		if at == "" {
			t.Fatalf("the owner's auto-linked sign-in = %v, want tokens without the pre-registrant's second factor", tok)
		}
		ousted(t, email, squatter, at)
		if ids := identities(t, e, at); len(ids) != 1 || ids[0] != "trusted" {
			t.Errorf("identities = %v, want trusted", ids)
		}
	})
}
