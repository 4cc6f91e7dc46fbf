package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// TestPasskeysDemoInChromium is the browser half of TestPasskeys*: the
// /passkeys-demo page in a real headless Chromium whose authenticator is
// Chromium's own virtual one (DevTools' WebAuthn domain: a CTAP2 platform
// authenticator with resident keys and user verification, presence
// simulated). Through the page's form and buttons only, it registers an
// account, adds a passkey, signs in with it without an email
// (discoverable), and signs in with the password, the passkey as second
// factor. It runs twice: with the browser's JSON helpers
// (PublicKeyCredential.parseCreationOptionsFromJSON, toJSON) and with them
// removed, so that the page's fallback is tested too.
//
// Without Chromium on PATH the test is skipped, unless
// GATEHOUSE_TEST_REQUIRE_BROWSER=1 (as in CI), which makes it fail.
func TestPasskeysDemoInChromium(t *testing.T) {
	execPath := findBrowser(t)
	e, origin := newLocalhostEnv(t)

	t.Run("Served", func(t *testing.T) {
		for path, typ := range map[string]string{
			"/passkeys-demo":           "text/html",
			"/passkeys-demo/app.js":    "text/javascript",
			"/passkeys-demo/style.css": "text/css",
		} {
			res, body := get(t, e.url(path))
			if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), typ) || len(body) == 0 {
				t.Errorf("GET %s = %d %q (%d bytes), want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), len(body), typ)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
			}
		}
	})

	t.Run("NativeJSONHelpers", func(t *testing.T) {
		runPasskeysDemo(t, e, newDemoTab(t, execPath, false), origin, "demo-native@example.com")
	})
	t.Run("FallbackWithoutJSONHelpers", func(t *testing.T) {
		runPasskeysDemo(t, e, newDemoTab(t, execPath, true), origin, "demo-fallback@example.com")
	})
}

// newLocalhostEnv is newAccountEnv on a port chosen beforehand, with the
// issuer http://localhost:<port>: WebAuthn takes no IP address as a
// relying party ID, and the RP ID and the allowed origin default to the
// issuer's. It returns the env and that origin, where the browser must
// open the page (the env's url() is the 127.0.0.1 address it listens on).
func newLocalhostEnv(t *testing.T) (*accountEnv, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	origin := "http://localhost:" + port
	e := newAccountEnv(t, map[string]string{"GATEHOUSE_HTTP_ADDR": addr, "GATEHOUSE_ISSUER": origin})
	if e.url("") != "http://"+addr {
		t.Fatalf("server listens at %s, want %s", e.url(""), addr)
	}
	return e, origin
}

