package session

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/store"
)

var errRefused = errors.New("subscriber refused")

// recorder subscribes to E on bus, keeps what it sees and refuses while
// refuse is set.
type recorder[E event.Event] struct {
	seen   []E
	refuse bool
}

func record[E event.Event](bus *event.Bus) *recorder[E] {
	r := &recorder[E]{}
	event.Subscribe(bus, func(_ context.Context, _ event.Tx, e E) error {
		if r.refuse {
			return errRefused
		}
		r.seen = append(r.seen, e)
		return nil
	})
	return r
}

func auditActions(t *testing.T, s *Service, userID string) map[string]int {
	t.Helper()
	evs, _, err := s.Store.ListAuditEvents(context.Background(), store.AuditFilter{SubjectID: userID})
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range evs {
		n[e.Action]++
	}
	return n
}

// TestLoginPublishesSessionStarted checks that a sign-in publishes
// event.SessionStarted in the transaction that starts the session, with
// or without a session cap, and that a subscriber's error leaves no
// session and no sign-in record.
func TestLoginPublishesSessionStarted(t *testing.T) {
	for _, max := range []int{0, 3} {
		bus := event.NewBus()
		started := record[event.SessionStarted](bus)
		base, _ := newTestServiceOn(t, memory.New(time.Now), DefaultLockout(), bus, "sam@example.com")
		d := base.Deps
		d.Config.MaxSessions = max
		s, err := New(d)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		res, err := s.Login(ctx, "sam@example.com", goodPassword, httpapi.Meta{IP: "192.0.2.1", RequestID: "req-1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(started.seen) != 1 || started.seen[0].Session.ID != res.Session.ID || started.seen[0].Meta.RequestID != "req-1" {
			t.Fatalf("max %d: SessionStarted events %+v, want the login's session", max, started.seen)
		}
		started.refuse = true
		if _, err := s.Login(ctx, "sam@example.com", goodPassword, httpapi.Meta{IP: "192.0.2.1"}); !errors.Is(err, errRefused) {
			t.Fatalf("max %d: login with a refusing subscriber: err = %v, want it", max, err)
		}
		live, err := s.List(ctx, res.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(live) != 1 {
			t.Errorf("max %d: %d live sessions after a refused sign-in, want 1", max, len(live))
		}
		if n := auditActions(t, s, res.User.ID)["user.logged_in"]; n != 1 {
			t.Errorf("max %d: %d sign-in records, want 1", max, n)
		}
	}
}

// TestReusePublishesRefreshTokenReused checks that a replayed refresh
// token publishes event.RefreshTokenReused with its security record, and
// that a subscriber's error rolls the record back (the session is revoked
// regardless: that happened in the rotation).
func TestReusePublishesRefreshTokenReused(t *testing.T) {
	bus := event.NewBus()
	reused := record[event.RefreshTokenReused](bus)
	s, _ := newTestServiceOn(t, memory.New(time.Now), DefaultLockout(), bus, "rita@example.com")
	ctx := context.Background()
	m := httpapi.Meta{IP: "192.0.2.2"}
	replay := func() string {
		t.Helper()
		res, err := s.Login(ctx, "rita@example.com", goodPassword, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Refresh(ctx, RefreshRequest{Token: res.RefreshToken, Meta: m}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Refresh(ctx, RefreshRequest{Token: res.RefreshToken, Meta: m}); !errors.Is(err, ErrInvalidGrant) {
			t.Fatalf("replayed refresh token: err = %v, want ErrInvalidGrant", err)
		}
		return res.Session.ID
	}
	first := replay()
	if len(reused.seen) != 1 || reused.seen[0].Session.ID != first {
		t.Fatalf("RefreshTokenReused events %+v, want one for session %s", reused.seen, first)
	}
	u, err := s.Store.GetUserByEmail(ctx, "rita@example.com")
	if err != nil {
		t.Fatal(err)
	}
	reused.refuse = true
	replay()
	if n := auditActions(t, s, u.ID)["security.refresh_token_reuse"]; n != 1 {
		t.Errorf("%d reuse records, want 1 (the refused one rolled back)", n)
	}
}

// TestLockPublishesAccountLocked checks that a lockout publishes
// event.AccountLocked with its record, and that a subscriber's error
// rolls the record back (the lock stands: it lives in the ephemeral
// store).
func TestLockPublishesAccountLocked(t *testing.T) {
	bus := event.NewBus()
	locked := record[event.AccountLocked](bus)
	lk := DefaultLockout()
	lk.Threshold = 2
	s, _ := newTestServiceOn(t, memory.New(time.Now), lk, bus, "lee@example.com", "lou@example.com")
	ctx := context.Background()
	lock := func(email string) {
		t.Helper()
		for range 2 {
			if _, err := s.Login(ctx, email, "wrong password", httpapi.Meta{IP: "192.0.2.3"}); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("wrong password: err = %v", err)
			}
		}
	}
	lee, _ := s.Store.GetUserByEmail(ctx, "lee@example.com")
	lou, _ := s.Store.GetUserByEmail(ctx, "lou@example.com")
	lock("lee@example.com")
	if len(locked.seen) != 1 || locked.seen[0].UserID != lee.ID || locked.seen[0].Action != "security.account_locked" || locked.seen[0].Lock <= 0 {
		t.Fatalf("AccountLocked events %+v, want one for lee", locked.seen)
	}
	if n := auditActions(t, s, lee.ID)["security.account_locked"]; n != 1 {
		t.Errorf("%d lock records for lee, want 1", n)
	}
	locked.refuse = true
	lock("lou@example.com")
	if n := auditActions(t, s, lou.ID)["security.account_locked"]; n != 0 {
		t.Errorf("%d lock records for lou, want none (the subscriber refused)", n)
	}
}

// signedIn authenticates every request as one user's session.
type signedIn auth.Principal

func (p signedIn) Authenticate(*http.Request) (auth.Principal, error) { return auth.Principal(p), nil }

// TestRevocationsPublishSessionsRevoked checks that every way sessions end
// before their time publishes event.SessionsRevoked in the revocation's
// transaction, naming the sessions it ended and why: logout, the removal
// of one session, logout everywhere (through its endpoint, with the
// request), an end requested by another domain, the session limit, and a
// refresh token presented by another client. A session that had ended
// already is not told again, and a subscriber's error leaves the session
// live.
func TestRevocationsPublishSessionsRevoked(t *testing.T) {
	bus := event.NewBus()
	revoked := record[event.SessionsRevoked](bus)
	s, _ := newTestServiceOn(t, memory.New(time.Now), DefaultLockout(), bus, "sue@example.com")
	ctx := context.Background()
	m := httpapi.Meta{IP: "192.0.2.5", UserAgent: "test-agent"}
	login := func(s *Service) Result {
		t.Helper()
		res, err := s.Login(ctx, "sue@example.com", goodPassword, m)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	last := func(ids []string, reason string) event.SessionsRevoked {
		t.Helper()
		if len(revoked.seen) == 0 {
			t.Fatalf("no SessionsRevoked event, want %v (%s)", ids, reason)
		}
		e := revoked.seen[len(revoked.seen)-1]
		slices.Sort(ids)
		got := slices.Sorted(slices.Values(e.SessionIDs))
		if !slices.Equal(got, ids) || e.Reason != reason || e.UserID == "" {
			t.Fatalf("SessionsRevoked %+v, want %v for %s", e, ids, reason)
		}
		return e
	}

	one := login(s)
	if err := s.Logout(ctx, one.User.ID, one.Session.ID, m); err != nil {
		t.Fatal(err)
	}
	if e := last([]string{one.Session.ID}, "logout"); e.Meta.IP != "192.0.2.5" || e.Meta.UserAgent != "test-agent" {
		t.Errorf("logout's event carries %+v, want the request", e.Meta)
	}
	// Ended already: nothing new.
	if _, err := s.Revoke(ctx, one.Session.ID, "revoked_by_client"); err != nil {
		t.Fatal(err)
	}
	if len(revoked.seen) != 1 {
		t.Fatalf("revoking an ended session published %+v", revoked.seen[1:])
	}

	// Logout everywhere, through its endpoint.
	a, b := login(s), login(s)
	h := &Handlers{Service: s, Auth: signedIn{UserID: a.User.ID, SessionID: a.Session.ID}}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: s.Log})
	h.Routes(rt)
	req := httptest.NewRequest("POST", "/v1/auth/logout-all", nil)
	req.Header.Set("User-Agent", "logout-agent")
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("logout-all = %d %s", rec.Code, rec.Body)
	}
	if e := last([]string{a.Session.ID, b.Session.ID}, "logout_all"); e.Meta.UserAgent != "logout-agent" || e.Meta.ActorID != a.User.ID {
		t.Errorf("logout-all's event carries %+v, want the request and its user", e.Meta)
	}
	// Nothing left to end: nothing published.
	n := len(revoked.seen)
	if err := s.RevokeUserSessions(ctx, a.User.ID, "", "revoked_by_admin"); err != nil {
		t.Fatal(err)
	}
	if len(revoked.seen) != n {
		t.Errorf("ending no session published %+v", revoked.seen[n:])
	}

	// Another domain's change (see TestEndUserSessionsInTx).
	c := login(s)
	err := s.Store.InTx(ctx, func(tx Tx) error {
		_, err := s.EndUserSessionsInTx(ctx, tx.(EndingTx), c.User.ID, "unverified_credentials_cleared")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	last([]string{c.Session.ID}, "unverified_credentials_cleared")

	// The session limit ends the oldest.
	d := s.Deps
	d.Config.MaxSessions = 2
	capped, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	oldest := login(capped)
	login(capped)
	login(capped)
	last([]string{oldest.Session.ID}, "session_limit")

	// A refresh token presented by another client ends its session.
	e := login(s)
	if _, err := s.Refresh(ctx, RefreshRequest{Token: e.RefreshToken, Client: "someone-else", Meta: m}); !errors.Is(err, ErrClientMismatch) {
		t.Fatalf("refresh by another client: err = %v, want ErrClientMismatch", err)
	}
	last([]string{e.Session.ID}, "client_mismatch")

	// A subscriber's error leaves the session live.
	f := login(s)
	revoked.refuse = true
	if err := s.Logout(ctx, f.User.ID, f.Session.ID, m); !errors.Is(err, errRefused) {
		t.Fatalf("logout with a refusing subscriber: err = %v, want it", err)
	}
	sess, err := s.Store.GetSession(ctx, f.Session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !sess.RevokedAt.IsZero() {
		t.Error("the session ended although the subscriber refused")
	}
}

// TestUnlockLiftsTheSignInLock checks Unlock: a locked address can sign in
// at once, and an address not locked is reported so.
func TestUnlockLiftsTheSignInLock(t *testing.T) {
	lk := DefaultLockout()
	lk.Threshold = 2
	s, _ := newTestService(t, memory.New(time.Now), lk, "lin@example.com")
	ctx := context.Background()
	u, err := s.Store.GetUserByEmail(ctx, "lin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if locked, err := s.Unlock(ctx, u); err != nil || locked {
		t.Fatalf("Unlock of an address not locked = %v, %v", locked, err)
	}
	for range 2 {
		s.Login(ctx, "lin@example.com", "wrong password", httpapi.Meta{})
	}
	if _, err := s.Login(ctx, "lin@example.com", goodPassword, httpapi.Meta{}); problemCode(err) != "account_locked" {
		t.Fatalf("login while locked: err = %v, want account_locked", err)
	}
	if locked, err := s.Unlock(ctx, u); err != nil || !locked {
		t.Fatalf("Unlock of a locked address = %v, %v", locked, err)
	}
	if _, err := s.Login(ctx, "lin@example.com", goodPassword, httpapi.Meta{}); err != nil {
		t.Errorf("login after Unlock: %v", err)
	}
}
