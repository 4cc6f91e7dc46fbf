package app

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// browser is a plain HTTP client with a cookie jar that does not follow
// redirects, the way a browser without JavaScript drives the landing
// pages of the emailed links.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return res, string(body)
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	// eventHandler finds inline script in attributes (onclick=…).
	eventHandler = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
)

// pageForm is a landing page's form: its target and hidden fields.
func pageForm(t *testing.T, body string) (string, url.Values) {
	t.Helper()
	m := formAction.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form on the page:\n%s", body)
	}
	f := url.Values{}
	for _, h := range hiddenField.FindAllStringSubmatch(body, -1) {
		f.Set(h[1], h[2])
	}
	if f.Get("token") == "" || f.Get("csrf") == "" {
		t.Fatalf("the form lacks the token or the anti-forgery token: %v\n%s", f, body)
	}
	return m[1], f
}

// checkPage asserts what every landing page answers with: HTML under a
// CSP that runs no script and loads nothing, posts forms only to this
// server (and the extra targets), sends no Referer and is not cached;
// accessible structure; no external asset.
func checkPage(t *testing.T, res *http.Response, body string, status int, formTargets ...string) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("status = %d, want %d\n%s", res.StatusCode, status, body)
	}
	h := res.Header
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q", ct)
	}
	csp := h.Get("Content-Security-Policy")
	wantAction := strings.Join(append([]string{"form-action 'self'"}, formTargets...), " ") + ";"
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "style-src 'sha256-", wantAction} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q allows scripts or unsafe sources", csp)
	}
	if got := h.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("Referrer-Policy = %q", got)
	}
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
	for _, want := range []string{`<html lang="en">`, "<h1>", "<title>", `<meta name="referrer" content="no-referrer">`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s:\n%s", want, body)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://", "javascript:"} {
		if strings.Contains(strings.ToLower(body), bad) {
			t.Errorf("page contains %q:\n%s", bad, body)
		}
	}
	if m := eventHandler.FindString(body); m != "" {
		t.Errorf("page has an inline event handler %q", m)
	}
}

// strictCookie asserts the form cookie is HttpOnly and SameSite=Strict.
func strictCookie(t *testing.T, res *http.Response) {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name == "gatehouse_form" {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("form cookie %v: want HttpOnly and SameSite=Strict", c)
			}
			return
		}
	}
	t.Errorf("the page set no form cookie: %v", res.Header.Values("Set-Cookie"))
}

func TestLandingPagesEmbedded(t *testing.T) {
	runLandingPages(t, newAccountEnv(t, map[string]string{"GATEHOUSE_REDIRECT_ALLOWLIST": appRedirect}))
}

func TestLandingPagesPostgresRedis(t *testing.T) {
	env := postgresRedisEnv(t)
	env["GATEHOUSE_REDIRECT_ALLOWLIST"] = appRedirect
	runLandingPages(t, newAccountEnv(t, env))
}