func runPasskeysDemo(t *testing.T, e *accountEnv, b *demoTab, origin, email string) {
	if status := b.open(origin + "/passkeys-demo"); status != 200 {
		t.Fatalf("GET /passkeys-demo = %d\n%s", status, b.body())
	}
	b.waitReady()
	native := b.eval(`typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function' && typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function' && typeof PublicKeyCredential.prototype.toJSON === 'function'`)
	if b.hideHelpers && native {
		t.Fatal("the JSON helpers are still there: the fallback would not be tested")
	}
	if !b.hideHelpers && !native {
		t.Logf("this Chromium lacks the WebAuthn JSON helpers: the page used its fallback")
	}

	// 1. Register through the form; the address is verified from the
	// email, as a person would; then sign in with the password.
	b.typeInto("#email", email)
	b.typeInto("#password", strongPassword)
	b.typeInto("#name", "Demo User")
	b.expect("#register", "register", "ok", "Account created for "+email)
	// Not verified yet: the page shows the problem's detail.
	b.expect("#login", "login", "error", "Verify your email address")
	m := e.mail.wait(t, email, "Verify your email")
	if c, out, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": linkToken(t, m, "verify-email")}); c != 200 {
		t.Fatalf("verify-email = %d %v", c, out)
	}
	b.expect("#login", "login", "ok", "Signed in with a password")
	if amr := b.amr(); !slices.Contains(amr, "pwd") {
		t.Errorf("amr after the password sign-in = %v, want pwd in it", amr)
	}

	// 2. Add a passkey: the virtual authenticator creates a resident
	// credential for the RP ID localhost.
	b.typeInto("#passkey-name", "Demo key")
	b.expect("#add-passkey", "add-passkey", "ok", `Passkey "Demo key" added`)
	if n := b.count("#passkeys li[data-id]"); n != 1 {
		t.Errorf("the page lists %d passkeys, want 1\n%s", n, b.body())
	} else if got := b.text("#passkeys li[data-id]"); !strings.Contains(got, "Demo key") || !strings.Contains(got, "device-bound") {
		t.Errorf("the page lists %q", got)
	}
	creds := b.credentials()
	if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %+v, want one resident credential for localhost", creds)
	}

	// 3. Sign out (the page forgets its tokens), then sign in with the
	// passkey and no email: a discoverable credential.
	b.expect("#signout", "signout", "ok", "Signed out")
	if amr := b.amr(); len(amr) != 0 {
		t.Errorf("amr after signing out = %v", amr)
	}
	b.expect("#passkey-signin", "passkey-signin", "ok", "Signed in with a passkey")
	amr := b.amr()
	if !slices.Contains(amr, "user") || !(slices.Contains(amr, "hwk") || slices.Contains(amr, "swk")) || slices.Contains(amr, "pwd") {
		t.Errorf("amr after the passkey sign-in = %v, want user and hwk or swk, without pwd", amr)
	}
	if got := b.text("#amr"); !strings.Contains(got, "user") {
		t.Errorf("the page shows amr %q", got)
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(b.text("#result")), &shown); err != nil || shown["amr"] == nil || shown["access_token_claims"] == nil {
		t.Errorf("#result = %v (%v), want the response with the decoded amr", shown, err)
	}
	if n := b.count("#passkeys li[data-id]"); n != 1 {
		t.Errorf("after the passkey sign-in the page lists %d passkeys, want 1", n)
	}

	// The same authenticator again: excluded, and the page says so.
	b.expect("#add-passkey", "add-passkey", "error", "already holds a passkey")
	if n := e.passkeyCount(t, email); n != 1 {
		t.Errorf("the database holds %d passkeys of %s, want 1", n, email)
	}

	// The password sign-in of an account with a passkey asks for it; the
	// page answers the second step by itself.
	b.expect("#login", "login", "ok", "a passkey as second factor")
	amr = b.amr()
	if !slices.Contains(amr, "pwd") || !slices.Contains(amr, "mfa") || !(slices.Contains(amr, "hwk") || slices.Contains(amr, "swk")) {
		t.Errorf("amr after password and passkey = %v, want pwd, mfa and hwk or swk", amr)
	}

	// The page ran as it is under its Content-Security-Policy, without
	// errors.
	for _, l := range b.logLines() {
		if strings.Contains(l, "Content Security Policy") || strings.Contains(l, "exception") {
			t.Errorf("browser: %s", l)
		}
	}
}

// passkeyCount is how many passkeys the account of email holds, from the
// database.
func (e *accountEnv) passkeyCount(t *testing.T, email string) int {
	t.Helper()
	q := "SELECT count(*) FROM passkeys p JOIN users u ON u.id = p.user_id WHERE u.email_normalized = $1"
	if e.dialect == "sqlite" {
		q = strings.Replace(q, "$1", "?", 1)
	}
	var n int
	if err := e.db.QueryRow(q, strings.ToLower(email)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// demoTab is one tab of a fresh headless Chromium with JavaScript on (the
// headless of TestBrowserLandingPages has it off) and a virtual
// authenticator. hideHelpers: the WebAuthn JSON helpers are removed from
// every page before its scripts run.
type demoTab struct {
	*headless
	authenticator webauthn.AuthenticatorID
	hideHelpers   bool

	mu   sync.Mutex
	logs []string // console messages, exceptions and the browser's log
}

func newDemoTab(t *testing.T, execPath string, hideHelpers bool) *demoTab {
	t.Helper()
	// As newHeadless: the timeout bounds everything done with the
	// browser, its start included.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	browserCtx, _ := chromedp.NewContext(allocCtx)
	d := &demoTab{headless: &headless{t: t, ctx: browserCtx, requests: map[network.RequestID]*sentRequest{}}, hideHelpers: hideHelpers}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range d.logLines() {
				t.Logf("browser: %s", l)
			}
		}
		if err := chromedp.Cancel(browserCtx); err != nil && ctx.Err() == nil {
			t.Logf("closing the browser: %v", err)
		}
		cancelAlloc()
		cancel()
	})
	if err := chromedp.Listen(browserCtx, d.listen); err != nil {
		t.Fatalf("start the browser: %v", err)
	}
	err := chromedp.Do(browserCtx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
			return err
		}
		if hideHelpers {
			const hide = `delete PublicKeyCredential.parseCreationOptionsFromJSON; delete PublicKeyCredential.parseRequestOptionsFromJSON; delete PublicKeyCredential.prototype.toJSON;`
			if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hide}); err != nil {
				return err
			}
		}
		// The virtual authenticator: a platform authenticator (a
		// device-bound passkey: no backup eligibility) that holds
		// discoverable credentials and verifies its user.
		if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		}})
		d.authenticator = res.AuthenticatorID
		return err
	}))
	if err != nil {
		t.Fatalf("set up the tab and its authenticator: %v", err)
	}
	return d
}

