package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
)

// counting is a MultiLimiter that counts the calls reaching it and the
// events it granted.
type counting struct {
	MultiLimiter
	calls, granted atomic.Int64
}

func (c *counting) CheckAll(ctx context.Context, checks []Check) ([]CheckResult, error) {
	c.calls.Add(1)
	rs, err := c.MultiLimiter.CheckAll(ctx, checks)
	for _, r := range rs {
		c.granted.Add(int64(r.Granted))
	}
	return rs, err
}

func newNodeCache(t *testing.T) (*counting, MultiLimiter, *clocktest.Clock) {
	t.Helper()
	clock := clocktest.New(time.Time{})
	inner := &counting{MultiLimiter: NewMemoryMulti(clock.Now)}
	return inner, NewNodeCache(inner, clock.Now, time.Second), clock
}

// TestNodeCacheSuite: with the cache in front, a limiter still passes the
// suite, but for the figures it approximates: the other checks of a call
// refused on the node (AllOrNothing), Remaining of a leased key read by
// several requests at once (Concurrent), and Want, which it sets itself.
func TestNodeCacheSuite(t *testing.T) {
	runMultiSuite(t, func(t *testing.T) (MultiLimiter, func(time.Duration)) {
		_, l, clock := newNodeCache(t)
		return l, clock.Advance
	}, "AllOrNothing", "Concurrent", "Want")
}

func TestNodeCacheLeases(t *testing.T) {
	inner, l, clock := newNodeCache(t)
	c := Check{Key: "k", Limit: Limit{Rate: 10000, Burst: 10000, Period: time.Hour}}
	const n = 1000
	last := c.Limit.Burst
	for i := range n {
		r := check(t, l, c)
		if !r.Allowed || r.Granted != 1 || r.Remaining >= last {
			t.Fatalf("request %d: %+v, want allowed with fewer than %d left", i, r, last)
		}
		last = r.Remaining
		if r.Remaining < c.Limit.Burst-int(inner.granted.Load()) {
			t.Fatalf("request %d: %d left, but the store granted %d of %d", i, r.Remaining, inner.granted.Load(), c.Limit.Burst)
		}
	}
	// Leases double up to 100 events: 1, 2, 4 … 64, then 100 at a time.
	if calls := inner.calls.Load(); calls > 20 {
		t.Fatalf("%d requests made %d calls to the store, want at most 20", n, calls)
	}
	if held := inner.granted.Load() - n; held < 0 || held >= 100 {
		t.Fatalf("the store granted %d events for %d requests: %d held, want 0..99", inner.granted.Load(), n, held)
	}

	// A lease expires after the TTL: the next request asks the store.
	calls := inner.calls.Load()
	clock.Advance(time.Second)
	check(t, l, c)
	if inner.calls.Load() != calls+1 {
		t.Fatal("a request after the lease expired did not ask the store")
	}
}

func TestNodeCacheSmallLimitsNotLeased(t *testing.T) {
	inner, l, _ := newNodeCache(t)
	c := Check{Key: "k", Limit: Limit{Rate: 199, Burst: 199, Period: time.Hour}}
	for range 50 {
		check(t, l, c)
	}
	if calls, granted := inner.calls.Load(), inner.granted.Load(); calls != 50 || granted != 50 {
		t.Fatalf("50 requests: %d calls, %d granted; want 50 and 50", calls, granted)
	}
}