// runLandingPages follows the emailed links from the outbox as a browser
// would.
func runLandingPages(t *testing.T, e *accountEnv) {
	var tokens []string // every emailed token, none of which may be logged

	t.Run("VerifyEmail", func(t *testing.T) {
		const email = "page-verify@example.com"
		if c, b, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": email, "password": strongPassword, "name": "Test User"}); c != 201 {
			t.Fatalf("register = %d %v", c, b)
		}
		tok := linkToken(t, e.mail.wait(t, email, "Verify your email"), "verify-email")
		tokens = append(tokens, tok)
		link := e.url("/verify-email?token=" + tok)

		// A mail scanner opens the link, twice: nothing changes.
		scanner := newBrowser(t)
		for range 2 {
			res, body := scanner.get(link)
			checkPage(t, res, body, 200)
			strictCookie(t, res)
			if !strings.Contains(body, `<button type="submit">Verify email address</button>`) {
				t.Fatalf("no button on the page:\n%s", body)
			}
		}
		if verified := e.emailVerified(t, email); verified {
			t.Fatal("opening the link verified the address")
		}

		b := newBrowser(t)
		res, body := b.get(link)
		action, form := pageForm(t, body)
		if action != "/verify-email" {
			t.Errorf("form action = %q, want /verify-email without the token", action)
		}
		if form.Get("token") != tok {
			t.Errorf("hidden token = %q, want the emailed one", form.Get("token"))
		}
		strictCookie(t, res)

		// Without the anti-forgery token, or from a client without the
		// page's cookie (a cross-site form), the POST is refused.
		noCSRF := url.Values{"token": {tok}}
		res, body = b.post(e.url(action), noCSRF)
		checkPage(t, res, body, 403)
		forged := newBrowser(t)
		res, body = forged.post(e.url(action), form)
		checkPage(t, res, body, 403)
		// Another page's token does not fit this cookie.
		_, other := pageForm(t, func() string { _, b := scanner.get(link); return b }())
		wrong := url.Values{"token": {tok}, "csrf": {other.Get("csrf")}}
		res, body = b.post(e.url(action), wrong)
		checkPage(t, res, body, 403)
		if e.emailVerified(t, email) {
			t.Fatal("a refused POST verified the address")
		}

		res, body = b.post(e.url(action), form)
		checkPage(t, res, body, 200)
		if !strings.Contains(body, "verified") || !strings.Contains(body, email) {
			t.Errorf("outcome page:\n%s", body)
		}
		if !e.emailVerified(t, email) {
			t.Fatal("the POST did not verify the address")
		}

		// The link is used up: the error page, with a 4xx status.
		res, body = b.post(e.url(action), form)
		checkPage(t, res, body, 400)
		if !strings.Contains(body, "invalid, expired or was already used") || !strings.Contains(body, `role="alert"`) {
			t.Errorf("used-link page:\n%s", body)
		}
		// A link without a token, and a made-up token.
		res, body = b.get(e.url("/verify-email"))
		checkPage(t, res, body, 400)
		_, body = b.get(e.url("/verify-email?token=made-up"))
		_, bad := pageForm(t, body)
		res, body = b.post(e.url("/verify-email"), bad)
		checkPage(t, res, body, 400)
	})

	t.Run("ResetPassword", func(t *testing.T) {
		const email = "page-reset@example.com"
		e.signUp(t, email)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/password/forgot"), map[string]string{"email": email}); c != 202 {
			t.Fatalf("forgot = %d %v", c, b)
		}
		tok := linkToken(t, e.mail.wait(t, email, "Reset your"), "reset-password")
		tokens = append(tokens, tok)
		link := e.url("/reset-password?token=" + tok)

		b := newBrowser(t)
		res, body := b.get(link)
		checkPage(t, res, body, 200)
		strictCookie(t, res)
		for _, want := range []string{`<label for="password">`, `id="password" name="password" autocomplete="new-password"`, `<label for="confirm">`, `<button type="submit">Change password</button>`} {
			if !strings.Contains(body, want) {
				t.Errorf("reset form lacks %s:\n%s", want, body)
			}
		}
		action, form := pageForm(t, body)
		if action != "/reset-password" {
			t.Errorf("form action = %q", action)
		}
		newPassword := "a different, longer passphrase 7"

		post := func(f url.Values, pw, confirm string) (*http.Response, string) {
			t.Helper()
			g := url.Values{}
			for k, v := range f {
				g[k] = v
			}
			g.Set("password", pw)
			g.Set("confirm", confirm)
			return b.post(e.url(action), g)
		}
		// Refused without the anti-forgery token, or from another client.
		res, body = post(url.Values{"token": {tok}}, newPassword, newPassword)
		checkPage(t, res, body, 403)
		res, body = func() (*http.Response, string) {
			f := url.Values{"token": {tok}, "csrf": {form.Get("csrf")}, "password": {newPassword}, "confirm": {newPassword}}
			return newBrowser(t).post(e.url(action), f)
		}()
		checkPage(t, res, body, 403)
		// Two different passwords: the form again, nothing changed.
		res, body = post(form, newPassword, newPassword+"x")
		checkPage(t, res, body, 422)
		if !strings.Contains(body, "not the same") {
			t.Errorf("mismatch page:\n%s", body)
		}
		// The policy's feedback, as the API gives it, on the form again.
		res, body = post(form, "short", "short")
		checkPage(t, res, body, 422)
		if !strings.Contains(body, "The password must be at least") || !strings.Contains(body, `aria-invalid="true"`) {
			t.Errorf("policy feedback page:\n%s", body)
		}
		if _, again := pageForm(t, body); again.Get("token") != tok || again.Get("csrf") != form.Get("csrf") {
			t.Errorf("the form shown again lost its token or anti-forgery token: %v", again)
		}
		e.login(t, email, strongPassword) // still the old password

		res, body = post(form, newPassword, newPassword)
		checkPage(t, res, body, 200)
		if !strings.Contains(body, "Your password was changed") {
			t.Errorf("outcome page:\n%s", body)
		}
		e.login(t, email, newPassword)
		if c, _, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": strongPassword}); c != 401 {
			t.Errorf("login with the old password after the reset = %d, want 401", c)
		}
		res, body = post(form, newPassword+"2", newPassword+"2")
		checkPage(t, res, body, 400)
		if !strings.Contains(body, "invalid, expired or was already used") {
			t.Errorf("used-link page:\n%s", body)
		}
	})

	t.Run("MagicLink", func(t *testing.T) {
		const email = "page-magic@example.com"
		e.signUp(t, email)
		ask := func() string {
			t.Helper()
			if c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": email}); c != 202 {
				t.Fatalf("magic link = %d %v", c, b)
			}
			tok := magicToken(t, e.mail.wait(t, email, "sign-in link"))
			tokens = append(tokens, tok)
			return tok
		}
		tok := ask()
		link := e.url("/magic-link?token=" + tok)
		appOrigin := "https://app.example.com"

		scanner := newBrowser(t)
		res, body := scanner.get(link)
		checkPage(t, res, body, 200, appOrigin)
		strictCookie(t, res)
		if !strings.Contains(body, `<button type="submit">Sign in</button>`) {
			t.Fatalf("no button on the page:\n%s", body)
		}

		b := newBrowser(t)
		_, body = b.get(link)
		action, form := pageForm(t, body)
		if action != "/magic-link" {
			t.Errorf("form action = %q", action)
		}
		res, body = b.post(e.url(action), url.Values{"token": {tok}})
		checkPage(t, res, body, 403) // an error page has no form: no target beyond self
		res, body = newBrowser(t).post(e.url(action), form)
		checkPage(t, res, body, 403)

		// The link still works after being opened and refused: one click
		// hands a one-time code to the application.
		res, _ = b.post(e.url(action), form)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in POST = %d, want 303 to the application", res.StatusCode)
		}
		if got := res.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("Referrer-Policy of the redirect = %q", got)
		}
		loc, err := url.Parse(res.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, loc.Query().Get("code"))
		signedIn := exchangeCode(t, e, loc)
		if signedIn["access_token"] == nil {
			t.Fatalf("exchange = %v, want tokens", signedIn)
		}
		if c, _, _ := call(t, "POST", e.url("/v1/auth/oauth/exchange"), map[string]string{"code": loc.Query().Get("code")}); c != 400 {
			t.Errorf("second exchange of the code = %d, want 400", c)
		}
		// The link is used up.
		res, body = b.post(e.url(action), form)
		checkPage(t, res, body, 400)
		if !strings.Contains(body, "invalid, expired or was already used") {
			t.Errorf("used-link page:\n%s", body)
		}

		// Opening a fresh link changes nothing: the API still accepts it.
		tok = ask()
		res, body = scanner.get(e.url("/magic-link?token=" + tok))
		checkPage(t, res, body, 200, appOrigin)
		if c, out, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok}); c != 200 || out["access_token"] == nil {
			t.Errorf("magic-link verify after the page was opened = %d %v", c, out)
		}
	})

	t.Run("NoTokenInLogs", func(t *testing.T) {
		logs := e.s.logs.String()
		for _, tok := range tokens {
			if tok != "" && strings.Contains(logs, tok) {
				t.Errorf("the server log contains an emailed token or code %q", tok)
			}
		}
		if !strings.Contains(logs, `"path":"/verify-email"`) {
			t.Errorf("the access log has no line of the pages: is it captured?")
		}
	})
}

