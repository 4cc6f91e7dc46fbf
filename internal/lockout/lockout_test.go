package lockout

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// fail makes one failed attempt and returns the lock it caused (0: none)
// or, for an attempt refused without a password check (locked), -1.
func fail(t *testing.T, l Counter, user string) time.Duration {
	t.Helper()
	ctx := context.Background()
	n, d, err := l.Attempt(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if d > 0 {
		return -1
	}
	d, err = l.Failed(ctx, user, n)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLockGrowsExponentiallyAndIsCapped(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
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

// checkTime is how long a simulated secret check takes, so that parallel
// attempts overlap.
const checkTime = 5 * time.Millisecond

// TestParallelAttemptsNeverExceedTheThreshold fires 50 wrong passwords at
// once, through every step a caller takes: exactly Threshold are checked,
// the one that reaches the threshold locks the subject, and every other
// attempt (waiting for room meanwhile) is refused by that lock.
func TestParallelAttemptsNeverExceedTheThreshold(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, s kv.Store) {
		l := Counter{KV: s, Prefix: "test", Config: Config{Threshold: 5, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour}}
		ctx := context.Background()
		var checked, locked, locks atomic.Int64
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				n, d, err := l.Attempt(ctx, "u2")
				switch {
				case err != nil:
					t.Error(err)
				case d > 0: // locked: refused
					locked.Add(1)
				default: // checked, and wrong
					checked.Add(1)
					time.Sleep(checkTime)
					if d, err := l.Failed(ctx, "u2", n); err != nil {
						t.Error(err)
					} else if d > 0 {
						locks.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if checked.Load() != int64(l.Config.Threshold) || locked.Load() != 50-int64(l.Config.Threshold) || locks.Load() != 1 {
			t.Errorf("50 parallel wrong attempts: %d checked, %d refused by a lock, %d locks; want %d, %d, 1",
				checked.Load(), locked.Load(), locks.Load(), l.Config.Threshold, 50-l.Config.Threshold)
		}
		if n, d, err := l.Attempt(ctx, "u2"); err != nil || d < 50*time.Second || d > time.Minute {
			t.Errorf("attempt after the parallel guesses = %d, %v, %v; want locked for the base lock", n, d, err)
		}
	})
}

// TestParallelRightSecretsNeverLock fires 20 right passwords at once: all
// are checked (Threshold at a time at first: the others wait for room)
// and none is refused, nor is the subject locked afterwards. With the old
// Counter, the attempts beyond the threshold locked the subject.
func TestParallelRightSecretsNeverLock(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, s kv.Store) {
		l := Counter{KV: s, Prefix: "test", Config: Config{Threshold: 5, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour}}
		ctx := context.Background()
		var refused atomic.Int64
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				_, d, err := l.Attempt(ctx, "u4")
				if err != nil || d > 0 {
					refused.Add(1)
					t.Errorf("right secret refused: %v, %v", d, err)
					return
				}
				time.Sleep(checkTime)
				if err := l.Succeeded(ctx, "u4"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if d, err := l.Locked(ctx, "u4"); err != nil || d != 0 {
			t.Errorf("after 20 parallel right secrets the subject is locked for %v (%v)", d, err)
		}
		// Nor do they count as failures: Threshold more wrong ones lock.
		for i := 1; i < l.Config.Threshold; i++ {
			if d := fail(t, l, "u4"); d != 0 {
				t.Fatalf("failure %d = %v, want counted and not locking", i, d)
			}
		}
		if d := fail(t, l, "u4"); d != time.Minute {
			t.Errorf("failure %d = %v, want the base lock", l.Config.Threshold, d)
		}
	})
}

// TestMixedParallelAttempts has Threshold wrong guesses in flight when
// right ones arrive: the right ones wait, and are refused by the lock the
// wrong ones set; none of them is checked.
func TestMixedParallelAttempts(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, s kv.Store) {
		l := Counter{KV: s, Prefix: "test", Config: Config{Threshold: 3, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour}}
		ctx := context.Background()
		release := make(chan struct{})
		var wrong sync.WaitGroup
		for range 3 {
			n, d, err := l.Attempt(ctx, "u5")
			if err != nil || d > 0 {
				t.Fatalf("wrong guess refused: %v, %v", d, err)
			}
			wrong.Go(func() {
				<-release
				if _, err := l.Failed(ctx, "u5", n); err != nil {
					t.Error(err)
				}
			})
		}
		var checked atomic.Int64
		var right sync.WaitGroup
		for range 10 {
			right.Go(func() {
				if _, d, err := l.Attempt(ctx, "u5"); err != nil || d == 0 {
					checked.Add(1)
				}
			})
		}
		time.Sleep(100 * time.Millisecond) // the right ones are waiting
		close(release)
		wrong.Wait()
		right.Wait()
		if checked.Load() != 0 {
			t.Errorf("%d attempts were let through after Threshold wrong ones, want none", checked.Load())
		}
	})
}

