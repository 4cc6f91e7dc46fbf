package app

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserLandingPages follows the emailed links in a real headless
// Chromium with JavaScript switched off, as issue 14 asks: the
// verification link verifies the address once its button is clicked, and
// the reset link's form resets the password. pages_test.go checks the
// same pages with a plain HTTP client; this checks that a browser renders
// the forms, submits them, keeps the cookie they are bound to and sends
// no Referer with the token.
//
// Without Chromium on PATH the test is skipped, unless
// GATEHOUSE_TEST_REQUIRE_BROWSER=1 (as in CI), which makes it fail.
func TestBrowserLandingPages(t *testing.T) {
	execPath := findBrowser(t)
	// newAccountEnv (embedded SQLite, as a fresh `gatehouse serve`) on a
	// port chosen beforehand and named as the issuer, so that the emailed
	// links, built on it, reach this server as they are.
	e := newIssuerEnv(t, nil)

	t.Run("VerifyEmail", func(t *testing.T) {
		const email = "browser-verify@example.com"
		if c, b, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": email, "password": strongPassword, "name": "Test User"}); c != 201 {
			t.Fatalf("register = %d %v", c, b)
		}
		link, tok := mailedLink(t, e, e.mail.wait(t, email, "Verify your email"), "verify-email")

		b := newHeadless(t, execPath)
		if status := b.open(link); status != 200 {
			t.Fatalf("GET of the emailed link = %d\n%s", status, b.body())
		}
		if got := b.text(`form button[type="submit"]`); got != "Verify email address" {
			t.Fatalf("button = %q, want %q\n%s", got, "Verify email address", b.body())
		}
		if e.emailVerified(t, email) {
			t.Fatal("opening the link in a browser verified the address")
		}

		if status := b.click(`button[type="submit"]`); status != 200 {
			t.Fatalf("POST of the form = %d\n%s", status, b.body())
		}
		b.waitVisible(`p[role="status"], [role="alert"]`) // the outcome page, either way
		if h1 := b.text("h1"); h1 != "Email address verified" {
			t.Fatalf("outcome page title = %q, want the success page\n%s", h1, b.body())
		}
		if got := b.text(`p[role="status"]`); !strings.Contains(got, "verified") || !strings.Contains(got, email) {
			t.Errorf("outcome = %q, want it to say %s is verified", got, email)
		}
		if !e.emailVerified(t, email) {
			t.Fatal("the click did not verify the address")
		}
		b.checkRequests(tok, e.url("/verify-email"), 1)
	})

	t.Run("ResetPassword", func(t *testing.T) {
		const email = "browser-reset@example.com"
		e.signUp(t, email)
		if c, b, _ := call(t, "POST", e.url("/v1/auth/password/forgot"), map[string]string{"email": email}); c != 202 {
			t.Fatalf("forgot = %d %v", c, b)
		}
		link, tok := mailedLink(t, e, e.mail.wait(t, email, "Reset your"), "reset-password")

		b := newHeadless(t, execPath)
		if status := b.open(link); status != 200 {
			t.Fatalf("GET of the emailed link = %d\n%s", status, b.body())
		}
		for _, sel := range []string{
			`label[for="password"]`, `input#password[type="password"][name="password"][autocomplete="new-password"]`,
			`label[for="confirm"]`, `input#confirm[type="password"][name="confirm"][autocomplete="new-password"]`,
			`form button[type="submit"]`,
		} {
			if n := b.count(sel); n != 1 {
				t.Fatalf("the reset form has %d of %s, want 1\n%s", n, sel, b.body())
			}
		}

		// A password the policy refuses: the form again with the
		// policy's feedback, and the password is unchanged.
		b.typeInto("#password", "password")
		b.typeInto("#confirm", "password")
		if status := b.click(`button[type="submit"]`); status != 422 {
			t.Fatalf("POST of a weak password = %d, want 422\n%s", status, b.body())
		}
		b.waitVisible("#errors")
		if got := b.text("#errors"); !strings.Contains(got, "The password was not changed") || !strings.Contains(got, "The password must be at least") {
			t.Errorf("policy feedback = %q", got)
		}
		if n := b.count(`input#password[aria-invalid="true"]`); n != 1 {
			t.Errorf("the password field is not marked invalid\n%s", b.body())
		}
		e.login(t, email, strongPassword) // still the old password

		// The form shown again works: the real reset.
		const newPassword = "a different, longer passphrase 7"
		b.typeInto("#password", newPassword)
		b.typeInto("#confirm", newPassword)
		if status := b.click(`button[type="submit"]`); status != 200 {
			t.Fatalf("POST of the new password = %d\n%s", status, b.body())
		}
		b.waitVisible(`p[role="status"], [role="alert"]`)
		if h1 := b.text("h1"); h1 != "Password changed" {
			t.Fatalf("outcome page title = %q, want the success page\n%s", h1, b.body())
		}
		if got := b.text(`p[role="status"]`); !strings.Contains(got, "Your password was changed") {
			t.Errorf("outcome = %q", got)
		}
		if c, out, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": newPassword}); c != 200 {
			t.Errorf("login with the new password = %d %v, want 200", c, out)
		}
		if c, out, _ := call(t, "POST", e.url("/v1/auth/login"), map[string]string{"email": email, "password": strongPassword}); c != 401 {
			t.Errorf("login with the old password = %d %v, want 401", c, out)
		}
		b.checkRequests(tok, e.url("/reset-password"), 2)
	})
}

