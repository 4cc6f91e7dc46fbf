package mfa

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// stores runs fn on the in-process store (on a clock that stands still)
// and on Redis (skipped without GATEHOUSE_TEST_REDIS_URL, unless
// GATEHOUSE_TEST_REQUIRE_SERVICES=1).
func stores(t *testing.T, fn func(t *testing.T, s kv.Store)) {
	t.Run("memory", func(t *testing.T) {
		clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		s := memory.New(clk.Now)
		defer s.Close()
		fn(t, s)
	})
	t.Run("redis", func(t *testing.T) {
		url, prefix := testenv.Redis(t)
		client, err := rediskv.NewClient(rediskv.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		fn(t, rediskv.New(client, prefix))
	})
}

// guess makes one wrong guess the way Service.guarded does and returns the
// lock it caused (0: none) or, for a guess refused without a check, -1.
func guess(t *testing.T, l *lockout, user string) time.Duration {
	t.Helper()
	ctx := context.Background()
	n, d, err := l.attempt(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if d > 0 || l.over(n) {
		return -1
	}
	d, err = l.failed(ctx, user, n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSecondFactorLockGrowsAndIsCapped(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := memory.New(clk.Now)
	defer s.Close()
	l := &lockout{kv: s, cfg: LockoutConfig{Threshold: 3, BaseLock: time.Minute, MaxLock: 5 * time.Minute, FailureWindow: 24 * time.Hour}}
	ctx := context.Background()
	for round, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		for i := 1; i < 3; i++ {
			if d := guess(t, l, "u1"); d != 0 {
				t.Fatalf("round %d guess %d locked early (%v)", round, i, d)
			}
		}
		if d := guess(t, l, "u1"); d != want {
			t.Fatalf("round %d: lock = %v, want %v", round, d, want)
		}
		if d := guess(t, l, "u1"); d != -1 {
			t.Fatalf("round %d: a guess during the lock was checked", round)
		}
		if _, d, _ := l.attempt(ctx, "u1"); d <= 0 || d > want {
			t.Fatalf("round %d: attempt during the lock says %v left", round, d)
		}
		clk.Advance(want)
	}
	// Only a right code resets: the next lock is the base one again.
	if err := l.succeeded(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		guess(t, l, "u1")
	}
	if d := guess(t, l, "u1"); d != time.Minute {
		t.Errorf("lock after a success = %v, want the base lock", d)
	}
	// Other users are not affected.
	if d := guess(t, l, "u2"); d != 0 {
		t.Errorf("another user's first guess = %v", d)
	}
}

// TestParallelGuessesNeverExceedTheThreshold fires 50 wrong codes at once:
// each is counted before it is checked, so at most Threshold are checked
// however they interleave, and the user ends up locked.
func TestParallelGuessesNeverExceedTheThreshold(t *testing.T) {
	stores(t, func(t *testing.T, s kv.Store) {
		l := &lockout{kv: s, cfg: DefaultLockout()}
		ctx := context.Background()
		var mu sync.Mutex
		checked := 0
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				n, d, err := l.attempt(ctx, "u3")
				switch {
				case err != nil:
					t.Error(err)
				case d > 0:
				case l.over(n):
					if d, err := l.ensureLocked(ctx, "u3"); err != nil || d <= 0 {
						t.Errorf("ensureLocked = %v, %v; want a lock", d, err)
					}
				default:
					mu.Lock()
					checked++
					mu.Unlock()
					if _, err := l.failed(ctx, "u3", n); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if checked != l.cfg.Threshold {
			t.Errorf("%d of 50 parallel guesses were checked, want %d", checked, l.cfg.Threshold)
		}
		if _, d, err := l.attempt(ctx, "u3"); err != nil || d <= 0 {
			t.Errorf("attempt after the parallel guesses = %v, %v; want locked", d, err)
		}
		if err := l.succeeded(ctx, "u3"); err != nil {
			t.Error(err)
		}
	})
}

func TestLockedProblem(t *testing.T) {
	var p *httpapi.Problem
	if !errors.As(lockedProblem(1500*time.Millisecond), &p) || p.Status != 429 || p.Code != "mfa_locked" || p.RetryAfter != 2 {
		t.Errorf("lockedProblem = %+v, want 429 mfa_locked with Retry-After 2 (rounded up)", p)
	}
}