// TestReleaseGivesTheAttemptBack checks that attempts ended with Release
// (no answer) count as no failure.
func TestReleaseGivesTheAttemptBack(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, s kv.Store) {
		l := Counter{KV: s, Prefix: "test", Config: Config{Threshold: 3, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour}}
		ctx := context.Background()
		fail(t, l, "u6")
		for range 10 {
			if _, d, err := l.Attempt(ctx, "u6"); err != nil || d > 0 {
				t.Fatalf("attempt = %v, %v", d, err)
			}
			if err := l.Release(ctx, "u6"); err != nil {
				t.Fatal(err)
			}
		}
		if d := fail(t, l, "u6"); d != 0 {
			t.Fatalf("second failure = %v, want no lock", d)
		}
		if d := fail(t, l, "u6"); d != time.Minute {
			t.Fatalf("third failure = %v, want the base lock", d)
		}
		// A release after the lock reset the count lends nothing.
		if err := l.Release(ctx, "u6"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, l.failKey("u6")); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("a release after the lock made a counter: %v", err)
		}
	})
}

// TestStuckCountLocksAfterMaxWait checks the way out of a count that never
// settles (attempts lost with their node): an attempt waits MaxWait, then
// the subject is locked for the base lock, which resets the count.
func TestStuckCountLocksAfterMaxWait(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := memory.New(clk.Now)
	defer s.Close()
	l := Counter{KV: s, Prefix: "test", Config: Config{Threshold: 2, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour, MaxWait: 150 * time.Millisecond}}
	ctx := context.Background()
	for range 2 {
		if _, d, err := l.Attempt(ctx, "u7"); err != nil || d > 0 {
			t.Fatalf("attempt = %v, %v", d, err)
		}
	}
	start := time.Now()
	_, d, err := l.Attempt(ctx, "u7")
	if waited := time.Since(start); err != nil || d != time.Minute || waited < 150*time.Millisecond {
		t.Fatalf("attempt on a stuck count = %v, %v after %v; want the base lock after MaxWait", d, err, waited)
	}
	clk.Advance(time.Minute)
	if d := fail(t, l, "u7"); d != 0 {
		t.Errorf("first failure after the lock = %v, want a fresh count", d)
	}

	// A waiting attempt whose client goes away returns at once, and
	// leaves no unit behind.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	fail(t, l, "u8")
	if _, d, err := l.Attempt(ctx, "u8"); err != nil || d > 0 {
		t.Fatal(d, err)
	}
	if _, _, err := l.Attempt(wctx, "u8"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting attempt whose context ended = %v", err)
	}
	if v, err := s.Get(ctx, l.failKey("u8")); err != nil || string(v) != "2" {
		t.Errorf("count after the abandoned wait = %q, %v; want 2", v, err)
	}
}

// TestLockedAttemptsAreNotCounted checks that an attempt on a locked
// subject is refused without counting, so the lock's end starts a full
// window; and that an attempt after a lock has reset the counter is
// refused (the case the old second check after counting was for).
func TestLockedAttemptsAreNotCounted(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
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

// TestClearLiftsTheLockAndForgetsThePast checks an administrator's
// unlock: the lock goes at once, and so do the failures and past locks,
// so the next lock is the base one; a subject that was not locked is
// reported so, and its failures are forgotten too.
func TestClearLiftsTheLockAndForgetsThePast(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	kv := memory.New(clk.Now)
	defer kv.Close()
	l := Counter{KV: kv, Prefix: "test", Config: Config{Threshold: 2, BaseLock: time.Minute, MaxLock: time.Hour, FailureWindow: 24 * time.Hour}}
	ctx := context.Background()
	for round := range 2 { // two locks: the next would be 4 min
		fail(t, l, "u1")
		if d := fail(t, l, "u1"); d <= 0 {
			t.Fatalf("round %d: no lock", round)
		}
		clk.Advance(time.Hour)
	}
	fail(t, l, "u1")
	if d := fail(t, l, "u1"); d != 4*time.Minute {
		t.Fatalf("third lock = %v, want 4m", d)
	}
	locked, err := l.Clear(ctx, "u1")
	if err != nil || !locked {
		t.Fatalf("Clear of a locked subject = %v, %v; want true", locked, err)
	}
	if d, _ := l.Locked(ctx, "u1"); d != 0 {
		t.Fatalf("still locked after Clear (%v left)", d)
	}
	fail(t, l, "u1")
	if d := fail(t, l, "u1"); d != time.Minute {
		t.Errorf("lock after Clear = %v, want the base lock again", d)
	}
	clk.Advance(time.Hour)

	// Not locked: reported so, and its failure is forgotten.
	fail(t, l, "u1")
	if locked, err := l.Clear(ctx, "u1"); err != nil || locked {
		t.Fatalf("Clear of a subject not locked = %v, %v; want false", locked, err)
	}
	if d := fail(t, l, "u1"); d != 0 {
		t.Errorf("a failure after Clear locked (%v): the failure before it was not forgotten", d)
	}
}
