package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
)

func TestMemoryMulti(t *testing.T) {
	runMultiSuite(t, func(t *testing.T) (MultiLimiter, func(time.Duration)) {
		c := clocktest.New(time.Time{})
		return NewMemoryMulti(c.Now), c.Advance
	})
}

// TestMemoryMultiExactPenalty follows penalties to the nanosecond, which
// only a fake clock allows: the blocks double up to Max and stay there,
// one nanosecond before a block ends is still refused, and the end of the
// block is not.
func TestMemoryMultiExactPenalty(t *testing.T) {
	c := clocktest.New(time.Time{})
	l := NewMemoryMulti(c.Now)
	ck := Check{Key: "k", Limit: Limit{Rate: 1, Burst: 1, Period: 10 * time.Second}, Penalty: &Penalty{Base: time.Minute, Max: 5 * time.Minute, Decay: time.Hour}}
	for level, block := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		level++
		if r := check(t, l, ck); !r.Allowed || r.Level != level-1 {
			t.Fatalf("level %d: first request %+v, want allowed at level %d", level, r, level-1)
		}
		c.Advance(time.Second)
		want := CheckResult{RetryAfter: 9 * time.Second, ResetAfter: 9 * time.Second, Level: level - 1}
		if r := check(t, l, ck); r != want {
			t.Fatalf("level %d: second request %+v, want %+v", level, r, want)
		}
		c.Advance(9*time.Second - 1) // 1ns before RetryAfter: keeps going
		want = CheckResult{RetryAfter: block, ResetAfter: 1, Penalised: true, Level: level, BlockedFor: block}
		if r := check(t, l, ck); r != want {
			t.Fatalf("level %d: third request %+v, want %+v", level, r, want)
		}
		c.Advance(block - 1)
		want = CheckResult{RetryAfter: 1, Penalised: true, Level: level, BlockedFor: 1}
		if r := check(t, l, ck); r != want {
			t.Fatalf("level %d: 1ns before the block ends %+v, want %+v", level, r, want)
		}
		c.Advance(1)
	}
}

// TestMemoryMultiRetryAfterIsExact checks that a request on the dot of a
// plain refusal's RetryAfter passes and is not penalised.
func TestMemoryMultiRetryAfterIsExact(t *testing.T) {
	c := clocktest.New(time.Time{})
	l := NewMemoryMulti(c.Now)
	ck := Check{Key: "k", Limit: Limit{Rate: 3, Burst: 1, Period: time.Second}, Penalty: &Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}}
	check(t, l, ck)
	r := check(t, l, ck)
	if r.Allowed || r.Penalised || r.RetryAfter != 333333*time.Microsecond {
		t.Fatalf("got %+v, want a plain refusal for 333333µs (the interval truncated to the µs)", r)
	}
	c.Advance(r.RetryAfter)
	if r := check(t, l, ck); !r.Allowed || r.Level != 0 {
		t.Fatalf("on RetryAfter: %+v, want allowed at level 0", r)
	}
}

func TestMemoryMultiForgetsIdleKeys(t *testing.T) {
	c := clocktest.New(time.Time{})
	l := NewMemoryMulti(c.Now).(*memoryMulti)
	limit := Limit{Rate: 1, Burst: 1, Period: time.Second}
	pen := &Penalty{Base: time.Second, Max: time.Second, Decay: 10 * sweepEvery}
	check(t, l, Check{Key: "plain", Limit: limit})
	for range 3 { // allowed, refused, penalised
		check(t, l, Check{Key: "penalised", Limit: limit, Penalty: pen})
	}
	if got := len(l.keys); got != 2 {
		t.Fatalf("%d keys kept, want 2", got)
	}

	c.Advance(sweepEvery) // first sweep due: plain is back to a full burst
	check(t, l, Check{Key: "fresh", Limit: limit})
	if _, ok := l.keys["plain"]; ok || len(l.keys) != 2 {
		t.Fatalf("keys after the first sweep: %v, want penalised (its level is remembered) and fresh", keysOf(l))
	}

	// After Decay, the penalty is forgotten too.
	c.Advance(10 * sweepEvery)
	check(t, l, Check{Key: "fresh", Limit: limit})
	if _, ok := l.keys["penalised"]; ok || len(l.keys) != 1 {
		t.Fatalf("keys after Decay: %v, want only fresh", keysOf(l))
	}
}

func keysOf(l *memoryMulti) []string {
	var ks []string
	for k := range l.keys {
		ks = append(ks, k)
	}
	return ks
}

func TestMemoryMultiContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := NewMemoryMulti(nil).CheckAll(ctx, []Check{{Key: "k", Limit: perSecond}}); err == nil {
		t.Fatal("CheckAll with a cancelled context succeeded")
	}
}

// TestMemoryMultiDecayDuringBlock follows a Decay shorter than the block
// (and than the GCRA refusal): the level falls back to 0 a Decay after the
// last refusal even while the key's state is kept for its block, so the
// next escalation starts from level 1 again.
func TestMemoryMultiDecayDuringBlock(t *testing.T) {
	c := clocktest.New(time.Time{})
	l := NewMemoryMulti(c.Now)
	ck := Check{Key: "k", Limit: Limit{Rate: 1, Burst: 1, Period: time.Hour}, Penalty: &Penalty{Base: 10 * time.Minute, Max: time.Hour, Decay: time.Minute}}
	check(t, l, ck)
	check(t, l, ck)
	if r := check(t, l, ck); !r.Penalised || r.Level != 1 || r.RetryAfter != time.Hour {
		t.Fatalf("third request %+v, want penalised at level 1 until the GCRA allows (1h)", r)
	}
	c.Advance(2 * time.Minute)
	if r := check(t, l, ck); !r.Penalised || r.Level != 0 || r.RetryAfter != 58*time.Minute {
		t.Fatalf("during the block, after Decay: %+v, want penalised at level 0, RetryAfter 58m", r)
	}
	c.Advance(10 * time.Minute) // the block is over; the GCRA still refuses
	want := CheckResult{RetryAfter: 48 * time.Minute, ResetAfter: 48 * time.Minute, Penalised: true, Level: 1, BlockedFor: 10 * time.Minute}
	if r := check(t, l, ck); r != want {
		t.Fatalf("after the block: %+v, want %+v (escalated from 0, not from 1)", r, want)
	}
}
