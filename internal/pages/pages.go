// Package pages serves the landing pages of the links Gatehouse emails
// (APP_URL/verify-email, /reset-password, /magic-link and /not-me, each
// with ?token=…) for installations whose APP_URL is Gatehouse itself, until a
// hosted UI exists. Operators who host their own pages point APP_URL at
// them and never reach these.
//
// The pages are small server-rendered HTML forms that work without
// JavaScript under a strict Content-Security-Policy. Opening a link
// changes nothing: mail scanners fetch links, and would otherwise verify
// addresses, burn sign-in links and sign users out. The GET shows a button; the POST,
// protected against cross-site requests by a token bound to a cookie,
// does the work through the same use cases as the JSON API. The emailed
// token moves from the URL into a hidden form field, the pages send no
// Referer, and the access log records paths without query strings.
package pages

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// The paths of the emailed links (internal/user and internal/social build
// them on APP_URL).
const (
	VerifyEmailPath   = "/verify-email"
	ResetPasswordPath = "/reset-password"
	MagicLinkPath     = "/magic-link"
	// NotMePath is the "this wasn't me" link of a new-sign-in email
	// (internal/session builds it).
	NotMePath = "/not-me"
)

// CookieName is the cookie the forms' anti-forgery token is bound to.
const CookieName = "gatehouse_form"

// csrfPurpose is the Pseudonym purpose deriving a form's token from the
// cookie.
const csrfPurpose = "page-form-csrf"

// cookieTTL is how long a page's form may wait for its click.
const cookieTTL = time.Hour

//go:embed templates
var files embed.FS

var (
	style     = mustRead("templates/style.css")
	styleHash = func() string {
		sum := sha256.Sum256([]byte(style))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}()
	layout = template.Must(template.ParseFS(files, "templates/layout.html"))
	views  = map[string]*template.Template{
		"verify":  view("verify.html"),
		"reset":   view("reset.html"),
		"magic":   view("magic.html"),
		"notme":   view("notme.html"),
		"message": view("message.html"),
	}
)

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func view(name string) *template.Template {
	return template.Must(template.Must(layout.Clone()).ParseFS(files, "templates/"+name))
}

// Accounts are the account use cases the verification and reset pages
// call (user.Service).
type Accounts interface {
	VerifyEmail(ctx context.Context, token string, m httpapi.Meta) (store.User, error)
	ResetPassword(ctx context.Context, token, pw string, m httpapi.Meta) error
}

// MagicLinks trades a magic link's token for a one-time code the
// application exchanges at POST /v1/auth/oauth/exchange
// (social.Service).
type MagicLinks interface {
	MagicLinkCode(ctx context.Context, token string, m httpapi.Meta) (string, error)
}

// SignIns redeems the "this wasn't me" link of a new-sign-in email
// (session.Service): it ends every session of the user and requires a
// password reset, and returns how many sessions ended.
type SignIns interface {
	NotMe(ctx context.Context, token string, m httpapi.Meta) (int, error)
}

// Pseudonyms derives keyed values (secret.Keyring): a form's token is one
// of its cookie, so a cookie planted from a sibling domain does not come
// with a token that matches it.
type Pseudonyms interface {
	Pseudonym(purpose, value string) string
}

// Handlers serves the pages.
type Handlers struct {
	Accounts   Accounts
	MagicLinks MagicLinks
	SignIns    SignIns
	Keys       Pseudonyms
	// Errors maps the use cases' errors to the problems the API answers
	// with; the pages show their texts (the password policy's feedback).
	Errors *httpapi.ErrorTable
	Log    *slog.Logger
	// Product names the service in the pages' titles.
	Product string
	// MagicLinkRedirect receives a finished magic-link sign-in as
	// ?code=…; empty, the page says what to do instead and consumes
	// nothing.
	MagicLinkRedirect string
	// SecureCookie sets Secure on the form cookie (https issuers).
	SecureCookie bool
}

// Routes mounts the pages. They are HTML for people, not API: left out
// of the OpenAPI document.
func (h *Handlers) Routes(rt *httpapi.Router) {
	rt.HandleUndocumented("GET "+VerifyEmailPath, http.HandlerFunc(h.verifyForm))
	rt.HandleUndocumented("POST "+VerifyEmailPath, http.HandlerFunc(h.verify))
	rt.HandleUndocumented("GET "+ResetPasswordPath, http.HandlerFunc(h.resetForm))
	rt.HandleUndocumented("POST "+ResetPasswordPath, http.HandlerFunc(h.reset))
	rt.HandleUndocumented("GET "+MagicLinkPath, http.HandlerFunc(h.magicForm))
	rt.HandleUndocumented("POST "+MagicLinkPath, http.HandlerFunc(h.magic))
	rt.HandleUndocumented("GET "+NotMePath, http.HandlerFunc(h.notMeForm))
	rt.HandleUndocumented("POST "+NotMePath, http.HandlerFunc(h.notMe))
}

// page is what the templates render.
type page struct {
	Title, Product string
	Style          template.CSS
	Action         string // the form's target; empty: no form
	Token, CSRF    string
	Errors         []string // field feedback on a form
	Message, Hint  string
	Error          bool
}

