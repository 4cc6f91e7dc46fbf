package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/internal/user"
)

// sqlBackends open a migrated store of each SQL backend.
var sqlBackends = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"sqlite", func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrator().Up(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// mailJobs keeps the mail jobs enqueued, which must be enqueued in a
// transaction.
type mailJobs struct {
	mu   sync.Mutex
	sent []mail.SendArgs
}

func (j *mailJobs) Insert(context.Context, river.JobArgs, *river.InsertOpts) (int64, error) {
	return 0, errors.New("job enqueued outside a transaction")
}

func (j *mailJobs) InsertTx(_ context.Context, tx any, args river.JobArgs, _ *river.InsertOpts) (int64, error) {
	if tx == nil {
		return 0, errors.New("job enqueued outside a transaction")
	}
	a, ok := args.(mail.SendArgs)
	if !ok {
		return 0, fmt.Errorf("unexpected job %T", args)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sent = append(j.sent, a)
	return int64(len(j.sent)), nil
}

// of returns the jobs of the template.
func (j *mailJobs) of(template string) []mail.SendArgs {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []mail.SendArgs
	for _, a := range j.sent {
		if a.Template == template {
			out = append(out, a)
		}
	}
	return out
}

// notMeEnv is a sign-in service with risk scoring (every address in
// Paris) on one SQL backend, with one user, whose events are recorded.
type notMeEnv struct {
	svc      *Service
	db       store.Store
	jobs     *mailJobs
	tokens   *fakeTokens
	keys     *secret.Keyring
	user     store.User
	disowned *recorder[event.SignInDisowned]
	revoked  *recorder[event.SessionsRevoked]
}

const appURL = "https://app.example.com/"

func newNotMeEnv(t *testing.T, db store.Store) *notMeEnv {
	t.Helper()
	ctx := context.Background()
	bus := event.NewBus()
	e := &notMeEnv{db: db, jobs: &mailJobs{}, tokens: &fakeTokens{}, disowned: record[event.SignInDisowned](bus), revoked: record[event.SessionsRevoked](bus)}
	ks, _ := secret.GenerateKeyString("t1")
	e.keys, _ = secret.ParseKeys(ks)
	h := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 4)
	hash, err := h.Hash(ctx, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if e.user, err = db.CreateUser(ctx, store.User{
		Email: "owner@example.com", EmailNormalized: "owner@example.com", Name: "Owner", PasswordHash: hash, Status: store.UserActive, EmailVerifiedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	engine, err := risk.New(risk.DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	lk := DefaultLockout()
	lk.IPFailures = 0
	e.svc, err = New(Deps{
		Store: event.Narrow(db, bus, func(tx event.Tx) Tx { return tx }), Hasher: h, Tokens: e.tokens, Keys: e.keys,
		KV: memory.New(time.Now), Jobs: e.jobs, Risk: engine, RiskProfiles: db,
		Locate: func(string) Location {
			return Location{Country: "FR", City: "Paris", ASN: 3215, Latitude: 48.85, Longitude: 2.35, HasLocation: true}
		},
		Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Config: Config{AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour, Lockout: lk, AppURL: appURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// eachSQLBackend runs fn with a fresh environment on each SQL backend.
func eachSQLBackend(t *testing.T, fn func(t *testing.T, e *notMeEnv)) {
	for _, b := range sqlBackends {
		t.Run(b.name, func(t *testing.T) { fn(t, newNotMeEnv(t, b.open(t))) })
	}
}

const (
	firefoxLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	chromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)

func (e *notMeEnv) login(t *testing.T, ua, deviceID string) Result {
	t.Helper()
	res, err := e.svc.Login(context.Background(), e.user.Email, goodPassword, httpapi.Meta{IP: "192.0.2.10", UserAgent: ua, DeviceID: deviceID})
	if err != nil {
		t.Fatalf("sign-in from %q/%q: %v", ua, deviceID, err)
	}
	return res
}

// audited returns the user's audit events of action.
func (e *notMeEnv) audited(t *testing.T, action string) []store.AuditEvent {
	t.Helper()
	events, _, err := e.db.ListAuditEvents(context.Background(), store.AuditFilter{SubjectID: e.user.ID, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(events, func(ev store.AuditEvent) bool { return ev.Action != action })
}

// notMeLink opens the sealed link of a new_sign_in job and returns it.
func (e *notMeEnv) notMeLink(t *testing.T, a mail.SendArgs) *url.URL {
	t.Helper()
	raw, err := e.keys.Open(a.SealedLink, []byte("gatehouse/mail.send\x00"+a.Template+"\x00"+a.To))
	if err != nil {
		t.Fatalf("open the sealed link: %v", err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestWasThisYouEmail: the first sign-in sends nothing (no history), nor
// one from a known device; one from a new device sends the new-sign-in
// email, in its transaction, with the time, place, device, IP and a
// "this wasn't me" link; a second one sends another, and both links
// work (the second does not supersede the first).
func TestWasThisYouEmail(t *testing.T) {
	eachSQLBackend(t, func(t *testing.T, e *notMeEnv) {
		ctx := context.Background()
		first := e.login(t, firefoxLinux, "laptop")
		if r := first.Session.Risk; r == nil || len(r.Reasons) != 0 {
			t.Fatalf("first sign-in risk = %+v, want scored without reasons", r)
		}
		e.login(t, firefoxLinux, "laptop")
		if sent := e.jobs.of(mail.NewSignIn); len(sent) != 0 {
			t.Fatalf("new_sign_in emails after the first and a known device's sign-ins: %d", len(sent))
		}

		res := e.login(t, chromeWindows, "desktop")
		if r := res.Session.Risk; r == nil || !slices.Contains(r.Reasons, "new_device") {
			t.Fatalf("sign-in from a new device: risk %+v, want new_device", r)
		}
		sent := e.jobs.of(mail.NewSignIn)
		if len(sent) != 1 {
			t.Fatalf("new_sign_in emails after a new device = %d, want 1", len(sent))
		}
		a := sent[0]
		if a.To != e.user.Email {
			t.Errorf("sent to %q", a.To)
		}
		d := a.Data
		if d.Place != "Paris, FR" || d.UserAgent != "Chrome on Windows" || d.IP != "192.0.2.10" || d.RecipientName != "Owner" ||
			!d.Time.Equal(res.Session.CreatedAt) || d.ExpiresIn != NotMeTTL {
			t.Errorf("email data = %+v", d)
		}
		link := e.notMeLink(t, a)
		tok := link.Query().Get("token")
		if got := link.Scheme + "://" + link.Host + link.Path; got != "https://app.example.com/not-me" || len(tok) < 40 {
			t.Fatalf("link %s, want https://app.example.com/not-me?token=<32 random bytes>", link.Redacted())
		}
		// Stored hashed, for 7 days, bound to the user.
		stored, err := e.db.GetOneTimeToken(ctx, store.PurposeNotMe, secret.HashToken(tok), time.Now())
		if err != nil || stored.UserID != e.user.ID || stored.TokenHash == tok {
			t.Fatalf("stored token = %+v, %v", stored, err)
		}
		if ttl := stored.ExpiresAt.Sub(stored.CreatedAt); ttl != 7*24*time.Hour {
			t.Errorf("token lives %v, want 7 days", ttl)
		}
		if _, err := e.db.GetOneTimeToken(ctx, store.PurposeNotMe, secret.HashToken(tok), time.Now().Add(7*24*time.Hour+time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token still valid after 7 days: %v", err)
		}

		// Another new device: another email, and both links work.
		e.login(t, chromeWindows, "tablet")
		sent = e.jobs.of(mail.NewSignIn)
		if len(sent) != 2 {
			t.Fatalf("new_sign_in emails after a second new device = %d, want 2", len(sent))
		}
		tok2 := e.notMeLink(t, sent[1]).Query().Get("token")
		for _, tk := range []string{tok, tok2} {
			if _, err := e.db.GetOneTimeToken(ctx, store.PurposeNotMe, secret.HashToken(tk), time.Now()); err != nil {
				t.Errorf("a not_me link stopped working when another was sent: %v", err)
			}
		}
	})
}

// TestWasThisYouAfterSecondFactor: a session started after a second
// factor (Complete) from a new country asks too; one without new_device
// or new_country does not; and a login waiting for its second factor when
// the sign-in is disowned cannot finish.
func TestWasThisYouAfterSecondFactor(t *testing.T) {
	eachSQLBackend(t, func(t *testing.T, e *notMeEnv) {
		ctx := context.Background()
		m := httpapi.Meta{IP: "198.51.100.20", UserAgent: firefoxLinux}
		stamp := PasswordStamp(e.user.PasswordHash)
		if _, err := e.svc.Complete(ctx, e.user.ID, stamp, []string{"pwd", "mfa"}, m, &store.SessionRisk{Score: 5, Reasons: []string{"new_asn"}}); err != nil {
			t.Fatal(err)
		}
		if n := len(e.jobs.of(mail.NewSignIn)); n != 0 {
			t.Fatalf("new_sign_in emails for a new network only = %d, want 0", n)
		}
		if _, err := e.svc.Complete(ctx, e.user.ID, stamp, []string{"pwd", "mfa"}, m, &store.SessionRisk{Score: 65, Reasons: []string{"impossible_travel", "new_country"}}); err != nil {
			t.Fatal(err)
		}
		sent := e.jobs.of(mail.NewSignIn)
		if len(sent) != 1 {
			t.Fatalf("new_sign_in emails after a stepped-up sign-in from a new country = %d, want 1", len(sent))
		}
		if _, err := e.svc.NotMe(ctx, e.notMeLink(t, sent[0]).Query().Get("token"), httpapi.Meta{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Complete(ctx, e.user.ID, stamp, []string{"pwd", "mfa"}, m, nil); !errors.Is(err, ErrPasswordResetRequired) {
			t.Errorf("second factor of a password sign-in after the disowning: %v, want ErrPasswordResetRequired", err)
		}
		// A sign-in without a password (social, magic link) is not affected.
		if _, err := e.svc.Complete(ctx, e.user.ID, "", []string{"fed"}, m, nil); err != nil {
			t.Errorf("social sign-in after the disowning: %v", err)
		}
	})
}

// TestNotMe: redeeming the link ends every session of the user once
// (their access tokens denied, their refresh tokens dead), requires a
// password reset (a correct password answers ErrPasswordResetRequired,
// a wrong one ErrInvalidCredentials), deletes the other links, and is
// recorded (audit event, SessionsRevoked with reason not_me,
// SignInDisowned). The link then no longer works.
func TestNotMe(t *testing.T) {
	eachSQLBackend(t, func(t *testing.T, e *notMeEnv) {
		ctx := context.Background()
		sessions := []Result{e.login(t, firefoxLinux, "laptop"), e.login(t, chromeWindows, "desktop"), e.login(t, chromeWindows, "tablet")}
		sent := e.jobs.of(mail.NewSignIn)
		if len(sent) != 2 {
			t.Fatalf("new_sign_in emails = %d, want 2", len(sent))
		}
		tok, other := e.notMeLink(t, sent[0]).Query().Get("token"), e.notMeLink(t, sent[1]).Query().Get("token")

		m := httpapi.Meta{IP: "192.0.2.99", UserAgent: firefoxLinux, RequestID: "req-not-me"}
		n, err := e.svc.NotMe(ctx, tok, m)
		if err != nil || n != 3 {
			t.Fatalf("NotMe = %d, %v; want 3 sessions ended", n, err)
		}
		var ids []string
		for _, r := range sessions {
			ids = append(ids, r.Session.ID)
			sess, err := e.db.GetSession(ctx, r.Session.ID)
			if err != nil || sess.RevokedAt.IsZero() || sess.RevokedReason != "not_me" {
				t.Errorf("session %s = revoked at %v for %q, %v; want revoked for not_me", r.Session.ID, sess.RevokedAt, sess.RevokedReason, err)
			}
			if _, err := e.svc.Refresh(ctx, RefreshRequest{Token: r.RefreshToken}); !errors.Is(err, ErrInvalidGrant) {
				t.Errorf("refresh of an ended session: %v, want ErrInvalidGrant", err)
			}
		}
		slices.Sort(ids)
		if denied := e.tokens.deniedSessions(); !slices.Equal(slices.Sorted(slices.Values(denied)), ids) {
			t.Errorf("denied sessions %v, want each of %v once", denied, ids)
		}
		if live, err := e.svc.List(ctx, e.user.ID); err != nil || len(live) != 0 {
			t.Errorf("live sessions = %v, %v", live, err)
		}
		u, err := e.db.GetUser(ctx, e.user.ID)
		if err != nil || u.PasswordResetRequiredAt.IsZero() {
			t.Fatalf("user PasswordResetRequiredAt = %v, %v; want set", u.PasswordResetRequiredAt, err)
		}
		if len(e.revoked.seen) != 1 || e.revoked.seen[0].Reason != "not_me" || len(e.revoked.seen[0].SessionIDs) != 3 {
			t.Errorf("SessionsRevoked = %+v, want one with the 3 sessions, reason not_me", e.revoked.seen)
		}
		if len(e.disowned.seen) != 1 || e.disowned.seen[0].UserID != e.user.ID || len(e.disowned.seen[0].SessionIDs) != 3 || e.disowned.seen[0].Meta.IP != "192.0.2.99" {
			t.Errorf("SignInDisowned = %+v", e.disowned.seen)
		}
		if e.disowned.seen[0].EventName() != "security.sign_in_disowned" {
			t.Errorf("event name %q", e.disowned.seen[0].EventName())
		}
		events := e.audited(t, "security.not_me")
		if len(events) != 1 || events[0].IP != "192.0.2.99" || events[0].RequestID != "req-not-me" || events[0].ActorID != e.user.ID || events[0].Data["sessions_ended"] != float64(3) {
			t.Errorf("security.not_me audit events = %+v", events)
		}

		// Used, and the other link deleted with it.
		for name, tk := range map[string]string{"used": tok, "other": other} {
			if _, err := e.svc.NotMe(ctx, tk, m); !errors.Is(err, user.ErrInvalidToken) {
				t.Errorf("%s link: %v, want ErrInvalidToken", name, err)
			}
		}
		if len(e.disowned.seen) != 1 {
			t.Errorf("a refused link was recorded: %d SignInDisowned", len(e.disowned.seen))
		}

		// Password sign-in: a wrong password is what it always is; the
		// right one is refused until the password is reset.
		if _, err := e.svc.Login(ctx, e.user.Email, "a wrong password", m); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("wrong password: %v, want ErrInvalidCredentials", err)
		}
		if _, err := e.svc.Login(ctx, e.user.Email, goodPassword, m); !errors.Is(err, ErrPasswordResetRequired) {
			t.Errorf("right password: %v, want ErrPasswordResetRequired", err)
		}
		if live, _ := e.svc.List(ctx, e.user.ID); len(live) != 0 {
			t.Errorf("a refused sign-in started a session: %v", live)
		}
		// The reset (internal/user) clears it: sign-in works again.
		u.PasswordResetRequiredAt = time.Time{}
		if _, err := e.db.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Login(ctx, e.user.Email, goodPassword, m); err != nil {
			t.Errorf("sign-in once the requirement is lifted: %v", err)
		}
	})
}

// TestNotMeBadToken: unknown, expired, malformed and empty tokens change
// nothing; the unknown and expired ones answer as a bad reset token does.
func TestNotMeBadToken(t *testing.T) {
	eachSQLBackend(t, func(t *testing.T, e *notMeEnv) {
		ctx := context.Background()
		res := e.login(t, firefoxLinux, "laptop")
		expired, _ := secret.NewToken(32)
		if err := e.db.CreateOneTimeToken(ctx, store.OneTimeToken{
			UserID: e.user.ID, Purpose: store.PurposeNotMe, TokenHash: secret.HashToken(expired), ExpiresAt: time.Now().Add(-time.Second),
		}); err != nil {
			t.Fatal(err)
		}
		reset, _ := secret.NewToken(32)
		if err := e.db.CreateOneTimeToken(ctx, store.OneTimeToken{
			UserID: e.user.ID, Purpose: store.PurposePasswordReset, TokenHash: secret.HashToken(reset), Email: e.user.Email, ExpiresAt: time.Now().Add(time.Hour),
		}); err != nil {
			t.Fatal(err)
		}
		for name, tok := range map[string]string{
			"unknown": "8ZFmzyxrqdUN4lbbRTgznPubYnUjOtxsanZMYMqf1Vc", "expired": expired, "a reset token": reset, "not base64": "%%%",
		} {
			if _, err := e.svc.NotMe(ctx, tok, httpapi.Meta{}); !errors.Is(err, user.ErrInvalidToken) {
				t.Errorf("%s: %v, want user.ErrInvalidToken", name, err)
			}
		}
		for name, tok := range map[string]string{"empty": "", "too long": strings.Repeat("a", 513)} {
			var p *httpapi.Problem
			if _, err := e.svc.NotMe(ctx, tok, httpapi.Meta{}); !errors.As(err, &p) || p.Status != 422 {
				t.Errorf("%s: %v, want a validation problem", name, err)
			}
		}
		if sess, err := e.db.GetSession(ctx, res.Session.ID); err != nil || !sess.RevokedAt.IsZero() {
			t.Errorf("a bad token ended the session: %+v, %v", sess, err)
		}
		if u, _ := e.db.GetUser(ctx, e.user.ID); !u.PasswordResetRequiredAt.IsZero() {
			t.Error("a bad token required a password reset")
		}
		if len(e.disowned.seen)+len(e.revoked.seen) != 0 || len(e.tokens.deniedSessions()) != 0 {
			t.Error("a bad token published events or denied sessions")
		}
	})
}

// TestNotMeParallel: of 20 parallel redemptions of one link exactly one
// succeeds, and the sessions are ended once.
func TestNotMeParallel(t *testing.T) {
	eachSQLBackend(t, func(t *testing.T, e *notMeEnv) {
		e.login(t, firefoxLinux, "laptop")
		e.login(t, chromeWindows, "desktop")
		sent := e.jobs.of(mail.NewSignIn)
		if len(sent) != 1 {
			t.Fatalf("new_sign_in emails = %d, want 1", len(sent))
		}
		tok := e.notMeLink(t, sent[0]).Query().Get("token")
		const parallel = 20
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			ns    = make([]int, parallel)
			errs  = make([]error, parallel)
		)
		for i := range parallel {
			wg.Go(func() {
				<-start
				ns[i], errs[i] = e.svc.NotMe(context.Background(), tok, httpapi.Meta{IP: "192.0.2.99"})
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
				if ns[i] != 2 {
					t.Errorf("the winning redemption ended %d sessions, want 2", ns[i])
				}
			case !errors.Is(err, user.ErrInvalidToken):
				t.Errorf("redemption: %v, want success or ErrInvalidToken", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d parallel redemptions succeeded, want exactly 1", won, parallel)
		}
		if len(e.disowned.seen) != 1 || len(e.revoked.seen) != 1 || len(e.tokens.deniedSessions()) != 2 {
			t.Errorf("recorded %d SignInDisowned, %d SessionsRevoked, %d denials; want 1, 1, 2",
				len(e.disowned.seen), len(e.revoked.seen), len(e.tokens.deniedSessions()))
		}
		if events := e.audited(t, "security.not_me"); len(events) != 1 {
			t.Errorf("security.not_me audit events = %d, want 1", len(events))
		}
	})
}
