package user

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

// capturedJobs records the jobs a Service enqueues: mail jobs, and email
// requests, which work runs through the Service as the job queue would.
type capturedJobs struct {
	mu       sync.Mutex
	args     []mail.SendArgs
	requests []EmailRequestArgs // every one enqueued
	pending  []EmailRequestArgs // not worked yet
	svc      *Service
}

func (c *capturedJobs) InsertTx(_ context.Context, tx any, args river.JobArgs, _ *river.InsertOpts) (int64, error) {
	if tx == nil {
		return 0, errors.New("job enqueued outside a transaction")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch a := args.(type) {
	case mail.SendArgs:
		c.args = append(c.args, a)
	case EmailRequestArgs:
		c.requests = append(c.requests, a)
		c.pending = append(c.pending, a)
	default:
		return 0, fmt.Errorf("unexpected job %T", args)
	}
	return int64(len(c.args) + len(c.requests)), nil
}

// work runs the pending email requests, as the job queue would.
func (c *capturedJobs) work(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, a := range pending {
		if err := c.svc.HandleEmailRequest(context.Background(), a); err != nil {
			t.Fatalf("email request job: %v", err)
		}
	}
}

// mails works the pending requests and returns how many mail jobs there are.
func (c *capturedJobs) mails(t *testing.T) int {
	t.Helper()
	c.work(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.args)
}

// token returns the one-time token of the last link sent to to with template.
func (c *capturedJobs) token(t *testing.T, kr *secret.Keyring, template, to string) string {
	t.Helper()
	c.work(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.args) - 1; i >= 0; i-- {
		a := c.args[i]
		if a.Template != template || a.To != to {
			continue
		}
		link, err := kr.Open(a.SealedLink, []byte("gatehouse/mail.send\x00"+template+"\x00"+to))
		if err != nil {
			t.Fatalf("open sealed link: %v", err)
		}
		u, _ := url.Parse(string(link))
		return u.Query().Get("token")
	}
	t.Fatalf("no %s mail to %s", template, to)
	return ""
}

func newTestService(t *testing.T) (*Service, *capturedJobs, *clocktest.Clock, *secret.Keyring) {
	t.Helper()
	return newTestServiceOn(t, nil)
}

// newTestServiceOn is newTestService whose transactions publish on bus.
func newTestServiceOn(t *testing.T, bus *event.Bus) (*Service, *capturedJobs, *clocktest.Clock, *secret.Keyring) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	ks, _ := secret.GenerateKeyString("t1")
	kr, _ := secret.ParseKeys(ks)
	jobs := &capturedJobs{}
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	pol := password.DefaultPolicy()
	s, err := New(Deps{
		Store: event.Narrow(st, bus, func(tx event.Tx) Tx { return tx }), Hasher: password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 2),
		Policy: pol, Jobs: jobs, Keys: kr, Limiter: ratelimit.NewMemory(clk.Now), Now: clk.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Config: DefaultConfig("https://app.example.com"),
	})
	if err != nil {
		t.Fatal(err)
	}
	jobs.svc = s
	return s, jobs, clk, kr
}

const pw = "a perfectly fine passphrase 1"