// findBrowser returns the path of Chromium or Chrome on PATH, or skips the
// test (fails it when GATEHOUSE_TEST_REQUIRE_BROWSER=1).
func findBrowser(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome"}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("GATEHOUSE_TEST_REQUIRE_BROWSER") == "1" {
		t.Fatalf("none of %v is on PATH and GATEHOUSE_TEST_REQUIRE_BROWSER=1", names)
	}
	t.Skipf("none of %v is on PATH; set GATEHOUSE_TEST_REQUIRE_BROWSER=1 to fail instead", names)
	return ""
}

// mailedLink returns the link to the server with the given path exactly
// as the email has it, and its token.
func mailedLink(t *testing.T, e *accountEnv, m message, path string) (string, string) {
	t.Helper()
	for _, match := range tokenLink.FindAllStringSubmatch(m.Text, -1) {
		if match[1] == path {
			if !strings.HasPrefix(match[0], e.url("/"+path+"?token=")) {
				t.Fatalf("the emailed link %s does not lead to the server at %s", match[0], e.url(""))
			}
			return match[0], match[2]
		}
	}
	t.Fatalf("no %s link in the email %q:\n%s", path, m.Subject, m.Text)
	return "", ""
}

// headless is one tab of a fresh headless Chromium (its own profile) with
// script execution disabled, recording the requests it sends.
type headless struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	requests map[network.RequestID]*sentRequest
}

// sentRequest is what the browser reported about one request.
type sentRequest struct {
	method, url, docType string
	policy               network.RequestReferrerPolicy
	referers             []string // from the request and from the headers on the wire
}

func newHeadless(t *testing.T, execPath string) *headless {
	t.Helper()
	// The timeout bounds everything the subtest does with the browser,
	// its start included; when it expires the browser is killed.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], // headless among them
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	browserCtx, _ := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Close the browser, then wait for its process to end, so that no
		// chromium outlives the test and its profile can be removed.
		if err := chromedp.Cancel(browserCtx); err != nil && ctx.Err() == nil {
			t.Logf("closing the browser: %v", err)
		}
		cancelAlloc()
		cancel()
	})
	h := &headless{t: t, ctx: browserCtx, requests: map[network.RequestID]*sentRequest{}}

	if err := chromedp.Listen(browserCtx, h.record); err != nil {
		t.Fatalf("start the browser: %v", err)
	}
	if err := chromedp.Do(browserCtx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		// The pages must work without JavaScript.
		_, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	})); err != nil {
		t.Fatalf("set up the tab: %v", err)
	}
	// Scripts are really off: this page's script would rename it.
	if err := chromedp.Do(browserCtx, chromedp.Navigate("data:text/html,<title>static</title><script>document.title='script ran'</script>")); err != nil {
		t.Fatalf("open a page: %v", err)
	}
	if title, err := chromedp.Run(browserCtx, chromedp.Title()); err != nil || title != "static" {
		t.Fatalf("page title = %q, %v: JavaScript is not disabled", title, err)
	}
	return h
}