// csp allows the page's one inline style (by hash), forms posting to this
// server and, for the magic link, the redirect the POST answers with
// (browsers hold a form's redirects to form-action too).
func csp(formTargets ...string) string {
	action := "form-action 'self'"
	for _, t := range formTargets {
		if t != "" {
			action += " " + t
		}
	}
	return "default-src 'none'; style-src " + styleHash + "; " + action + "; frame-ancestors 'none'; base-uri 'none'"
}

func (h *Handlers) render(w http.ResponseWriter, r *http.Request, status int, name string, p page, formTargets ...string) {
	p.Product, p.Style = h.Product, template.CSS(style)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", csp(formTargets...))
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Robots-Tag", "noindex")
	var b strings.Builder
	if err := views[name].ExecuteTemplate(&b, "layout", p); err != nil {
		h.Log.ErrorContext(r.Context(), "render page", "page", name, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// form starts a page's form: a new cookie and the token derived from it.
func (h *Handlers) form(w http.ResponseWriter, r *http.Request) (string, bool) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		h.failed(w, r, err)
		return "", false
	}
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: v, Path: "/", HttpOnly: true, Secure: h.SecureCookie,
		SameSite: http.SameSiteStrictMode, MaxAge: int(cookieTTL / time.Second),
	})
	return h.Keys.Pseudonym(csrfPurpose, v), true
}

// linkToken is the emailed token of a GET, or the error page without one.
func (h *Handlers) linkToken(w http.ResponseWriter, r *http.Request, title string) (string, bool) {
	tok := r.URL.Query().Get("token")
	if tok == "" || len(tok) > 512 {
		h.message(w, r, http.StatusBadRequest, title, true, "This link is incomplete.", "Open the link from the email again, or copy all of it into the address bar.")
		return "", false
	}
	return tok, true
}

// posted checks a POST's form and its anti-forgery token and returns the
// emailed token; on failure it has answered.
func (h *Handlers) posted(w http.ResponseWriter, r *http.Request, title string) (string, bool) {
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.message(w, r, http.StatusRequestEntityTooLarge, title, true, "The form was too large.", "")
			return "", false
		}
		h.message(w, r, http.StatusBadRequest, title, true, "The form could not be read.", "")
		return "", false
	}
	c, err := r.Cookie(CookieName)
	sent := r.PostForm.Get("csrf")
	if err != nil || c.Value == "" || sent == "" || !secret.Equal(sent, h.Keys.Pseudonym(csrfPurpose, c.Value)) {
		h.message(w, r, http.StatusForbidden, title, true, "This form has expired or was not sent from this page. Nothing was changed.",
			"Open the link from the email again and use the button on the page. Cookies must be allowed for this site.")
		return "", false
	}
	tok := r.PostForm.Get("token")
	if tok == "" || len(tok) > 512 {
		h.message(w, r, http.StatusBadRequest, title, true, "This link is incomplete.", "Open the link from the email again.")
		return "", false
	}
	return tok, true
}

func (h *Handlers) message(w http.ResponseWriter, r *http.Request, status int, title string, isErr bool, msg, hint string) {
	h.render(w, r, status, "message", page{Title: title, Message: msg, Hint: hint, Error: isErr})
}

// problem shows a use case's error as the API would answer it: its status
// and text. Server failures are logged and shown without detail.
func (h *Handlers) problem(w http.ResponseWriter, r *http.Request, title string, err error, hint string) {
	p := h.Errors.Problem(err)
	if p.Status >= 500 || p.Status == 499 {
		h.failed(w, r, err)
		return
	}
	h.message(w, r, p.Status, title, true, p.Detail, hint)
}

func (h *Handlers) failed(w http.ResponseWriter, r *http.Request, err error) {
	h.Log.ErrorContext(r.Context(), "request failed", "error", err.Error(), "method", r.Method, "path", r.URL.Path)
	h.message(w, r, http.StatusInternalServerError, "Something went wrong", true,
		"An unexpected error occurred. Nothing may have changed; try the link again in a while.", "")
}

const (
	verifyTitle = "Verify your email address"
	resetTitle  = "Reset your password"
	magicTitle  = "Sign in"
	notMeTitle  = "Was it not you?"
)

func (h *Handlers) verifyForm(w http.ResponseWriter, r *http.Request) {
	tok, ok := h.linkToken(w, r, verifyTitle)
	if !ok {
		return
	}
	csrf, ok := h.form(w, r)
	if !ok {
		return
	}
	h.render(w, r, http.StatusOK, "verify", page{Title: verifyTitle, Action: VerifyEmailPath, Token: tok, CSRF: csrf})
}

func (h *Handlers) verify(w http.ResponseWriter, r *http.Request) {
	tok, ok := h.posted(w, r, verifyTitle)
	if !ok {
		return
	}
	u, err := h.Accounts.VerifyEmail(r.Context(), tok, httpapi.MetaOf(r, ""))
	if err != nil {
		h.problem(w, r, verifyTitle, err, "Sign in to the application and ask for a new verification email.")
		return
	}
	h.message(w, r, http.StatusOK, "Email address verified", false, u.Email+" is verified. You can close this page and go back to the application.", "")
}

