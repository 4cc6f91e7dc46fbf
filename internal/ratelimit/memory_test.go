package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
)

func TestMemory(t *testing.T) {
	runSuite(t, func(t *testing.T) (Limiter, func(time.Duration)) {
		c := clocktest.New(time.Time{})
		return NewMemory(c.Now), c.Advance
	})
}

// TestMemoryExactTiming checks RetryAfter to the nanosecond, which only a
// fake clock allows: one nanosecond early is still refused, RetryAfter on
// the dot is allowed.
func TestMemoryExactTiming(t *testing.T) {
	c := clocktest.New(time.Time{})
	l := NewMemory(c.Now)
	limit := Limit{Rate: 3, Burst: 1, Period: time.Second} // 333,333,333ns apart
	allow(t, l, "k", limit, 1)
	r := allow(t, l, "k", limit, 1)
	if r.Allowed != 0 || r.RetryAfter != 333333333 || r.ResetAfter != 333333333 {
		t.Fatalf("got %+v, want refused with RetryAfter = ResetAfter = 333333333ns", r)
	}
	c.Advance(r.RetryAfter - 1)
	if r := allow(t, l, "k", limit, 1); r.Allowed != 0 || r.RetryAfter != 1 {
		t.Fatalf("1ns early: %+v, want refused with RetryAfter 1ns", r)
	}
	c.Advance(1)
	if r := allow(t, l, "k", limit, 1); r.Allowed != 1 || r.Remaining != 0 {
		t.Fatalf("on time: %+v, want allowed", r)
	}
}

// TestMemoryRemainingHasNoRoundingDrift checks that Remaining counts whole
// tokens exactly over many calls, even with an interval that floating
// point cannot represent.
func TestMemoryRemainingHasNoRoundingDrift(t *testing.T) {
	c := clocktest.New(time.Time{})
	l := NewMemory(c.Now)
	limit := Limit{Rate: 30, Burst: 30, Period: time.Second} // 33,333,333ns
	for i := range 30 {
		if r := allow(t, l, "k", limit, 1); r.Allowed != 1 || r.Remaining != 29-i {
			t.Fatalf("request %d: %+v, want Remaining %d", i, r, 29-i)
		}
	}
	c.Advance(10 * (time.Second / 30))
	if r := allow(t, l, "k", limit, 0); r.Remaining != 10 {
		t.Fatalf("after 10 intervals: %+v, want Remaining 10", r)
	}
}

func TestMemoryForgetsIdleKeys(t *testing.T) {
	c := clocktest.New(time.Time{})
	l := NewMemory(c.Now).(*memory)
	limit := Limit{Rate: 1, Burst: 10, Period: time.Second}
	allow(t, l, "short", limit, 1) // full again after 1s
	allow(t, l, "long", limit, 10) // full again after 10s
	if got := len(l.tat); got != 2 {
		t.Fatalf("%d keys kept, want 2", got)
	}

	c.Advance(sweepEvery) // first sweep due: both keys idle by now
	allow(t, l, "fresh", limit, 1)
	if got := len(l.tat); got != 1 {
		t.Fatalf("%d keys kept after the sweep, want 1 (fresh)", got)
	}

	// No sweep before sweepEvery has passed again.
	c.Advance(2 * time.Second)
	allow(t, l, "other", limit, 1)
	if got := len(l.tat); got != 2 {
		t.Fatalf("%d keys kept, want 2 (no sweep yet)", got)
	}
	// A peek (n = 0) at an idle key stores nothing.
	allow(t, l, "peek", limit, 0)
	if _, ok := l.tat["peek"]; ok {
		t.Fatal("AllowN(n=0) on an unknown key stored a TAT")
	}
}

func TestMemoryContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := NewMemory(nil).AllowN(ctx, "k", perSecond, 1); err == nil {
		t.Fatal("AllowN with a cancelled context succeeded")
	}
}
