package session

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/clocktest"
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
)

// The user agents of the refresh tests.
const (
	firefoxUA    = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	firefoxNewUA = "Mozilla/5.0 (X11; Linux x86_64; rv:129.0) Gecko/20100101 Firefox/129.0"
	safariUA     = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// Addresses: 192.0.2.0/24 is in Paris (Orange), 198.51.100.0/24 in
// Sydney (Telstra), 203.0.113.0/24 in Sydney too and a tor exit.
const (
	parisIP  = "192.0.2.10"
	paris2IP = "192.0.2.11"
	sydneyIP = "198.51.100.20"
	torIP    = "203.0.113.9"
)

func locateTestAddress(ip string) Location {
	switch {
	case strings.HasPrefix(ip, "192.0.2."):
		return Location{Country: "FR", City: "Paris", ASN: 3215, Latitude: 48.85, Longitude: 2.35, HasLocation: true}
	case strings.HasPrefix(ip, "198.51.100."):
		return Location{Country: "AU", City: "Sydney", ASN: 1221, Latitude: -33.87, Longitude: 151.21, HasLocation: true}
	case strings.HasPrefix(ip, "203.0.113."):
		return Location{Country: "AU", City: "Sydney", ASN: 1221, Latitude: -33.87, Longitude: 151.21, HasLocation: true, Lists: []string{risk.ListTor}}
	}
	return Location{}
}

// riskMailJobs records the emails enqueued.
type riskMailJobs struct {
	mu   sync.Mutex
	sent []mail.SendArgs
}

func (j *riskMailJobs) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error) {
	return j.InsertTx(ctx, nil, args, opts)
}

func (j *riskMailJobs) InsertTx(_ context.Context, _ any, args river.JobArgs, _ *river.InsertOpts) (int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if a, ok := args.(mail.SendArgs); ok {
		j.sent = append(j.sent, a)
	}
	return 1, nil
}

func (j *riskMailJobs) templates() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, a := range j.sent {
		out = append(out, a.Template+" to "+a.To)
	}
	return out
}

// countingStore counts the calls a refresh could make to the database
// besides its rotation.
type countingStore struct {
	Store
	rotations, others atomic.Int64
	starts, lookups   atomic.Int64 // StartSession, GetUserByEmail
}

func (c *countingStore) StartSession(ctx context.Context, in store.SignIn) (store.Session, store.User, error) {
	c.starts.Add(1)
	return c.Store.StartSession(ctx, in)
}

func (c *countingStore) GetUserByEmail(ctx context.Context, email string) (store.User, error) {
	c.lookups.Add(1)
	return c.Store.GetUserByEmail(ctx, email)
}

func (c *countingStore) RotateRefreshToken(ctx context.Context, r store.RotateRequest) (store.RotateResult, error) {
	c.rotations.Add(1)
	return c.Store.RotateRefreshToken(ctx, r)
}

func (c *countingStore) InTx(ctx context.Context, fn func(Tx) error) error {
	c.others.Add(1)
	return c.Store.InTx(ctx, fn)
}

func (c *countingStore) GetUser(ctx context.Context, id string) (store.User, error) {
	c.others.Add(1)
	return c.Store.GetUser(ctx, id)
}

func (c *countingStore) GetSession(ctx context.Context, id string) (store.Session, error) {
	c.others.Add(1)
	return c.Store.GetSession(ctx, id)
}

func (c *countingStore) GetRefreshTokenByHash(ctx context.Context, hash string) (store.RefreshToken, error) {
	c.others.Add(1)
	return c.Store.GetRefreshTokenByHash(ctx, hash)
}

func (c *countingStore) AppendAuditEvent(ctx context.Context, e store.AuditEvent) error {
	c.others.Add(1)
	return c.Store.AppendAuditEvent(ctx, e)
}

func (c *countingStore) RevokeSession(ctx context.Context, id, reason string, now time.Time) (store.Session, error) {
	c.others.Add(1)
	return c.Store.RevokeSession(ctx, id, reason, now)
}

func (c *countingStore) ListUserSessions(ctx context.Context, userID string, now time.Time) ([]store.Session, error) {
	c.others.Add(1)
	return c.Store.ListUserSessions(ctx, userID, now)
}

// countingProfiles counts the reads of risk profiles (they are written
// with a sign-in's session only).
type countingProfiles struct {
	RiskProfiles
	calls atomic.Int64
}