func (h *Handlers) resetForm(w http.ResponseWriter, r *http.Request) {
	tok, ok := h.linkToken(w, r, resetTitle)
	if !ok {
		return
	}
	csrf, ok := h.form(w, r)
	if !ok {
		return
	}
	h.render(w, r, http.StatusOK, "reset", page{Title: resetTitle, Action: ResetPasswordPath, Token: tok, CSRF: csrf})
}

func (h *Handlers) reset(w http.ResponseWriter, r *http.Request) {
	tok, ok := h.posted(w, r, resetTitle)
	if !ok {
		return
	}
	again := func(status int, errs []string) {
		// The same form again, with the same cookie and token.
		h.render(w, r, status, "reset", page{Title: resetTitle, Action: ResetPasswordPath, Token: tok, CSRF: r.PostForm.Get("csrf"), Errors: errs})
	}
	pw := r.PostForm.Get("password")
	if pw != r.PostForm.Get("confirm") {
		again(http.StatusUnprocessableEntity, []string{"The two passwords are not the same."})
		return
	}
	err := h.Accounts.ResetPassword(r.Context(), tok, pw, httpapi.MetaOf(r, ""))
	if p := h.Errors.Problem(err); err != nil && p.Status == http.StatusUnprocessableEntity && len(p.Errors) > 0 {
		var errs []string
		for _, fe := range p.Errors {
			errs = append(errs, sentence(fe.Message))
		}
		again(p.Status, errs)
		return
	}
	if err != nil {
		h.problem(w, r, resetTitle, err, "Ask for a new reset email from the application's sign-in page.")
		return
	}
	h.message(w, r, http.StatusOK, "Password changed", false, "Your password was changed and your sessions were ended. Sign in with the new password.", "")
}

func (h *Handlers) magicForm(w http.ResponseWriter, r *http.Request) {
	tok, ok := h.linkToken(w, r, magicTitle)
	if !ok {
		return
	}
	if h.MagicLinkRedirect == "" {
		h.render(w, r, http.StatusOK, "magic", page{Title: magicTitle})
		return
	}
	csrf, ok := h.form(w, r)
	if !ok {
		return
	}
	h.render(w, r, http.StatusOK, "magic", page{Title: magicTitle, Action: MagicLinkPath, Token: tok, CSRF: csrf}, origin(h.MagicLinkRedirect))
}

func (h *Handlers) magic(w http.ResponseWriter, r *http.Request) {
	if h.MagicLinkRedirect == "" {
		// Nothing could receive the sign-in: leave the link unused.
		h.render(w, r, http.StatusConflict, "magic", page{Title: magicTitle})
		return
	}
	tok, ok := h.posted(w, r, magicTitle)
	if !ok {
		return
	}
	code, err := h.MagicLinks.MagicLinkCode(r.Context(), tok, httpapi.MetaOf(r, ""))
	if err != nil {
		h.problem(w, r, magicTitle, err, "Ask the application for a new sign-in link.")
		return
	}
	to, err := withCode(h.MagicLinkRedirect, code)
	if err != nil {
		h.failed(w, r, err)
		return
	}
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// notMeForm shows the button that disowns the sign-in, and does nothing
// else: mail scanners open links.
func (h *Handlers) notMeForm(w http.ResponseWriter, r *http.Request) {
	tok, ok := h.linkToken(w, r, notMeTitle)
	if !ok {
		return
	}
	csrf, ok := h.form(w, r)
	if !ok {
		return
	}
	h.render(w, r, http.StatusOK, "notme", page{Title: notMeTitle, Action: NotMePath, Token: tok, CSRF: csrf})
}

func (h *Handlers) notMe(w http.ResponseWriter, r *http.Request) {
	tok, ok := h.posted(w, r, notMeTitle)
	if !ok {
		return
	}
	if _, err := h.SignIns.NotMe(r.Context(), tok, httpapi.MetaOf(r, "")); err != nil {
		h.problem(w, r, notMeTitle, err, "If you already used this link, your sessions were ended then. To protect your account, reset your password with \"Forgot password\" on the sign-in page.")
		return
	}
	h.message(w, r, http.StatusOK, "All your sessions were ended", false,
		"Every device signed in to your account was signed out. Reset your password now: signing in with the current one is refused until you do.",
		"Use \"Forgot password\" on the sign-in page to get a reset link by email, and choose a password you do not use anywhere else.")
}

// withCode adds ?code= to the redirect, as a social sign-in's callback
// does.
func withCode(redirect, code string) (string, error) {
	u, err := url.Parse(redirect)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("code", code)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// origin is the scheme and host of u, for form-action.
func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" || p.Host == "" {
		return ""
	}
	return p.Scheme + "://" + p.Host
}

// sentence makes a policy's message ("must be at least 12 characters
// long") a sentence about the password.
func sentence(msg string) string {
	if msg == "" || msg[0] < 'a' || msg[0] > 'z' {
		return msg
	}
	return "The password " + msg + "."
}
