package mfa

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

func claimService(store kv.Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{Deps{KV: store, Now: now, Config: DefaultConfig("Test"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
}

// Verifications of one token take turns, on every node (the claim is in
// kv); a client gone does not leave the token blocked.
func TestExclusively(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, store kv.Store) {
		s := claimService(store, nil)
		ctx := context.Background()
		var inside, most atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				err := s.exclusively(ctx, "tok", func() error {
					n := inside.Add(1)
					defer inside.Add(-1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					time.Sleep(5 * time.Millisecond)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if most.Load() != 1 {
			t.Errorf("%d verifications of one token ran at once, want 1", most.Load())
		}

		cctx, cancel := context.WithCancel(ctx)
		if err := s.exclusively(cctx, "tok", func() error { cancel(); return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Get(ctx, claimKey("tok")); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("claim after a request whose client left = %v, want it released", err)
		}
	})
}

// A verification that cannot have its turn is answered 429 rate_limited
// (retry), not told the token is used.
func TestExclusivelyGivesUp(t *testing.T) {
	store := memory.New(nil)
	defer store.Close()
	s := claimService(store, nil)
	ctx := context.Background()
	if ok, err := store.SetNX(ctx, claimKey("tok"), []byte("1"), time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	ran := false
	err := s.exclusively(ctx, "tok", func() error { ran = true; return nil })
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Status != 429 || p.Code != "rate_limited" || p.RetryAfter < 1 || ran {
		t.Errorf("exclusively while another holds the claim = %v (ran: %v), want 429 rate_limited with Retry-After and nothing run", err, ran)
	}
}

// The pending login is taken before a code is checked: a verification
// that outlived its claim cannot let a second one check (and spend) a code.
func TestSpendHoldsThePendingLogin(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, store kv.Store) {
		s := claimService(store, nil)
		ctx := context.Background()
		if err := store.Set(ctx, pendingKey("tok"), []byte(`{"user_id":"u"}`), time.Minute); err != nil {
			t.Fatal(err)
		}
		err := s.spend(ctx, "tok", func() (bool, error) {
			err := s.spend(ctx, "tok", func() (bool, error) {
				t.Error("a second verification checked a code while the first held the login")
				return true, nil
			})
			if !errors.Is(err, ErrInvalidMFAToken) {
				t.Errorf("second verification = %v, want ErrInvalidMFAToken", err)
			}
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Get(ctx, pendingKey("tok")); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("pending login after a right code = %v, want it gone", err)
		}
	})
}

// A wrong code or an error puts the login back with the lifetime it had
// left; the token's last wrong code does not.
func TestSpendPutsBack(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store := memory.New(clock)
	defer store.Close()
	s := claimService(store, clock)
	ctx := context.Background()
	if err := store.Set(ctx, pendingKey("tok"), []byte(`{"user_id":"u"}`), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	ttl := func() time.Duration {
		d, err := store.TTL(ctx, pendingKey("tok"))
		if err != nil {
			t.Fatalf("pending login: %v", err)
		}
		return d
	}
	wrong := func() (bool, error) { now = now.Add(10 * time.Second); return false, nil }

	boom := errors.New("store down")
	if err := s.spend(ctx, "tok", func() (bool, error) { now = now.Add(10 * time.Second); return false, boom }); !errors.Is(err, boom) {
		t.Fatalf("spend with a failing check = %v", err)
	}
	if d := ttl(); d != 5*time.Minute-10*time.Second {
		t.Errorf("TTL after an error = %v, want %v", d, 5*time.Minute-10*time.Second)
	}
	for i := 1; i < s.Config.MaxTokenAttempts; i++ {
		if err := s.spend(ctx, "tok", wrong); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("wrong code %d = %v, want ErrInvalidCode", i, err)
		}
		if want := 5*time.Minute - time.Duration(i+1)*10*time.Second; ttl() != want {
			t.Errorf("TTL after wrong code %d = %v, want %v (not extended)", i, ttl(), want)
		}
	}
	if err := s.spend(ctx, "tok", wrong); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("last wrong code = %v, want ErrInvalidCode", err)
	}
	if err := s.spend(ctx, "tok", func() (bool, error) { return true, nil }); !errors.Is(err, ErrInvalidMFAToken) {
		t.Errorf("right code after %d wrong ones = %v, want ErrInvalidMFAToken", s.Config.MaxTokenAttempts, err)
	}
}
