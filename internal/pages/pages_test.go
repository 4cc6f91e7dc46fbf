package pages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/user"
)

// fakeAccounts records the use cases called and answers with err.
type fakeAccounts struct {
	calls []string
	err   error
}

func (f *fakeAccounts) VerifyEmail(_ context.Context, token string, _ httpapi.Meta) (store.User, error) {
	f.calls = append(f.calls, "verify "+token)
	return store.User{Email: "a@example.com"}, f.err
}

func (f *fakeAccounts) ResetPassword(_ context.Context, token, pw string, _ httpapi.Meta) error {
	f.calls = append(f.calls, "reset "+token+" "+pw)
	return f.err
}

type fakeMagic struct{ calls []string }

func (f *fakeMagic) MagicLinkCode(_ context.Context, token string, _ httpapi.Meta) (string, error) {
	f.calls = append(f.calls, token)
	return "the-code", nil
}

// fakeSignIns records the "this wasn't me" tokens redeemed and answers
// with err.
type fakeSignIns struct {
	calls []string
	err   error
}

func (f *fakeSignIns) NotMe(_ context.Context, token string, _ httpapi.Meta) (int, error) {
	f.calls = append(f.calls, token)
	return 3, f.err
}

func newHandlers(t *testing.T, acc *fakeAccounts, logs *bytes.Buffer) (*Handlers, http.Handler) {
	t.Helper()
	table, err := httpapi.NewErrorTable(user.Errors())
	if err != nil {
		t.Fatal(err)
	}
	h := &Handlers{
		Accounts: acc, MagicLinks: &fakeMagic{}, SignIns: &fakeSignIns{}, Keys: (*secret.Keyring)(nil), Errors: table,
		Log: slog.New(slog.NewTextHandler(logs, nil)), Product: "Gatehouse",
		MagicLinkRedirect: "https://app.example.com/after?x=1",
	}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: h.Log, Errors: table})
	h.Routes(rt)
	return h, rt
}

var hidden = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// open GETs a page and returns the response and the form's cookie and
// anti-forgery token.
func open(t *testing.T, srv http.Handler, target string) (*httptest.ResponseRecorder, *http.Cookie, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	var c *http.Cookie
	for _, k := range rec.Result().Cookies() {
		if k.Name == CookieName {
			c = k
		}
	}
	m := hidden.FindStringSubmatch(rec.Body.String())
	if c == nil || m == nil {
		t.Fatalf("GET %s: no form cookie or token\n%s", target, rec.Body)
	}
	return rec, c, m[1]
}

func submit(srv http.Handler, path string, form url.Values, c *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}

// TestStyleHashInCSP: the one inline style is the one the policy allows.
func TestStyleHashInCSP(t *testing.T) {
	_, srv := newHandlers(t, &fakeAccounts{}, &bytes.Buffer{})
	rec, _, _ := open(t, srv, "/verify-email?token=abc")
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatal("no style element")
	}
	sum := sha256.Sum256([]byte(m[1]))
	want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, want) {
		t.Errorf("CSP %q lacks %q", csp, want)
	}
}

// TestTokenEscaped: the token from the URL lands in the page as text.
func TestTokenEscaped(t *testing.T) {
	_, srv := newHandlers(t, &fakeAccounts{}, &bytes.Buffer{})
	rec, _, _ := open(t, srv, "/reset-password?token="+url.QueryEscape(`"><script>alert(1)</script>`))
	if body := rec.Body.String(); strings.Contains(body, "<script>") || !strings.Contains(body, "&#34;&gt;&lt;script&gt;") {
		t.Errorf("token not escaped:\n%s", body)
	}
}

// TestPostNeedsCookieAndToken: no use case runs without both halves of
// the anti-forgery check.
func TestPostNeedsCookieAndToken(t *testing.T) {
	acc := &fakeAccounts{}
	_, srv := newHandlers(t, acc, &bytes.Buffer{})
	_, c, csrf := open(t, srv, "/verify-email?token=abc")
	_, c2, _ := open(t, srv, "/verify-email?token=abc")
	for name, tt := range map[string]struct {
		form url.Values
		c    *http.Cookie
	}{
		"no cookie":        {url.Values{"token": {"abc"}, "csrf": {csrf}}, nil},
		"no token":         {url.Values{"token": {"abc"}}, c},
		"other cookie":     {url.Values{"token": {"abc"}, "csrf": {csrf}}, c2},
		"cookie as token":  {url.Values{"token": {"abc"}, "csrf": {c.Value}}, c},
		"forged pair":      {url.Values{"token": {"abc"}, "csrf": {"x"}}, &http.Cookie{Name: CookieName, Value: "x"}},
		"empty pair":       {url.Values{"token": {"abc"}, "csrf": {""}}, &http.Cookie{Name: CookieName, Value: ""}},
		"token from query": {url.Values{"csrf": {csrf}}, c},
	} {
		t.Run(name, func(t *testing.T) {
			rec := submit(srv, "/verify-email?token=abc", tt.form, tt.c)
			if rec.Code != 403 && rec.Code != 400 {
				t.Errorf("status = %d, want 403 or 400", rec.Code)
			}
		})
	}
	if len(acc.calls) != 0 {
		t.Fatalf("use cases ran: %v", acc.calls)
	}
	if rec := submit(srv, "/verify-email", url.Values{"token": {"abc"}, "csrf": {csrf}}, c); rec.Code != 200 || len(acc.calls) != 1 {
		t.Fatalf("a proper POST = %d, calls %v", rec.Code, acc.calls)
	}
}

