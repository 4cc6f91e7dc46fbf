package oauth

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

type countingStore struct {
	store.ClientStore
	clients map[string]store.Client
	gets    atomic.Int64
}

func (s *countingStore) GetClient(_ context.Context, id string) (store.Client, error) {
	s.gets.Add(1)
	c, ok := s.clients[id]
	if !ok {
		return store.Client{}, store.ErrNotFound
	}
	return c, nil
}

func (s *countingStore) AppendAuditEvent(context.Context, store.AuditEvent) error { return nil }

func TestAuthenticateCachesClients(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &countingStore{clients: map[string]store.Client{"gh_a": {ID: "gh_a", SecretHash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}}
	c := &Clients{Store: st, Now: func() time.Time { return now }, CacheTTL: 10 * time.Second}
	ctx := context.Background()
	for range 5 {
		if _, ok, err := c.Authenticate(ctx, "gh_a", ""); err != nil || !ok {
			t.Fatalf("Authenticate = %v %v", ok, err)
		}
		if _, ok, _ := c.Authenticate(ctx, "gh_a", "wrong"); ok {
			t.Fatal("a wrong secret authenticated from the cache")
		}
	}
	if n := st.gets.Load(); n != 1 {
		t.Errorf("GetClient called %d times within the TTL, want 1", n)
	}
	now = now.Add(11 * time.Second)
	c.Authenticate(ctx, "gh_a", "")
	if n := st.gets.Load(); n != 2 {
		t.Errorf("GetClient called %d times after the TTL, want 2", n)
	}
	if _, ok, _ := c.Authenticate(ctx, "gh_missing", "x"); ok {
		t.Error("unknown client authenticated")
	}
}
