package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv/memory"
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

// fail makes one failed attempt and returns the lock it caused (0: none)
// or, for an attempt over the threshold, -1.
func fail(t *testing.T, l *lockout, user string) time.Duration {
	t.Helper()
	ctx := context.Background()
	n, over, err := l.reserve(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if over {
		return -1
	}
	d, err := l.failed(ctx, user, n, "198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLockGrowsExponentiallyAndIsCapped(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	kv := memory.New(clk.Now)
	defer kv.Close()
	l := &lockout{kv: kv, cfg: LockoutConfig{Threshold: 3, BaseLock: time.Minute, MaxLock: 5 * time.Minute, FailureWindow: 24 * time.Hour}}
	ctx := context.Background()
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for round, w := range want {
		for i := 1; i < 3; i++ {
			if d := fail(t, l, "u1"); d != 0 {
				t.Fatalf("round %d attempt %d locked early (%v)", round, i, d)
			}
		}
		if d := fail(t, l, "u1"); d != w {
			t.Fatalf("round %d: lock = %v, want %v", round, d, w)
		}
		if d, _ := l.locked(ctx, "u1"); d <= 0 {
			t.Fatalf("round %d: account not locked", round)
		}
		clk.Advance(w)
		if d, _ := l.locked(ctx, "u1"); d != 0 {
			t.Fatalf("round %d: still locked after %v (%v left)", round, w, d)
		}
	}
	// A success resets everything: the next lock is the base one again.
	if err := l.succeeded(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		fail(t, l, "u1")
	}
	if d := fail(t, l, "u1"); d != time.Minute {
		t.Errorf("lock after a success = %v, want the base lock", d)
	}
}

func TestParallelAttemptsNeverExceedTheThreshold(t *testing.T) {
	kv := memory.New(time.Now)
	defer kv.Close()
	l := &lockout{kv: kv, cfg: DefaultLockout()}
	var mu sync.Mutex
	checked := 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, over, err := l.reserve(context.Background(), "u2")
			if err != nil {
				t.Error(err)
				return
			}
			if !over {
				mu.Lock()
				checked++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if checked != l.cfg.Threshold {
		t.Errorf("%d of 50 parallel attempts would have had their password checked, want %d", checked, l.cfg.Threshold)
	}
}

func TestIPBlock(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	kv := memory.New(clk.Now)
	defer kv.Close()
	l := &lockout{kv: kv, cfg: LockoutConfig{IPFailures: 3, IPWindow: 15 * time.Minute}}
	ctx := context.Background()
	for range 3 {
		if d, _ := l.ipBlocked(ctx, "203.0.113.7"); d != 0 {
			t.Fatal("blocked before the limit")
		}
		l.failedIP(ctx, "203.0.113.7")
	}
	if d, _ := l.ipBlocked(ctx, "203.0.113.7"); d <= 0 || d > 15*time.Minute {
		t.Errorf("block after the limit = %v", d)
	}
	if d, _ := l.ipBlocked(ctx, "203.0.113.8"); d != 0 {
		t.Error("another IP is blocked")
	}
	clk.Advance(15*time.Minute + time.Second)
	if d, _ := l.ipBlocked(ctx, "203.0.113.7"); d != 0 {
		t.Errorf("still blocked after the window: %v", d)
	}
}