// TestErrors: a use case's error shows as the API words it, with its
// status; a server failure is logged and not shown.
func TestErrors(t *testing.T) {
	acc := &fakeAccounts{err: user.ErrInvalidToken}
	var logs bytes.Buffer
	_, srv := newHandlers(t, acc, &logs)
	_, c, csrf := open(t, srv, "/verify-email?token=abc")
	rec := submit(srv, "/verify-email", url.Values{"token": {"abc"}, "csrf": {csrf}}, c)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "The link is invalid, expired or was already used.") {
		t.Errorf("invalid token = %d\n%s", rec.Code, rec.Body)
	}
	acc.err = errors.New("connection refused to db.internal:5432")
	rec = submit(srv, "/verify-email", url.Values{"token": {"abc"}, "csrf": {csrf}}, c)
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "db.internal") {
		t.Errorf("server failure = %d\n%s", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "db.internal") || strings.Contains(logs.String(), "abc") {
		t.Errorf("log = %s, want the failure and not the token", logs.String())
	}
}

// TestResetFeedback: the policy's field errors come back on the form,
// and two different passwords never reach the use case.
func TestResetFeedback(t *testing.T) {
	acc := &fakeAccounts{err: httpapi.Validation(httpapi.FieldError{Field: "password", Rule: "min_length", Message: "must be at least 12 characters long"})}
	_, srv := newHandlers(t, acc, &bytes.Buffer{})
	_, c, csrf := open(t, srv, "/reset-password?token=abc")
	rec := submit(srv, "/reset-password", url.Values{"token": {"abc"}, "csrf": {csrf}, "password": {"one"}, "confirm": {"two"}}, c)
	if rec.Code != 422 || len(acc.calls) != 0 || !strings.Contains(rec.Body.String(), "not the same") {
		t.Errorf("mismatch = %d, calls %v\n%s", rec.Code, acc.calls, rec.Body)
	}
	rec = submit(srv, "/reset-password", url.Values{"token": {"abc"}, "csrf": {csrf}, "password": {"short"}, "confirm": {"short"}}, c)
	if body := rec.Body.String(); rec.Code != 422 || !strings.Contains(body, "The password must be at least 12 characters long.") || !strings.Contains(body, `name="csrf" value="`+csrf+`"`) {
		t.Errorf("policy refusal = %d\n%s", rec.Code, body)
	}
}

// TestMagicRedirect: the code joins the redirect's own query; the page's
// policy lets the form follow it there.
func TestMagicRedirect(t *testing.T) {
	h, srv := newHandlers(t, &fakeAccounts{}, &bytes.Buffer{})
	rec, c, csrf := open(t, srv, "/magic-link?token=abc")
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://app.example.com;") {
		t.Errorf("CSP = %q", csp)
	}
	rec = submit(srv, "/magic-link", url.Values{"token": {"abc"}, "csrf": {csrf}}, c)
	if rec.Code != 303 || rec.Header().Get("Location") != "https://app.example.com/after?code=the-code&x=1" {
		t.Errorf("POST = %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if calls := h.MagicLinks.(*fakeMagic).calls; len(calls) != 1 || calls[0] != "abc" {
		t.Errorf("calls = %v", calls)
	}
}

// TestNotMe: opening the link shows the button and redeems nothing (mail
// scanners open links); the button redeems the token once, through the
// use case; a bad token shows the API's words.
func TestNotMe(t *testing.T) {
	h, srv := newHandlers(t, &fakeAccounts{}, &bytes.Buffer{})
	signIns := h.SignIns.(*fakeSignIns)
	rec, c, csrf := open(t, srv, "/not-me?token=abc")
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `<button type="submit">`) || !strings.Contains(body, `action="/not-me"`) || !strings.Contains(body, `name="token" value="abc"`) {
		t.Fatalf("GET /not-me = %d\n%s", rec.Code, body)
	}
	if rec.Header().Get("Referrer-Policy") != "no-referrer" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v: the token must not leave in a Referer nor be cached", rec.Header())
	}
	if len(signIns.calls) != 0 {
		t.Fatalf("opening the link redeemed it: %v", signIns.calls)
	}
	if rec := submit(srv, "/not-me", url.Values{"token": {"abc"}, "csrf": {"forged"}}, c); rec.Code != 403 || len(signIns.calls) != 0 {
		t.Fatalf("forged POST = %d, calls %v", rec.Code, signIns.calls)
	}
	rec = submit(srv, "/not-me", url.Values{"token": {"abc"}, "csrf": {csrf}}, c)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "All your sessions were ended") || !strings.Contains(rec.Body.String(), "Reset your password") {
		t.Errorf("POST /not-me = %d\n%s", rec.Code, rec.Body)
	}
	if len(signIns.calls) != 1 || signIns.calls[0] != "abc" {
		t.Errorf("redeemed %v, want abc once", signIns.calls)
	}
	signIns.err = user.ErrInvalidToken
	rec = submit(srv, "/not-me", url.Values{"token": {"abc"}, "csrf": {csrf}}, c)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "The link is invalid, expired or was already used.") {
		t.Errorf("used link = %d\n%s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/not-me", nil))
	if rec.Code != 400 || len(signIns.calls) != 2 {
		t.Errorf("GET /not-me without a token = %d, calls %v", rec.Code, signIns.calls)
	}
}
