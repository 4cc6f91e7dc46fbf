package session

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
)

// TestEndUserSessionsInTx: sessions ended inside another domain's
// transaction end with it — nothing when it rolls back — and their access
// tokens are deny-listed only once it has committed.
func TestEndUserSessionsInTx(t *testing.T) {
	s, _ := newTestService(t, memory.New(time.Now), DefaultLockout(), "owner@example.com")
	ctx := context.Background()
	res, err := s.Login(ctx, "owner@example.com", goodPassword, httpapi.Meta{IP: "192.0.2.9"})
	if err != nil {
		t.Fatal(err)
	}
	userID, sessionID := res.Session.UserID, res.Session.ID
	tokens := s.Tokens.(*fakeTokens)
	live := func() bool {
		t.Helper()
		list, err := s.List(ctx, userID)
		if err != nil {
			t.Fatal(err)
		}
		return len(list) > 0
	}

	rollback := errors.New("the other domain's change failed")
	err = s.Store.InTx(ctx, func(tx Tx) error {
		ids, err := s.EndUserSessionsInTx(ctx, tx.(EndingTx), userID, "test")
		if err != nil {
			return err
		}
		if !slices.Equal(ids, []string{sessionID}) {
			t.Errorf("ended %v, want [%s]", ids, sessionID)
		}
		if d := tokens.deniedSessions(); len(d) != 0 {
			t.Errorf("denied %v before the commit, want nothing yet", d)
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("InTx = %v, want the rollback error", err)
	}
	if d := tokens.deniedSessions(); len(d) != 0 {
		t.Errorf("denied %v after a rollback, want nothing", d)
	}
	if !live() {
		t.Fatal("the session ended although the transaction rolled back")
	}

	err = s.Store.InTx(ctx, func(tx Tx) error {
		_, err := s.EndUserSessionsInTx(ctx, tx.(EndingTx), userID, "test")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := tokens.deniedSessions(); !slices.Equal(d, []string{sessionID}) {
		t.Errorf("denied %v after the commit, want [%s]", d, sessionID)
	}
	if live() {
		t.Error("the session is still live after the commit")
	}
}
