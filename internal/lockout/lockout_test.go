package lockout

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
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

// fail makes one failed attempt and returns the lock it caused (0: none)
// or, for an attempt refused without a password check (locked or over the
// threshold), -1.
func fail(t *testing.T, l Counter, user string) time.Duration {
	t.Helper()
	ctx := context.Background()
	n, d, err := l.Attempt(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if d > 0 || l.Over(n) {
		return -1
	}
	d, err = l.Failed(ctx, user, n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLockGrowsExponentiallyAndIsCapped(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	kv := memory.New(clk.Now)
	defer kv.Close()
	l := Counter{KV: kv, Prefix: "test", Config: Config{Threshold: 3, BaseLock: time.Minute, MaxLock: 5 * time.Minute, FailureWindow: 24 * time.Hour}}
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
		if d, _ := l.Locked(ctx, "u1"); d <= 0 {
			t.Fatalf("round %d: account not locked", round)
		}
		clk.Advance(w)
		if d, _ := l.Locked(ctx, "u1"); d != 0 {
			t.Fatalf("round %d: still locked after %v (%v left)", round, w, d)
		}
	}
	// A success resets everything: the next lock is the base one again.
	if err := l.Succeeded(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		fail(t, l, "u1")
	}
	if d := fail(t, l, "u1"); d != time.Minute {
		t.Errorf("lock after a success = %v, want the base lock", d)
	}
}

// TestParallelAttemptsNeverExceedTheThreshold fires 50 wrong passwords at
// once, through every step a caller takes: the attempts that
// reach the threshold lock the subject and reset its counter while the
// others are still arriving, and none of those may be checked.
func TestParallelAttemptsNeverExceedTheThreshold(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, s kv.Store) {
		l := Counter{KV: s, Prefix: "test", Config: Config{Threshold: 5, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour}}
		ctx := context.Background()
		var mu sync.Mutex
		checked := 0
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				n, d, err := l.Attempt(ctx, "u2")
				switch {
				case err != nil:
					t.Error(err)
				case d > 0: // locked: refused
				case l.Over(n):
					if d, err := l.EnsureLocked(ctx, "u2"); err != nil || d <= 0 {
						t.Errorf("EnsureLocked = %v, %v; want a lock", d, err)
					}
				default: // checked, and wrong
					mu.Lock()
					checked++
					mu.Unlock()
					if _, err := l.Failed(ctx, "u2", n); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if checked != l.Config.Threshold {
			t.Errorf("%d of 50 parallel attempts were checked, want %d", checked, l.Config.Threshold)
		}
		if n, d, err := l.Attempt(ctx, "u2"); err != nil || d <= 0 {
			t.Errorf("attempt after the parallel guesses = %d, %v, %v; want locked", n, d, err)
		}
	})
}

// TestLockedAttemptsAreNotCounted checks that an attempt on a locked
// subject is refused without counting, so the lock's end starts a full
// window; and that an attempt after a lock has reset the counter is
// refused (the case the old second check after counting was for).
func TestLockedAttemptsAreNotCounted(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := memory.New(clk.Now)
	defer s.Close()
	l := Counter{KV: s, Prefix: "test", Config: Config{Threshold: 3, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour}}
	ctx := context.Background()
	for range 2 {
		fail(t, l, "u3")
	}
	if d := fail(t, l, "u3"); d != time.Minute {
		t.Fatalf("third failure locked for %v, want a minute", d)
	}
	// The lock set its key, then reset the counter.
	if _, err := s.Get(ctx, l.failKey("u3")); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("fail counter after the lock: %v, want it reset", err)
	}
	for i := range 10 {
		clk.Advance(time.Second)
		n, d, err := l.Attempt(ctx, "u3")
		if want := time.Minute - time.Duration(i+1)*time.Second; err != nil || n != 0 || d != want {
			t.Fatalf("attempt %d during the lock = %d, %v, %v; want refused with %v left", i, n, d, err, want)
		}
	}
	if _, err := s.Get(ctx, l.failKey("u3")); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("fail counter during the lock: %v, want none (refused attempts count nothing)", err)
	}
	// A lock with less than a second left still asks for a second.
	clk.Advance(50*time.Second - time.Millisecond)
	if _, d, err := l.Attempt(ctx, "u3"); err != nil || d != time.Second {
		t.Fatalf("attempt with 1ms of lock left = %v, %v; want Retry-After of a second", d, err)
	}
	clk.Advance(time.Millisecond)
	// After the lock, a full window of Threshold attempts.
	for i := range 2 {
		if d := fail(t, l, "u3"); d != 0 {
			t.Fatalf("failure %d after the lock = %v, want counted and not locking", i+1, d)
		}
	}
	if d := fail(t, l, "u3"); d != 2*time.Minute {
		t.Fatalf("third failure after the lock = %v, want the doubled lock", d)
	}
}
