package ratelimit

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newLimiterFunc returns a fresh limiter, isolated from every other one it
// returns, and a function that moves its clock forward (a fake clock's
// Advance, or time.Sleep for Redis).
type newLimiterFunc func(t *testing.T) (Limiter, func(time.Duration))

// The limits below have emission intervals that are exact in binary
// floating point (6s, 250ms, 125ms), so that redis_rate's float arithmetic
// has no rounding to disagree about with the integer twin.
var (
	perMinute = Limit{Rate: 10, Burst: 5, Period: time.Minute} // a token every 6s
	perSecond = Limit{Rate: 8, Burst: 2, Period: time.Second}  // a token every 125ms
)

// runSuite checks a Limiter against GCRA's behaviour. On Redis, time keeps
// running between calls, so durations are checked within a range whose
// upper end is the exact value.
func runSuite(t *testing.T, newLimiter newLimiterFunc) {
	tests := []struct {
		name string
		fn   func(*testing.T, Limiter, func(time.Duration))
	}{
		{"Burst", testBurst},
		{"Refill", testRefill},
		{"AllowN", testAllowN},
		{"Atomic", testAtomic},
		{"Reset", testReset},
		{"KeysIndependent", testKeysIndependent},
		{"InvalidLimit", testInvalidLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, advance := newLimiter(t)
			tt.fn(t, l, advance)
		})
	}
}

func allow(t *testing.T, l Limiter, key string, limit Limit, n int) Result {
	t.Helper()
	r, err := l.AllowN(t.Context(), key, limit, n)
	if err != nil {
		t.Fatalf("AllowN(%q, %v, %d): %v", key, limit, n, err)
	}
	return r
}

// within checks lo < d <= hi.
func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d <= lo || d > hi {
		t.Fatalf("%s = %v, want in (%v, %v]", what, d, lo, hi)
	}
}

// slack is how much earlier than exact a duration may come back from Redis,
// whose clock runs while the test works.
const slack = time.Second

func wantAllowed(t *testing.T, r Result, n, remaining int, resetAfter time.Duration) {
	t.Helper()
	if r.Allowed != n || r.Remaining != remaining || r.RetryAfter != -1 {
		t.Fatalf("got %+v, want Allowed %d, Remaining %d, RetryAfter -1", r, n, remaining)
	}
	within(t, "ResetAfter", r.ResetAfter, resetAfter-slack, resetAfter)
}

func wantDenied(t *testing.T, r Result, retryAfter, resetAfter time.Duration) {
	t.Helper()
	if r.Allowed != 0 || r.Remaining != 0 {
		t.Fatalf("got %+v, want Allowed 0, Remaining 0", r)
	}
	within(t, "RetryAfter", r.RetryAfter, retryAfter-slack, retryAfter)
	within(t, "ResetAfter", r.ResetAfter, resetAfter-slack, resetAfter)
}

func testBurst(t *testing.T, l Limiter, _ func(time.Duration)) {
	for i := range perMinute.Burst {
		r := allow(t, l, "k", perMinute, 1)
		wantAllowed(t, r, 1, perMinute.Burst-1-i, time.Duration(i+1)*6*time.Second)
	}
	// Out of tokens: the next one comes back in one emission interval,
	// the whole burst in five.
	for range 3 {
		wantDenied(t, allow(t, l, "k", perMinute, 1), 6*time.Second, 30*time.Second)
	}
}

func testRefill(t *testing.T, l Limiter, advance func(time.Duration)) {
	allow(t, l, "k", perSecond, 1)
	allow(t, l, "k", perSecond, 1)
	r := allow(t, l, "k", perSecond, 1)
	if r.Allowed != 0 {
		t.Fatalf("third request of a burst of 2 allowed: %+v", r)
	}
	within(t, "RetryAfter", r.RetryAfter, 0, 125*time.Millisecond)

	// One token back after RetryAfter (plus a little, for Redis's clock).
	advance(r.RetryAfter + 5*time.Millisecond)
	r = allow(t, l, "k", perSecond, 1)
	if r.Allowed != 1 || r.Remaining != 0 {
		t.Fatalf("after RetryAfter: %+v, want Allowed 1, Remaining 0", r)
	}
	r = allow(t, l, "k", perSecond, 1)
	if r.Allowed != 0 {
		t.Fatalf("second request after one refill allowed: %+v", r)
	}

	// After ResetAfter the whole burst is back.
	advance(r.ResetAfter + 5*time.Millisecond)
	if r := allow(t, l, "k", perSecond, 1); r.Allowed != 1 || r.Remaining != 1 {
		t.Fatalf("after ResetAfter: %+v, want Allowed 1, Remaining 1", r)
	}
}