func (c *countingProfiles) GetRiskProfile(ctx context.Context, userID string) (store.RiskProfile, error) {
	c.calls.Add(1)
	return c.RiskProfiles.GetRiskProfile(ctx, userID)
}

// refreshRiskEnv is a sign-in service with risk scoring on a real store,
// the addresses placed by locateTestAddress, a clock the test moves, and
// what it published, denied and mailed.
type refreshRiskEnv struct {
	svc       *Service
	db        store.Store
	counted   *countingStore
	profiles  *countingProfiles
	clock     *clocktest.Clock
	tokens    *recordingTokens
	jobs      *riskMailJobs
	anomalies *recorder[event.SessionAnomaly]
	user      store.User
}

// refreshStores are the stores the refresh tests run on: SQLite always,
// PostgreSQL when GATEHOUSE_TEST_DATABASE_URL is set.
var refreshStores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"sqlite", func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
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

// eachRefreshStore runs fn on each store, with risk settings s.
func eachRefreshStore(t *testing.T, s risk.Settings, fn func(t *testing.T, e *refreshRiskEnv)) {
	for _, st := range refreshStores {
		t.Run(st.name, func(t *testing.T) { fn(t, newRefreshRiskEnv(t, st.open(t), s)) })
	}
}

func newRefreshRiskEnv(t *testing.T, db store.Store, s risk.Settings) *refreshRiskEnv {
	t.Helper()
	ctx := t.Context()
	if _, err := db.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	h := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 4)
	hash, err := h.Hash(ctx, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(time.Now().UTC().Truncate(time.Second))
	u, err := db.CreateUser(ctx, store.User{
		Email: "roamer@example.com", EmailNormalized: "roamer@example.com", Name: "Roamer",
		PasswordHash: hash, Status: store.UserActive, EmailVerifiedAt: clock.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := secret.GenerateKeyString("t1")
	kr, _ := secret.ParseKeys(ks)
	engine, err := risk.New(s)
	if err != nil {
		t.Fatal(err)
	}
	st := memory.New(clock.Now)
	t.Cleanup(func() { st.Close() })
	bus := event.NewBus()
	e := &refreshRiskEnv{
		db: db, clock: clock, tokens: &recordingTokens{}, jobs: &riskMailJobs{}, user: u,
		anomalies: record[event.SessionAnomaly](bus),
		counted:   &countingStore{Store: event.Narrow(db, bus, func(tx event.Tx) Tx { return tx })},
		profiles:  &countingProfiles{RiskProfiles: db},
	}
	if e.svc, err = New(Deps{
		Store: e.counted, Hasher: h, Tokens: e.tokens, Keys: kr, KV: st, Jobs: e.jobs,
		Locate: locateTestAddress, Risk: engine, RiskProfiles: e.profiles,
		Now: clock.Now, Config: Config{AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour, ReuseGrace: 10 * time.Second, Lockout: DefaultLockout()},
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

// signIn signs the user in from ip with the user agent ua and returns
// the session and its refresh token.
func (e *refreshRiskEnv) signIn(t *testing.T, ip, ua string) (store.Session, string) {
	t.Helper()
	res, err := e.svc.Login(t.Context(), "roamer@example.com", goodPassword, httpapi.Meta{IP: ip, UserAgent: ua})
	if err != nil {
		t.Fatalf("sign-in from %s: %v", ip, err)
	}
	e.tokens.take()
	return res.Session, res.RefreshToken
}

// refresh refreshes rt from ip with ua, after the clock moved by after.
func (e *refreshRiskEnv) refresh(t *testing.T, rt, ip, ua string, after time.Duration) (Refreshed, error) {
	t.Helper()
	e.clock.Advance(after)
	return e.svc.Refresh(t.Context(), RefreshRequest{Token: rt, Meta: httpapi.Meta{IP: ip, UserAgent: ua, RequestID: "req-" + ip}})
}

func reasonCodes(rs []store.SecurityReason) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}

// TestRefreshRiskSameNetworkIsFree: a refresh from the session's network
// with its browser (a newer version of it too) scores 0, records nothing
// and costs no database call besides its rotation.
func TestRefreshRiskSameNetworkIsFree(t *testing.T) {
	eachRefreshStore(t, risk.DefaultSettings(), func(t *testing.T, e *refreshRiskEnv) {
		_, rt := e.signIn(t, parisIP, firefoxUA)
		e.counted.rotations.Store(0)
		e.counted.others.Store(0)
		e.profiles.calls.Store(0)
		for i, ua := range []string{firefoxUA, firefoxNewUA} {
			res, err := e.refresh(t, rt, paris2IP, ua, time.Minute)
			if err != nil {
				t.Fatalf("refresh %d from Paris: %v", i+1, err)
			}
			rt = res.RefreshToken
		}
		if r, o, p := e.counted.rotations.Load(), e.counted.others.Load(), e.profiles.calls.Load(); r != 2 || o != 0 || p != 0 {
			t.Errorf("two refreshes made %d rotations, %d other store calls and %d profile calls; want 2, 0, 0", r, o, p)
		}
		if len(e.anomalies.seen) != 0 || auditActions(t, e.svc, e.user.ID)["security.session_anomaly"] != 0 {
			t.Errorf("refreshes from the session's network recorded anomalies: %+v", e.anomalies.seen)
		}
	})
}

// TestRefreshRiskAnomalyIsRecorded: a refresh from Sydney minutes after
// Paris, on another device, is an anomaly (85, below the block
// threshold): recorded with its score and reasons, and allowed.
func TestRefreshRiskAnomalyIsRecorded(t *testing.T) {
	eachRefreshStore(t, risk.DefaultSettings(), func(t *testing.T, e *refreshRiskEnv) {
		sess, rt := e.signIn(t, parisIP, firefoxUA)
		res, err := e.refresh(t, rt, paris2IP, firefoxUA, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		e.counted.others.Store(0)
		res, err = e.refresh(t, res.RefreshToken, sydneyIP, safariUA, 5*time.Minute)
		if err != nil || res.AccessToken == "" || res.RefreshToken == "" {
			t.Fatalf("refresh from Sydney = %+v, %v; want it allowed", res, err)
		}
		if n := e.counted.others.Load(); n != 1 {
			t.Errorf("an anomaly made %d store calls besides the rotation, want 1 (its record)", n)
		}
		if len(e.anomalies.seen) != 1 {
			t.Fatalf("SessionAnomaly events %+v, want one", e.anomalies.seen)
		}
		got := e.anomalies.seen[0]
		want := []string{"impossible_travel", "new_device", "new_country", "new_asn"}
		if got.UserID != e.user.ID || got.SessionID != sess.ID || got.Score != 85 || !slices.Equal(reasonCodes(got.Reasons), want) ||
			got.Country != "AU" || got.City != "Sydney" || got.ASN != 1221 || got.Revoked || got.Meta.IP != sydneyIP {
			t.Errorf("SessionAnomaly = %+v, want session %s, 85 for %v from Sydney, not revoked", got, sess.ID, want)
		}
		if n := auditActions(t, e.svc, e.user.ID)["security.session_anomaly"]; n != 1 {
			t.Errorf("%d session_anomaly audit events, want 1", n)
		}
		if _, denied := e.tokens.take(); len(denied) != 0 || len(e.jobs.templates()) != 0 {
			t.Errorf("an anomaly below the block threshold denied %v and mailed %v", denied, e.jobs.templates())
		}
		// The session lives on, now last seen in Sydney: Sydney again with
		// the same device is only another device than the sign-in's.
		if _, err := e.refresh(t, res.RefreshToken, sydneyIP, safariUA, time.Minute); err != nil {
			t.Fatalf("refresh from Sydney again: %v", err)
		}
		if len(e.anomalies.seen) != 1 {
			t.Errorf("a second refresh from Sydney was an anomaly: %+v", e.anomalies.seen[1:])
		}
	})
}

// TestRefreshRiskSessionSharing: one session used in turn from Paris and
// Sydney, with one browser, every few minutes: each refresh from the
// other city travels impossibly and is recorded.
func TestRefreshRiskSessionSharing(t *testing.T) {
	eachRefreshStore(t, risk.DefaultSettings(), func(t *testing.T, e *refreshRiskEnv) {
		sess, rt := e.signIn(t, parisIP, firefoxUA)
		for i, ip := range []string{sydneyIP, parisIP, sydneyIP, parisIP} {
			res, err := e.refresh(t, rt, ip, firefoxUA, 3*time.Minute)
			if err != nil {
				t.Fatalf("refresh %d from %s: %v", i+1, ip, err)
			}
			rt = res.RefreshToken
		}
		if len(e.anomalies.seen) != 4 {
			t.Fatalf("%d SessionAnomaly events, want one per refresh (4)", len(e.anomalies.seen))
		}
		for i, a := range e.anomalies.seen {
			if a.SessionID != sess.ID || a.Revoked || len(a.Reasons) == 0 || a.Reasons[0].Code != "impossible_travel" || slices.Contains(reasonCodes(a.Reasons), "new_device") {
				t.Errorf("anomaly %d = %+v, want impossible_travel on the same device, not revoked", i+1, a)
			}
		}
	})
}

// TestRefreshRiskBlockEndsTheSession: at the block threshold (lowered to
// 80) the refresh from Sydney on another device is refused, its session
// and refresh family revoked, its access tokens denied, the user mailed
// and the anomaly recorded as revoked.
func TestRefreshRiskBlockEndsTheSession(t *testing.T) {
	s := risk.DefaultSettings()
	s.Block = 80
	eachRefreshStore(t, s, func(t *testing.T, e *refreshRiskEnv) {
		ctx := t.Context()
		sess, rt := e.signIn(t, parisIP, firefoxUA)
		if _, err := e.refresh(t, rt, sydneyIP, safariUA, 5*time.Minute); !errors.Is(err, ErrInvalidGrant) {
			t.Fatalf("blocked refresh: err = %v, want ErrInvalidGrant", err)
		}
		issued, denied := e.tokens.take()
		if len(issued) != 0 || !slices.Equal(denied, []string{sess.ID}) {
			t.Errorf("blocked refresh issued %d access tokens and denied %v; want none and the session", len(issued), denied)
		}
		got, err := e.db.GetSession(ctx, sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.RevokedAt.IsZero() || got.RevokedReason != ReasonRiskAnomaly {
			t.Errorf("session revoked at %v for %q, want now for %s", got.RevokedAt, got.RevokedReason, ReasonRiskAnomaly)
		}
		if listed(t, e, sess.ID) {
			t.Error("the ended session is still listed")
		}
		if want := []string{"session_ended_risk to roamer@example.com"}; !slices.Equal(e.jobs.templates(), want) {
			t.Errorf("mailed %v, want %v", e.jobs.templates(), want)
		}
		if len(e.anomalies.seen) != 1 || !e.anomalies.seen[0].Revoked || e.anomalies.seen[0].Score != 85 {
			t.Errorf("SessionAnomaly events %+v, want one, revoked, 85", e.anomalies.seen)
		}
		if n := auditActions(t, e.svc, e.user.ID)["security.session_anomaly"]; n != 1 {
			t.Errorf("%d session_anomaly audit events, want 1", n)
		}
		// Within the grace window the refused token gets nothing either.
		if _, err := e.refresh(t, rt, sydneyIP, safariUA, time.Second); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("the blocked token again: err = %v, want ErrInvalidGrant", err)
		}
		if len(e.anomalies.seen) != 1 {
			t.Errorf("the refused token again recorded another anomaly")
		}
	})
}

// listed reports whether the session is among the user's live ones.
func listed(t *testing.T, e *refreshRiskEnv, sessionID string) bool {
	t.Helper()
	live, err := e.db.ListUserSessions(t.Context(), e.user.ID, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(live, func(s store.Session) bool { return s.ID == sessionID })
}

// TestRefreshRiskBlockWithoutItsRecord: a subscriber refusing the
// anomaly rolls its record back (audit event, email), but the session
// ends all the same and the refresh is refused.
func TestRefreshRiskBlockWithoutItsRecord(t *testing.T) {
	eachRefreshStore(t, risk.DefaultSettings(), func(t *testing.T, e *refreshRiskEnv) {
		sess, rt := e.signIn(t, parisIP, firefoxUA)
		e.anomalies.refuse = true
		if _, err := e.refresh(t, rt, torIP, safariUA, 5*time.Minute); !errors.Is(err, ErrInvalidGrant) {
			t.Fatalf("refresh over tor from Sydney: err = %v, want ErrInvalidGrant", err)
		}
		got, err := e.db.GetSession(t.Context(), sess.ID)
		if err != nil || got.RevokedReason != ReasonRiskAnomaly {
			t.Fatalf("session = %+v, %v; want it revoked for %s", got, err, ReasonRiskAnomaly)
		}
		if _, denied := e.tokens.take(); !slices.Equal(denied, []string{sess.ID}) {
			t.Errorf("denied %v, want the session", denied)
		}
		if n := auditActions(t, e.svc, e.user.ID)["security.session_anomaly"]; n != 0 {
			t.Errorf("%d session_anomaly audit events after the refusal, want 0 (rolled back)", n)
		}
	})
}

// TestRefreshRiskBlockInParallel: one refresh token presented at once by
// many clients over tor from Sydney: the one that rotates it is scored
// and ends the session; the others (grace replays or refused) end with
// no usable token, and the anomaly is recorded once.
func TestRefreshRiskBlockInParallel(t *testing.T) {
	eachRefreshStore(t, risk.DefaultSettings(), func(t *testing.T, e *refreshRiskEnv) {
		sess, rt := e.signIn(t, parisIP, firefoxUA)
		e.clock.Advance(5 * time.Minute)
		const n = 8
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			handed  []string
			refused int
		)
		for range n {
			wg.Go(func() {
				res, err := e.svc.Refresh(t.Context(), RefreshRequest{Token: rt, Meta: httpapi.Meta{IP: torIP, UserAgent: safariUA}})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, ErrInvalidGrant):
					refused++
				case err != nil:
					t.Errorf("parallel refresh: %v", err)
				default:
					handed = append(handed, res.RefreshToken)
				}
			})
		}
		wg.Wait()
		if refused == 0 {
			t.Errorf("no parallel refresh was refused (%d handed out)", len(handed))
		}
		if len(e.anomalies.seen) != 1 || !e.anomalies.seen[0].Revoked {
			t.Errorf("SessionAnomaly events %+v, want one, revoked", e.anomalies.seen)
		}
		got, err := e.db.GetSession(t.Context(), sess.ID)
		if err != nil || got.RevokedReason != ReasonRiskAnomaly {
			t.Fatalf("session = %+v, %v; want it revoked for %s", got, err, ReasonRiskAnomaly)
		}
		if _, denied := e.tokens.take(); !slices.Contains(denied, sess.ID) {
			t.Errorf("denied %v, want the session", denied)
		}
		for _, tok := range append(handed, rt) {
			if _, err := e.refresh(t, tok, parisIP, firefoxUA, 0); !errors.Is(err, ErrInvalidGrant) {
				t.Errorf("a token of the ended session still refreshes: %v", err)
			}
		}
	})
}

// TestSignInRoundTrips: scoring a password sign-in costs one database
// read (the profile) beyond the sign-in's own (the user, and the one step
// that records the session), the profile it learned being written in that
// step: no transaction or write of its own.
func TestSignInRoundTrips(t *testing.T) {
	for _, b := range refreshStores {
		t.Run(b.name, func(t *testing.T) {
			e := newRefreshRiskEnv(t, b.open(t), risk.DefaultSettings())
			const ua = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
			e.signIn(t, "192.0.2.10", ua)
			e.clock.Advance(time.Hour)
			e.counted.starts.Store(0)
			e.counted.lookups.Store(0)
			e.counted.others.Store(0)
			e.profiles.calls.Store(0)
			sess, _ := e.signIn(t, "192.0.2.10", ua)
			if l, p, s, o := e.counted.lookups.Load(), e.profiles.calls.Load(), e.counted.starts.Load(), e.counted.others.Load(); l != 1 || p != 1 || s != 1 || o != 0 {
				t.Errorf("a scored sign-in: %d user lookups, %d profile reads, %d StartSession, %d other calls; want 1, 1, 1, 0", l, p, s, o)
			}
			if sess.Risk == nil {
				t.Fatal("the session was not scored")
			}
			// The profile learned both sign-ins.
			sp, err := e.db.GetRiskProfile(t.Context(), e.user.ID)
			if err != nil {
				t.Fatal(err)
			}
			p, err := risk.DecodeProfile(sp.Profile)
			if err != nil {
				t.Fatal(err)
			}
			if n := p.SignIns; n != 2 {
				t.Errorf("profile holds %d sign-ins, want 2", n)
			}
		})
	}
}