// listen records what the page logs. It runs on the tab's event loop: it
// only stores.
func (d *demoTab) listen(ev any) {
	var line string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		line = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
	case *runtime.EventExceptionThrown:
		line = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			line += " " + ev.ExceptionDetails.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		line = fmt.Sprintf("log %s %s: %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text)
	default:
		return
	}
	d.mu.Lock()
	d.logs = append(d.logs, line)
	d.mu.Unlock()
}

func (d *demoTab) logLines() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.logs)
}

// eval evaluates a JavaScript expression to a boolean.
func (d *demoTab) eval(expr string) bool {
	d.t.Helper()
	v, err := chromedp.Run(d.ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		d.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitReady waits for the page's script to have run (it hides #nojs).
func (d *demoTab) waitReady() {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('nojs').hidden`, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		d.t.Fatalf("the page's script did not run: %v\n%s\n%s", err, strings.Join(d.logLines(), "\n"), d.body())
	}
}

// press clicks the button sel and waits for the step it starts to end:
// the page's #status counts steps in data-seq and says busy until then.
// It returns the step's name, its state (ok or error) and the message.
func (d *demoTab) press(sel string) (step, state, msg string) {
	d.t.Helper()
	before, err := chromedp.Run(d.ctx, chromedp.Evaluate[string](`document.getElementById('status').dataset.seq`))
	if err != nil {
		d.t.Fatalf("read #status: %v", err)
	}
	if err := chromedp.Do(d.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		d.t.Fatalf("click %s: %v\n%s", sel, err, d.body())
	}
	ctx, cancel := context.WithTimeout(d.ctx, 15*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(
		`(s => Number(s.dataset.seq) > %s && s.dataset.state !== 'busy' && JSON.stringify([s.dataset.step, s.dataset.state, s.textContent]))(document.getElementById('status'))`, before),
		chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		d.t.Fatalf("after clicking %s the page did not finish: %v\n%s\n%s", sel, err, strings.Join(d.logLines(), "\n"), d.body())
	}
	var r []string
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r) != 3 {
		d.t.Fatalf("status %q: %v", out, err)
	}
	return r[0], r[1], r[2]
}

// expect presses sel and requires the step, its state and a message that
// contains msg.
func (d *demoTab) expect(sel, step, state, msg string) {
	d.t.Helper()
	gotStep, gotState, gotMsg := d.press(sel)
	if gotStep != step || gotState != state || !strings.Contains(gotMsg, msg) {
		d.t.Fatalf("after clicking %s: step %q %s: %q; want step %q %s with %q\nresult: %s", sel, gotStep, gotState, gotMsg, step, state, msg, d.text("#result"))
	}
}

// amr is the amr of the page's current token, as the page decoded it.
func (d *demoTab) amr() []string {
	d.t.Helper()
	raw, err := chromedp.Run(d.ctx, chromedp.Evaluate[string](`document.getElementById('amr').dataset.amr`))
	if err != nil {
		d.t.Fatalf("read #amr: %v", err)
	}
	var amr []string
	if err := json.Unmarshal([]byte(raw), &amr); err != nil {
		d.t.Fatalf("#amr data-amr %q: %v", raw, err)
	}
	return amr
}

// credentials are what the virtual authenticator holds.
func (d *demoTab) credentials() []*webauthn.Credential {
	d.t.Helper()
	res, err := chromedp.Call(d.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: d.authenticator})
	if err != nil {
		d.t.Fatalf("the authenticator's credentials: %v", err)
	}
	return res.Credentials
}
