package session

import (
	"context"
	"errors"
	"testing"
	"time"

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