func TestTokensExpire(t *testing.T) {
	ctx := context.Background()
	s, jobs, clk, kr := newTestService(t)
	if _, err := s.Register(ctx, "ann@example.com", pw, "Ann", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	verify := jobs.token(t, kr, mail.VerifyEmail, "ann@example.com")
	clk.Advance(24*time.Hour + time.Second)
	if _, err := s.VerifyEmail(ctx, verify, httpapi.Meta{}); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("verification after 24 h: err = %v, want ErrInvalidToken", err)
	}
	if err := s.ResendVerification(ctx, "ann@example.com", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	fresh := jobs.token(t, kr, mail.VerifyEmail, "ann@example.com")
	if _, err := s.VerifyEmail(ctx, fresh, httpapi.Meta{}); err != nil {
		t.Fatalf("fresh verification: %v", err)
	}

	if err := s.ForgotPassword(ctx, "ANN@example.com", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	reset := jobs.token(t, kr, mail.PasswordReset, "ann@example.com")
	clk.Advance(59 * time.Minute)
	if err := s.ForgotPassword(ctx, "ann@example.com", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	second := jobs.token(t, kr, mail.PasswordReset, "ann@example.com")
	if err := s.ResetPassword(ctx, reset, pw+"x", httpapi.Meta{}); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("superseded reset token: err = %v, want ErrInvalidToken", err)
	}
	clk.Advance(time.Hour + time.Second)
	if err := s.ResetPassword(ctx, second, pw+"x", httpapi.Meta{}); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("reset after 1 h: err = %v, want ErrInvalidToken", err)
	}
}

func TestThrottlesAreSilentAndCountUnknownAddresses(t *testing.T) {
	ctx := context.Background()
	s, jobs, _, _ := newTestService(t)
	if _, err := s.Register(ctx, "bo@example.com", pw, "", httpapi.Meta{IP: "192.0.2.9"}); err != nil {
		t.Fatal(err)
	}
	before := jobs.mails(t)
	for range 10 {
		if err := s.ForgotPassword(ctx, "bo@example.com", httpapi.Meta{IP: "192.0.2.10"}); err != nil {
			t.Fatalf("throttled forgot must still succeed: %v", err)
		}
	}
	if sent := jobs.mails(t) - before; sent != s.Config.EmailPerAddress.Burst {
		t.Errorf("10 forgot requests sent %d mails, want the per-address burst %d", sent, s.Config.EmailPerAddress.Burst)
	}
	// Unknown addresses use up the per-IP allowance just the same.
	for i := range 60 {
		if err := s.ForgotPassword(ctx, "ghost"+itoa(i)+"@example.com", httpapi.Meta{IP: "192.0.2.11"}); err != nil {
			t.Fatal(err)
		}
	}
	before = jobs.mails(t)
	if _, err := s.Store.GetUserByEmail(ctx, "bo@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgotPassword(ctx, "bo@example.com", httpapi.Meta{IP: "192.0.2.11"}); err != nil {
		t.Fatal(err)
	}
	if jobs.mails(t) != before {
		t.Error("a request over the per-IP limit still sent mail")
	}
}

func TestRegisterRaceCreatesOneAccount(t *testing.T) {
	ctx := context.Background()
	s, _, _, _ := newTestService(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := s.Register(ctx, "same@example.com", pw, "", httpapi.Meta{IP: "192.0.2." + itoa(i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("parallel register: %v", err)
		}
	}
	users, _, err := s.Store.ListUsers(ctx, store.UserFilter{Email: "same@"})
	if err != nil || len(users) != 1 {
		t.Errorf("parallel registrations made %d accounts (%v), want 1", len(users), err)
	}
}

func TestEmailChangeToATakenAddressDoesNotEnumerate(t *testing.T) {
	ctx := context.Background()
	s, jobs, _, kr := newTestService(t)
	for _, e := range []string{"one@example.com", "two@example.com"} {
		if _, err := s.Register(ctx, e, pw, "", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}
	one, _ := s.Store.GetUserByEmail(ctx, "one@example.com")
	u, err := s.UpdateProfile(ctx, one.ID, ProfilePatch{Email: optional[string]{Set: true, Value: "TWO@example.com"}}, httpapi.Meta{AuthTime: s.now()})
	if err != nil {
		t.Fatalf("changing to a taken address answered %v; it must look like any other change", err)
	}
	if u.PendingEmail != "TWO@example.com" {
		t.Errorf("pending email = %q", u.PendingEmail)
	}
	tok := jobs.token(t, kr, mail.EmailChangeVerify, "TWO@example.com")
	if _, err := s.VerifyEmail(ctx, tok, httpapi.Meta{}); !errors.Is(err, ErrEmailTaken) {
		t.Errorf("verifying a taken address: err = %v, want ErrEmailTaken", err)
	}
	if got, _ := s.Store.GetUser(ctx, one.ID); got.Email != "one@example.com" {
		t.Errorf("email changed to %q", got.Email)
	}
}

// TestIPv6ClientsAreThrottledByTheirSlash64 checks that a client cannot
// escape the per-IP throttles by taking a new address from its /64.
func TestIPv6ClientsAreThrottledByTheirSlash64(t *testing.T) {
	ctx := context.Background()
	s, jobs, _, _ := newTestService(t)
	s.Config.RegisterPerIP = ratelimit.Limit{Rate: 2, Burst: 2, Period: time.Hour}
	s.Config.EmailPerIP = ratelimit.Limit{Rate: 2, Burst: 2, Period: time.Hour}
	for i := range 2 {
		if _, err := s.Register(ctx, "v6-"+itoa(i)+"@example.com", pw, "", httpapi.Meta{IP: "2001:db8:7:7::" + itoa(i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Register(ctx, "v6-x@example.com", pw, "", httpapi.Meta{IP: "2001:db8:7:7:ffff:1:2:3"})
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Code != "rate_limited" {
		t.Fatalf("third registration from the same /64: err = %v, want rate_limited", err)
	}
	if _, err := s.Register(ctx, "v6-y@example.com", pw, "", httpapi.Meta{IP: "2001:db8:7:8::1"}); err != nil {
		t.Errorf("registration from the next /64: %v", err)
	}

	// The email throttle: two sends from the /64, then silence.
	before := jobs.mails(t)
	for i := range 4 {
		if err := s.ResendVerification(ctx, "v6-0@example.com", httpapi.Meta{IP: "2001:db8:9:9::" + itoa(i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	if sent := jobs.mails(t) - before; sent != 2 {
		t.Errorf("4 resends from one /64 sent %d mails, want the per-IP burst 2", sent)
	}
}

func problemOf(err error) *httpapi.Problem {
	var p *httpapi.Problem
	if errors.As(err, &p) {
		return p
	}
	return nil
}

// fieldRule is the rule of the first field error for field ("" if none).
func fieldRule(err error, field string) string {
	if p := problemOf(err); p != nil {
		for _, fe := range p.Errors {
			if fe.Field == field {
				return fe.Rule
			}
		}
	}
	return ""
}

func TestNormalizeEmailFoldsASCIIOnly(t *testing.T) {
	for in, want := range map[string]string{
		" Alice@Example.COM ":   "alice@example.com",
		"\u212Aate@example.com": "\u212Aate@example.com", // KELVIN SIGN is not "k"
		"\u0130van@example.com": "\u0130van@example.com", // nor is U+0130 "i"
		"J\u00d6RG@example.com": "j\u00d6rg@example.com",
	} {
		if got := NormalizeEmail(in); got != want {
			t.Errorf("NormalizeEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNonASCIIAddressesAreRefused checks every place an address comes in:
// an internationalized address is a 422 naming the rule, never a 500 from
// the mailer (which cannot send to it) and never a silent acceptance.
func TestNonASCIIAddressesAreRefused(t *testing.T) {
	ctx := context.Background()
	s, jobs, _, _ := newTestService(t)
	for _, addr := range []string{"j\u00f6rg@example.com", "\u212Aate@example.com", "ann@b\u00fccher.example"} {
		if _, err := s.Register(ctx, addr, pw, "", httpapi.Meta{IP: "192.0.2.1"}); fieldRule(err, "email") != "ascii" {
			t.Errorf("register %q: err = %v, want a validation problem with rule ascii", addr, err)
		}
		if err := s.ForgotPassword(ctx, addr, httpapi.Meta{IP: "192.0.2.1"}); fieldRule(err, "email") != "ascii" {
			t.Errorf("forgot %q: err = %v, want rule ascii", addr, err)
		}
		if err := s.ResendVerification(ctx, addr, httpapi.Meta{IP: "192.0.2.1"}); fieldRule(err, "email") != "ascii" {
			t.Errorf("resend %q: err = %v, want rule ascii", addr, err)
		}
		if _, err := s.Create(ctx, NewUser{Email: addr, Password: pw}, httpapi.Meta{}); fieldRule(err, "email") != "ascii" {
			t.Errorf("create %q: err = %v, want rule ascii", addr, err)
		}
	}
	hash, _ := s.Hasher.Hash(ctx, pw)
	res, err := s.Import(ctx, strings.NewReader(`{"email":"j\u00f6rg@example.com","password_hash":"`+hash+`"}`+"\n"), httpapi.Meta{})
	if err != nil || res.Imported != 0 || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Error, "ASCII") {
		t.Errorf("import of a non-ASCII address = %+v, %v; want line 1 refused naming ASCII", res, err)
	}
	if n := jobs.mails(t); n != 0 || len(jobs.requests) != 0 {
		t.Errorf("%d mails and %d requests enqueued for refused addresses", n, len(jobs.requests))
	}
}

// TestEmailSpellingChangeIsASCIICaseOnly checks that only an ASCII case
// change of the current address is applied without verification: U+212A
// KELVIN SIGN lower-cases to "k" with strings.ToLower, which made
// "\u212Aate@…" pass as a respelling of "kate@…".
func TestEmailSpellingChangeIsASCIICaseOnly(t *testing.T) {
	ctx := context.Background()
	s, jobs, _, _ := newTestService(t)
	if _, err := s.Register(ctx, "kate@example.com", pw, "", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	u, _ := s.Store.GetUserByEmail(ctx, "kate@example.com")
	recent := httpapi.Meta{AuthTime: s.now()}
	_, err := s.UpdateProfile(ctx, u.ID, ProfilePatch{Email: optional[string]{Set: true, Value: "\u212Aate@example.com"}}, recent)
	if fieldRule(err, "email") != "ascii" {
		t.Errorf("change to the KELVIN SIGN address: err = %v, want rule ascii", err)
	}
	before := jobs.mails(t)
	got, err := s.UpdateProfile(ctx, u.ID, ProfilePatch{Email: optional[string]{Set: true, Value: "Kate@Example.com"}}, recent)
	if err != nil || got.Email != "Kate@Example.com" || got.PendingEmail != "" || jobs.mails(t) != before {
		t.Errorf("ASCII case change = %q pending %q, %v, %d mails; want applied at once without mail", got.Email, got.PendingEmail, err, jobs.mails(t)-before)
	}
}

// TestForgotAndResendDoTheSameWorkForEveryAddress checks that the request
// path of forgot-password and resend-verification does not depend on
// whether the address has an account: it enqueues exactly one job, of the
// same shape, and writes nothing else; the job then emails the known
// account only, and the reset link it sends works.
func TestForgotAndResendDoTheSameWorkForEveryAddress(t *testing.T) {
	ctx := context.Background()
	s, jobs, _, kr := newTestService(t)
	if _, err := s.Register(ctx, "known@example.com", pw, "", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	jobs.work(t)
	for _, c := range []struct {
		name    string
		request func(email string) error
	}{
		{"forgot", func(e string) error { return s.ForgotPassword(ctx, e, httpapi.Meta{IP: "192.0.2.2"}) }},
		{"resend", func(e string) error { return s.ResendVerification(ctx, e, httpapi.Meta{IP: "192.0.2.2"}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var shapes []string
			for _, email := range []string{"known@example.com", "unknown@example.com"} {
				mails, requests := jobs.mails(t), len(jobs.requests)
				events, _, _ := s.Store.ListAuditEvents(ctx, store.AuditFilter{Limit: 200})
				if err := c.request(email); err != nil {
					t.Fatal(err)
				}
				jobs.mu.Lock()
				newMails, newRequests := len(jobs.args)-mails, len(jobs.requests)-requests
				jobs.mu.Unlock()
				after, _, _ := s.Store.ListAuditEvents(ctx, store.AuditFilter{Limit: 200})
				if newRequests != 1 || newMails != 0 || len(after) != len(events) {
					t.Errorf("%s: the request enqueued %d requests and %d mails and wrote %d audit events; want exactly one request job and nothing else",
						email, newRequests, newMails, len(after)-len(events))
					continue
				}
				a := jobs.requests[len(jobs.requests)-1]
				if strings.Contains(a.SealedEmail, "example.com") {
					t.Errorf("%s: the job holds the address in the clear", email)
				}
				a.SealedEmail = "" // differs with the address, as it must
				shapes = append(shapes, fmt.Sprintf("%+v", a))
			}
			if len(shapes) == 2 && shapes[0] != shapes[1] {
				t.Errorf("jobs for a known and an unknown address differ: %q vs %q", shapes[0], shapes[1])
			}
		})
	}
	// The jobs: a reset link and a verification link for the known
	// (unverified) address, nothing for the unknown one.
	jobs.work(t)
	reset := jobs.token(t, kr, mail.PasswordReset, "known@example.com")
	jobs.token(t, kr, mail.VerifyEmail, "known@example.com")
	for _, a := range jobs.args {
		if a.To == "unknown@example.com" {
			t.Errorf("a %s mail went to the unknown address", a.Template)
		}
	}
	if err := s.ResetPassword(ctx, reset, "a new and different passphrase 9", httpapi.Meta{}); err != nil {
		t.Errorf("reset with the emailed link: %v", err)
	}
}

// checkedPasswords is a PasswordVerifier that checks with the service's
// hasher and counts its calls (the lockout itself is session's, tested
// there).
type checkedPasswords struct {
	s     *Service
	calls int
}

func (c *checkedPasswords) VerifyPassword(ctx context.Context, userID, pw string, _ httpapi.Meta) error {
	c.calls++
	u, err := c.s.Store.GetUser(ctx, userID)
	if err != nil {
		return err
	}
	if ok, _, _ := c.s.Hasher.Verify(ctx, pw, u.PasswordHash); !ok {
		return ErrInvalidCurrentPassword
	}
	return nil
}

// TestEmailChangeNeedsRecentAuthenticationOrThePassword checks that an
// access token alone, from a sign-in longer ago than the reauthentication
// window, cannot move the account to a new address (and with it, password
// resets): the change needs a recent sign-in or the current password.
func TestEmailChangeNeedsRecentAuthenticationOrThePassword(t *testing.T) {
	ctx := context.Background()
	s, jobs, clk, _ := newTestService(t)
	passwords := &checkedPasswords{s: s}
	s.Passwords = passwords
	if _, err := s.Register(ctx, "eve@example.com", pw, "", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	u, _ := s.Store.GetUserByEmail(ctx, "eve@example.com")
	signedIn := clk.Now()
	clk.Advance(10 * time.Minute)
	old := httpapi.Meta{ActorID: u.ID, AuthTime: signedIn}
	change := func(email, current string, m httpapi.Meta) (store.User, error) {
		return s.UpdateProfile(ctx, u.ID, ProfilePatch{Email: optional[string]{Set: true, Value: email}, CurrentPassword: current}, m)
	}

	mails := jobs.mails(t)
	if _, err := change("thief@example.net", "", old); !errors.Is(err, ErrEmailChangeNeedsReauth) {
		t.Errorf("change with a 10-minute-old sign-in: err = %v, want ErrEmailChangeNeedsReauth", err)
	}
	if _, err := change("thief@example.net", "wrong password", old); !errors.Is(err, ErrInvalidCurrentPassword) {
		t.Errorf("change with a wrong current password: err = %v, want ErrInvalidCurrentPassword", err)
	}
	if got, _ := s.Store.GetUser(ctx, u.ID); got.PendingEmail != "" || jobs.mails(t) != mails {
		t.Fatalf("refused changes left pending %q and sent %d mails", got.PendingEmail, jobs.mails(t)-mails)
	}
	// A right current password given with a recent sign-in is still
	// checked; a wrong one refused.
	if _, err := change("new@example.com", "wrong password", httpapi.Meta{AuthTime: clk.Now()}); !errors.Is(err, ErrInvalidCurrentPassword) {
		t.Errorf("a wrong current password with a recent sign-in: err = %v, want it checked and refused", err)
	}
	if got, err := change("new@example.com", pw, old); err != nil || got.PendingEmail != "new@example.com" {
		t.Errorf("change with the current password = %q, %v", got.PendingEmail, err)
	}
	if got, err := change("newer@example.com", "", httpapi.Meta{AuthTime: clk.Now().Add(-4 * time.Minute)}); err != nil || got.PendingEmail != "newer@example.com" {
		t.Errorf("change 4 minutes after signing in = %q, %v", got.PendingEmail, err)
	}
	// Other fields, a case change of the current address and going back
	// to it need neither.
	calls := passwords.calls
	if _, err := s.UpdateProfile(ctx, u.ID, ProfilePatch{Name: optional[string]{Set: true, Value: "Eve"}}, old); err != nil {
		t.Errorf("name change with an old sign-in: %v", err)
	}
	if got, err := change("Eve@Example.com", "", old); err != nil || got.Email != "Eve@Example.com" || got.PendingEmail != "" {
		t.Errorf("case change with an old sign-in = %q pending %q, %v", got.Email, got.PendingEmail, err)
	}
	if passwords.calls != calls {
		t.Error("changes that are not a new address checked the password")
	}
}

// TestEmailChangeIsThrottled checks that email change requests, which
// send two messages each, are limited per user and count against the new
// address's send limit.
func TestEmailChangeIsThrottled(t *testing.T) {
	ctx := context.Background()
	s, jobs, clk, _ := newTestService(t)
	for _, e := range []string{"flood@example.com", "other@example.com"} {
		if _, err := s.Register(ctx, e, pw, "", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}
	u, _ := s.Store.GetUserByEmail(ctx, "flood@example.com")
	mails := jobs.mails(t)
	refused := 0
	for i := range 20 {
		_, err := s.UpdateProfile(ctx, u.ID, ProfilePatch{Email: optional[string]{Set: true, Value: "flood-" + itoa(i) + "@example.net"}}, httpapi.Meta{AuthTime: clk.Now()})
		if p := problemOf(err); p != nil && p.Code == "rate_limited" && p.Status == 429 && p.RetryAfter > 0 {
			refused++
		} else if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	limit := s.Config.EmailChangePerUser.Burst
	if refused != 20-limit {
		t.Errorf("%d of 20 email changes refused, want all beyond the per-user limit %d", refused, limit)
	}
	if sent := jobs.mails(t) - mails; sent != 2*limit {
		t.Errorf("20 email changes sent %d mails, want %d", sent, 2*limit)
	}

	// An address whose send limit was used up (here by forgot-password
	// requests) cannot be the target of a change either.
	for range s.Config.EmailPerAddress.Burst {
		if err := s.ForgotPassword(ctx, "target@example.org", httpapi.Meta{IP: "192.0.2.2"}); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := s.Store.GetUserByEmail(ctx, "other@example.com")
	_, err := s.UpdateProfile(ctx, other.ID, ProfilePatch{Email: optional[string]{Set: true, Value: "Target@example.org"}}, httpapi.Meta{AuthTime: clk.Now()})
	if p := problemOf(err); p == nil || p.Code != "rate_limited" {
		t.Errorf("change to an address over its send limit: err = %v, want rate_limited", err)
	}
}

// TestResetLinkToTheOldAddressDiesWithAnEmailChange checks that a reset
// link sent before an email change stops working once the change is
// confirmed, and that one issued to the old address while the change was
// being confirmed does not work either.
func TestResetLinkToTheOldAddressDiesWithAnEmailChange(t *testing.T) {
	ctx := context.Background()
	s, jobs, clk, kr := newTestService(t)
	if _, err := s.Register(ctx, "moving@example.com", pw, "", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyEmail(ctx, jobs.token(t, kr, mail.VerifyEmail, "moving@example.com"), httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	u, _ := s.Store.GetUserByEmail(ctx, "moving@example.com")
	if err := s.ForgotPassword(ctx, "moving@example.com", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	oldLink := jobs.token(t, kr, mail.PasswordReset, "moving@example.com")
	if _, err := s.UpdateProfile(ctx, u.ID, ProfilePatch{Email: optional[string]{Set: true, Value: "moved@example.com"}}, httpapi.Meta{AuthTime: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyEmail(ctx, jobs.token(t, kr, mail.EmailChangeVerify, "moved@example.com"), httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetPassword(ctx, oldLink, "a new and different passphrase 9", httpapi.Meta{}); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("reset link sent to the old address, after the change: err = %v, want ErrInvalidToken", err)
	}

	// A reset token for the old address that outlived the change (its
	// job read the account just before the change was confirmed).
	late := "late-token-for-the-old-address-000000000"
	err := s.Store.InTx(ctx, func(tx Tx) error {
		return s.issueToken(ctx, tx, store.User{ID: u.ID}, store.PurposePasswordReset, "moving@example.com", late, time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ResetPassword(ctx, late, "a new and different passphrase 9", httpapi.Meta{}); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("reset token issued to the old address: err = %v, want ErrInvalidToken", err)
	}

	// A link sent to the new address works.
	if err := s.ForgotPassword(ctx, "moved@example.com", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetPassword(ctx, jobs.token(t, kr, mail.PasswordReset, "moved@example.com"), "a new and different passphrase 9", httpapi.Meta{}); err != nil {
		t.Errorf("reset link sent to the new address: %v", err)
	}
}

// TestActivityShowsOnlyTheUsersOwnActorsAndAddresses checks that the
// activity trail does not show a user who else acted on their account, or
// from where: an administrator's id, IP and user agent stay out.
func TestActivityShowsOnlyTheUsersOwnActorsAndAddresses(t *testing.T) {
	ctx := context.Background()
	s, _, clk, _ := newTestService(t)
	if _, err := s.Register(ctx, "watched@example.com", pw, "", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	u, _ := s.Store.GetUserByEmail(ctx, "watched@example.com")
	admin, err := s.Create(ctx, NewUser{Email: "root@example.com", Password: pw, Admin: true}, httpapi.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []store.AuditEvent{
		{ActorID: admin.ID, Action: "admin.user_disabled", IP: "203.0.113.66", UserAgent: "admin-console/1.0", Data: map[string]any{"status": "disabled"}},
		{ActorID: "", Action: "user.password_reset_requested", IP: "198.51.100.99", UserAgent: "curl/8"},
		{ActorID: u.ID, Action: "user.logged_in", IP: "192.0.2.50", UserAgent: "Firefox"},
	} {
		clk.Advance(time.Second)
		e.OccurredAt, e.SubjectID = clk.Now(), u.ID
		if err := s.Store.AppendAuditEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	events, _, err := s.Activity(ctx, u.ID, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]Activity{}
	for _, a := range events {
		seen[a.Action] = a
	}
	if a := seen["admin.user_disabled"]; a.ActorID != "" || a.IP != "" || a.UserAgent != "" || a.Data["status"] != "disabled" || a.OccurredAt.IsZero() {
		t.Errorf("an administrator's event shows %+v; want action, time and data only", a)
	}
	if a := seen["user.password_reset_requested"]; a.IP != "" || a.UserAgent != "" {
		t.Errorf("an event without an actor shows IP %q and user agent %q", a.IP, a.UserAgent)
	}
	if a := seen["user.logged_in"]; a.ActorID != u.ID || a.IP != "192.0.2.50" || a.UserAgent != "Firefox" {
		t.Errorf("the user's own event = %+v; want its actor, IP and user agent", a)
	}
}

// TestStaleEmailRequestIsDropped checks that a forgot-password request
// still unworked when the link it asks for would have expired sends
// nothing.
func TestStaleEmailRequestIsDropped(t *testing.T) {
	ctx := context.Background()
	s, jobs, clk, _ := newTestService(t)
	if _, err := s.Register(ctx, "late@example.com", pw, "", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	before := jobs.mails(t)
	if err := s.ForgotPassword(ctx, "late@example.com", httpapi.Meta{IP: "192.0.2.2"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(s.Config.ResetTTL + time.Second)
	if got := jobs.mails(t); got != before {
		t.Errorf("a request worked after its link's lifetime sent %d emails", got-before)
	}
	if err := s.ForgotPassword(ctx, "late@example.com", httpapi.Meta{IP: "192.0.2.2"}); err != nil {
		t.Fatal(err)
	}
	if got := jobs.mails(t); got != before+1 {
		t.Errorf("a fresh request sent %d emails, want 1", got-before)
	}
}

// TestResetLiftsTheResetRequirement: a disowned sign-in ("this wasn't
// me", see internal/session) requires a password reset; a password change
// does not lift the requirement, the emailed reset does.
func TestResetLiftsTheResetRequirement(t *testing.T) {
	ctx := context.Background()
	s, jobs, clk, kr := newTestService(t)
	if _, err := s.Register(ctx, "disowned@example.com", pw, "", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	u, err := s.Store.GetUserByEmail(ctx, "disowned@example.com")
	if err != nil {
		t.Fatal(err)
	}
	u.PasswordResetRequiredAt = clk.Now()
	if _, err := s.Store.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.ChangePassword(ctx, u.ID, "", pw, "another passphrase nobody has 7", httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Store.GetUser(ctx, u.ID); got.PasswordResetRequiredAt.IsZero() {
		t.Error("a password change (with the password that is presumed known) lifted the reset requirement")
	}
	if err := s.ForgotPassword(ctx, "disowned@example.com", httpapi.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetPassword(ctx, jobs.token(t, kr, mail.PasswordReset, "disowned@example.com"), "a new and different passphrase 9", httpapi.Meta{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Store.GetUser(ctx, u.ID); !got.PasswordResetRequiredAt.IsZero() {
		t.Errorf("PasswordResetRequiredAt = %v after the reset, want cleared", got.PasswordResetRequiredAt)
	}
}