// TestNodeCacheNodesShareTheLimit: two nodes leasing from one store never
// allow more than the limit together, and refuse at most two leases early.
func TestNodeCacheNodesShareTheLimit(t *testing.T) {
	clock := clocktest.New(time.Time{})
	store := NewMemoryMulti(clock.Now)
	nodes := []MultiLimiter{NewNodeCache(store, clock.Now, time.Second), NewNodeCache(store, clock.Now, time.Second)}
	c := Check{Key: "k", Limit: Limit{Rate: 1000, Burst: 1000, Period: 24 * time.Hour}}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 400 {
				rs, err := nodes[g%2].CheckAll(context.Background(), []Check{c})
				if err != nil {
					t.Error(err)
					return
				}
				if rs[0].Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := int(allowed.Load()); got > 1000 || got < 1000-2*leaseMax(c.Limit) {
		t.Fatalf("two nodes allowed %d requests of a limit of 1000, want 980..1000", got)
	}
}

// TestNodeCacheHoldsPlainRefusals: a refusal without a penalty is answered
// on the node until it may change, at most the TTL.
func TestNodeCacheHoldsPlainRefusals(t *testing.T) {
	inner, l, clock := newNodeCache(t)
	c := Check{Key: "k", Limit: Limit{Rate: 1, Burst: 1, Period: time.Minute}}
	check(t, l, c)
	wantRefused(t, check(t, l, c), false, 0, time.Minute, 1)
	calls := inner.calls.Load()
	clock.Advance(500 * time.Millisecond)
	r := check(t, l, c)
	wantRefused(t, r, false, 0, time.Minute-500*time.Millisecond, 1)
	if inner.calls.Load() != calls {
		t.Fatal("a held refusal asked the store")
	}
	clock.Advance(500 * time.Millisecond)
	wantRefused(t, check(t, l, c), false, 0, time.Minute-time.Second, 1)
	if inner.calls.Load() != calls+1 {
		t.Fatal("a refusal held past the TTL")
	}
}

// TestNodeCachePenaltiesEscalate: the cache gives the same answers as the
// store alone to a key that keeps going under a penalty, while asking the
// store only when the answer may change.
func TestNodeCachePenaltiesEscalate(t *testing.T) {
	inner, cached, clock := newNodeCache(t)
	plainClock := clocktest.New(time.Time{})
	plain := NewMemoryMulti(plainClock.Now)
	c := Check{Key: "k", Limit: Limit{Rate: 10, Burst: 1, Period: time.Minute}, Penalty: &Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}}
	for i := range 200 {
		got, want := check(t, cached, c), check(t, plain, c)
		if got.Allowed != want.Allowed || got.RetryAfter != want.RetryAfter || got.Penalised != want.Penalised || got.Level != want.Level {
			t.Fatalf("request %d: %+v with the cache, %+v without", i, got, want)
		}
		clock.Advance(100 * time.Millisecond)
		plainClock.Advance(100 * time.Millisecond)
	}
	// 20 s of requests: the first two, the one that raised the penalty, then
	// one per TTL while blocked.
	if calls := inner.calls.Load(); calls > 25 {
		t.Fatalf("200 requests made %d calls to the store, want at most 25", calls)
	}
}

func TestNodeCacheLift(t *testing.T) {
	inner, l, _ := newNodeCache(t)
	c := Check{Key: "k", Limit: Limit{Rate: 1, Burst: 1, Period: time.Hour}}
	check(t, l, c)
	check(t, l, c)
	if err := l.Lift(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if r := check(t, l, c); !r.Allowed {
		t.Fatalf("after Lift: %+v, want allowed", r)
	}
	if inner.calls.Load() != 3 {
		t.Fatalf("%d calls to the store, want 3", inner.calls.Load())
	}
}

// TestNodeCacheHeldRefusalRefusesTheCall: a request one of whose checks is
// refused on the node is refused whole, and its other checks not counted.
func TestNodeCacheHeldRefusalRefusesTheCall(t *testing.T) {
	_, l, _ := newNodeCache(t)
	small := Check{Key: "small", Limit: Limit{Rate: 1, Burst: 1, Period: time.Hour}}
	other := Check{Key: "other", Limit: Limit{Rate: 5, Burst: 5, Period: time.Hour}}
	check(t, l, small)
	check(t, l, small) // refused: now held
	rs := checkAll(t, l, other, small)
	if !rs[0].Allowed || rs[1].Allowed {
		t.Fatalf("got %+v, want small refused", rs)
	}
	if r := check(t, l, other); r.Remaining != 4 {
		t.Fatalf("other: %+v, want 4 left (the refused call counted nothing)", r)
	}
}

// TestNodeCacheRedis: two nodes in front of one Redis share the count
// (leases never exceed it) and each answers held refusals itself.
func TestNodeCacheRedis(t *testing.T) {
	store, _, _ := newRedisMulti(t)
	a, b := NewNodeCache(store, nil, 0), NewNodeCache(store, nil, 0)
	c := Check{Key: "k", Limit: Limit{Rate: 500, Burst: 500, Period: 24 * time.Hour}}
	allowed := 0
	for i := range 700 {
		node := a
		if i%3 == 0 {
			node = b
		}
		rs, err := node.CheckAll(t.Context(), []Check{c})
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].Allowed {
			allowed++
		}
	}
	if allowed > 500 || allowed < 500-2*leaseMax(c.Limit) {
		t.Fatalf("two nodes allowed %d of a limit of 500, want 490..500", allowed)
	}
}