// TestMagicLinkPageWithoutRedirect: with no application to hand the
// sign-in to, the page says what to do and leaves the link unused.
func TestMagicLinkPageWithoutRedirect(t *testing.T) {
	e := newAccountEnv(t, nil)
	const email = "page-noapp@example.com"
	e.signUp(t, email)
	if c, b, _ := call(t, "POST", e.url("/v1/auth/magic-link"), map[string]string{"email": email}); c != 202 {
		t.Fatalf("magic link = %d %v", c, b)
	}
	tok := magicToken(t, e.mail.wait(t, email, "sign-in link"))
	b := newBrowser(t)
	res, body := b.get(e.url("/magic-link?token=" + tok))
	checkPage(t, res, body, 200)
	if strings.Contains(body, "<form") || !strings.Contains(body, "Go back to the application") {
		t.Errorf("page without a redirect:\n%s", body)
	}
	res, body = b.post(e.url("/magic-link"), url.Values{"token": {tok}})
	checkPage(t, res, body, 409)
	if c, out, _ := call(t, "POST", e.url("/v1/auth/magic-link/verify"), map[string]string{"token": tok}); c != 200 || out["access_token"] == nil {
		t.Errorf("magic-link verify after the page = %d %v, want the link unused", c, out)
	}
}

// emailVerified reads whether the account of the address is verified
// straight from the database, so that checking changes nothing.
func (e *accountEnv) emailVerified(t *testing.T, email string) bool {
	t.Helper()
	q := "SELECT email_verified_at IS NOT NULL FROM users WHERE email_normalized = $1"
	if e.dialect == "sqlite" {
		q = "SELECT email_verified_at IS NOT NULL FROM users WHERE email_normalized = ?"
	}
	var verified bool
	if err := e.db.QueryRow(q, strings.ToLower(email)).Scan(&verified); err != nil {
		t.Fatal(err)
	}
	return verified
}