// record keeps the method, URL, referrer policy and Referer headers of
// every request. It runs on the tab's event loop: it only stores.
func (h *headless) record(ev any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	get := func(id network.RequestID) *sentRequest {
		r := h.requests[id]
		if r == nil {
			r = &sentRequest{}
			h.requests[id] = r
		}
		return r
	}
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		r := get(ev.RequestID)
		r.method, r.url, r.docType, r.policy = ev.Request.Method, ev.Request.URL, string(ev.Type), ev.Request.ReferrerPolicy
		r.referers = append(r.referers, referers(ev.Request.Headers)...)
	case *network.EventRequestWillBeSentExtraInfo:
		r := get(ev.RequestID)
		r.referers = append(r.referers, referers(ev.Headers)...)
	}
}

func referers(h network.Headers) []string {
	var out []string
	for k, v := range h {
		if strings.EqualFold(k, "Referer") {
			out = append(out, fmt.Sprint(v))
		}
	}
	return out
}

// checkRequests asserts that no request carried the token in a Referer,
// that the form's POSTs (want of them) went to action without the token in
// the URL, and that the browser sent them under the no-referrer policy.
func (h *headless) checkRequests(tok, action string, want int) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	posts := 0
	for _, r := range h.requests {
		for _, ref := range r.referers {
			if strings.Contains(ref, tok) {
				h.t.Errorf("%s %s carried the token in its Referer %q", r.method, r.url, ref)
				break
			}
		}
		if r.method != "POST" {
			continue
		}
		posts++
		if r.url != action {
			h.t.Errorf("the form posted to %q, want %q (the token belongs in the body)", r.url, action)
		}
		if r.policy != network.RequestReferrerPolicyNoReferrer {
			h.t.Errorf("the browser sent %s %s under referrer policy %q, want %q", r.method, r.url, r.policy, network.RequestReferrerPolicyNoReferrer)
		}
	}
	if posts != want {
		h.t.Errorf("the browser sent %d POSTs, want %d: %v", posts, want, h.requests)
	}
}

// open navigates to u and returns the status of the document.
func (h *headless) open(u string) int64 {
	h.t.Helper()
	res, err := chromedp.Run(h.ctx, chromedp.NavigateResponse(u))
	if err != nil {
		h.t.Fatalf("open %s: %v", u, err)
	}
	return res.Status
}

// click clicks the first element of sel with the mouse, waits for the page
// it leads to and returns its status.
func (h *headless) click(sel string) int64 {
	h.t.Helper()
	res, err := chromedp.RunResponse(h.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		h.t.Fatalf("click %s: %v\n%s", sel, err, h.body())
	}
	return res.Status
}

// typeInto types s into the field as keystrokes.
func (h *headless) typeInto(sel, s string) {
	h.t.Helper()
	if err := chromedp.Do(h.ctx, chromedp.SendKeys(chromedp.CSS(sel), s)); err != nil {
		h.t.Fatalf("type into %s: %v\n%s", sel, err, h.body())
	}
}

func (h *headless) waitVisible(sel string) {
	h.t.Helper()
	if err := chromedp.Do(h.ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		h.t.Fatalf("wait for %s: %v\n%s", sel, err, h.body())
	}
}

// text is the visible text of the first element of sel.
func (h *headless) text(sel string) string {
	h.t.Helper()
	s, err := chromedp.Run(h.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		h.t.Fatalf("text of %s: %v\n%s", sel, err, h.body())
	}
	return strings.TrimSpace(s)
}

// count is how many elements match sel now, without waiting.
func (h *headless) count(sel string) int {
	h.t.Helper()
	nodes, err := chromedp.Run(h.ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	if err != nil {
		h.t.Fatalf("query %s: %v\n%s", sel, err, h.body())
	}
	return len(nodes)
}

// body is the page's HTML, for failure messages.
func (h *headless) body() string {
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		return fmt.Sprintf("(page unreadable: %v)", err)
	}
	return s
}