func testAllowN(t *testing.T, l Limiter, _ func(time.Duration)) {
	wantAllowed(t, allow(t, l, "k", perMinute, 3), 3, 2, 18*time.Second)
	// Three more do not fit in the two left, and none of them is taken:
	// the third token is 6s away.
	wantDenied(t, allow(t, l, "k", perMinute, 3), 6*time.Second, 18*time.Second)
	// n = 0 only looks.
	wantAllowed(t, allow(t, l, "k", perMinute, 0), 0, 2, 18*time.Second)
	wantAllowed(t, allow(t, l, "k", perMinute, 2), 2, 0, 30*time.Second)
	wantDenied(t, allow(t, l, "k", perMinute, 1), 6*time.Second, 30*time.Second)

	// More than Burst at once is never allowed, even on a fresh key.
	if r := allow(t, l, "big", perMinute, perMinute.Burst+1); r.Allowed != 0 {
		t.Fatalf("AllowN(Burst+1) on a fresh key: %+v, want refused", r)
	}
	wantAllowed(t, allow(t, l, "big", perMinute, perMinute.Burst), 5, 0, 30*time.Second)
}

func testAtomic(t *testing.T, l Limiter, _ func(time.Duration)) {
	limit := Limit{Rate: 10, Burst: 10, Period: time.Minute}
	const n = 100
	var (
		mu        sync.Mutex
		remaining []int
		errs      []error
		wg        sync.WaitGroup
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			r, err := l.AllowN(t.Context(), "k", limit, 1)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if r.Allowed == 1 {
				remaining = append(remaining, r.Remaining)
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Exactly Burst allowed, each seeing a different count of tokens left.
	slices.Sort(remaining)
	want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if diff := cmp.Diff(want, remaining); diff != "" {
		t.Fatalf("Remaining of the allowed requests among %d parallel ones (-want +got):\n%s", n, diff)
	}
}

func testReset(t *testing.T, l Limiter, _ func(time.Duration)) {
	for range perMinute.Burst {
		allow(t, l, "k", perMinute, 1)
	}
	if r := allow(t, l, "k", perMinute, 1); r.Allowed != 0 {
		t.Fatalf("exhausted key allowed: %+v", r)
	}
	if err := l.Reset(t.Context(), "k"); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	wantAllowed(t, allow(t, l, "k", perMinute, 1), 1, 4, 6*time.Second)
	if err := l.Reset(t.Context(), "never used"); err != nil {
		t.Fatalf("Reset(unknown key): %v", err)
	}
}

func testKeysIndependent(t *testing.T, l Limiter, _ func(time.Duration)) {
	allow(t, l, "a", perMinute, perMinute.Burst)
	if r := allow(t, l, "a", perMinute, 1); r.Allowed != 0 {
		t.Fatalf("exhausted key allowed: %+v", r)
	}
	wantAllowed(t, allow(t, l, "b", perMinute, 1), 1, 4, 6*time.Second)
}

func testInvalidLimit(t *testing.T, l Limiter, _ func(time.Duration)) {
	for _, c := range []struct {
		limit Limit
		n     int
	}{
		{Limit{}, 1},
		{Limit{Rate: 0, Burst: 1, Period: time.Second}, 1},
		{Limit{Rate: 1, Burst: 0, Period: time.Second}, 1},
		{Limit{Rate: 1, Burst: 1, Period: 0}, 1},
		{Limit{Rate: 1, Burst: 1, Period: -time.Second}, 1},
		{Limit{Rate: 1, Burst: 1, Period: time.Second}, -1},
		{Limit{Rate: 2e9, Burst: 1, Period: time.Second}, 1},
		{Limit{Rate: 1, Burst: 1 << 40, Period: time.Hour}, 1},
		{Limit{Rate: 1, Burst: 1, Period: time.Hour}, 1 << 40},
	} {
		if r, err := l.AllowN(t.Context(), "k", c.limit, c.n); !errors.Is(err, ErrInvalidLimit) {
			t.Errorf("AllowN(%v, n=%d) = %+v, %v; want ErrInvalidLimit", c.limit, c.n, r, err)
		}
	}
}
