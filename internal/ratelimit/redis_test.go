package ratelimit

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// redisClient connects to the test Redis, with a key prefix of the
// test's own.
func redisClient(t testing.TB) (*redis.Client, string) {
	t.Helper()
	url, prefix := testenv.Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	return client, prefix
}

func newRedis(t *testing.T) (Limiter, redis.UniversalClient, string) {
	t.Helper()
	client, prefix := redisClient(t)
	return NewRedis(client, prefix), client, prefix
}

func TestRedis(t *testing.T) {
	testenv.Redis(t) // skip (or fail) here rather than in every subtest
	runSuite(t, func(t *testing.T) (Limiter, func(time.Duration)) {
		l, _, _ := newRedis(t)
		return l, time.Sleep
	})
}

func TestRedisKeys(t *testing.T) {
	l, client, prefix := newRedis(t)
	ctx := t.Context()
	allow(t, l, "login:alice", perMinute, 1)
	keys, err := client.Keys(ctx, "rate:"+prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := "rate:" + prefix + "login:alice"; len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys %q, want [%q]", keys, want)
	}
	// The key lives until the key is back to a full burst (6s here).
	if d, err := client.TTL(ctx, keys[0]).Result(); err != nil || d <= 0 || d > 6*time.Second {
		t.Fatalf("TTL = %v, %v; want in (0, 6s]", d, err)
	}
	if err := l.Reset(ctx, "login:alice"); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Exists(ctx, keys[0]).Result(); err != nil || n != 0 {
		t.Fatalf("key still there after Reset (%d, %v)", n, err)
	}
}

// step is one scripted call: wait, then AllowN(key, limit, n), or Reset.
type step struct {
	wait  time.Duration
	key   string
	limit Limit
	n     int
	reset bool
}

// script exercises bursts, AllowN with n > 1, n = 0, refusals, refill after
// waiting and Reset, on two keys with different limits.
var script = []step{
	{key: "a", limit: perMinute, n: 1},
	{key: "a", limit: perMinute, n: 2},
	{key: "a", limit: perMinute, n: 3},
	{key: "a", limit: perMinute, n: 0},
	{key: "a", limit: perMinute, n: 2},
	{key: "a", limit: perMinute, n: 1},
	{key: "a", limit: perMinute, n: 6},
	{key: "b", limit: Limit{Rate: 4, Burst: 3, Period: time.Second}, n: 3},
	{key: "b", limit: Limit{Rate: 4, Burst: 3, Period: time.Second}, n: 1},
	{wait: 260 * time.Millisecond, key: "b", limit: Limit{Rate: 4, Burst: 3, Period: time.Second}, n: 1},
	{key: "b", limit: Limit{Rate: 4, Burst: 3, Period: time.Second}, n: 1},
	{key: "a", reset: true},
	{key: "a", limit: perMinute, n: 4},
	{key: "a", limit: perMinute, n: 1},
	{key: "a", limit: perMinute, n: 1},
}

func play(t *testing.T, l Limiter, advance func(time.Duration)) []Result {
	t.Helper()
	var out []Result
	for _, s := range script {
		if s.wait > 0 {
			advance(s.wait)
		}
		if s.reset {
			if err := l.Reset(t.Context(), s.key); err != nil {
				t.Fatal(err)
			}
			continue
		}
		out = append(out, allow(t, l, s.key, s.limit, s.n))
	}
	return out
}

// TestMemoryMatchesRedis plays the same script on both limiters and expects
// the same results: Allowed and Remaining exactly, durations within the
// time Redis's clock ran on while the script played.
func TestMemoryMatchesRedis(t *testing.T) {
	l, _, _ := newRedis(t)
	start := time.Now()
	got := play(t, l, time.Sleep)
	elapsed := time.Since(start)

	c := clocktest.New(time.Time{})
	want := play(t, NewMemory(c.Now), c.Advance)

	// Redis's clock runs on between calls, so its durations may be shorter
	// by up to the real time the script took beyond its waits.
	tolerance := elapsed - 260*time.Millisecond + 10*time.Millisecond
	durations := cmp.Comparer(func(a, b time.Duration) bool {
		if a < 0 || b < 0 {
			return a == b // -1 means "allowed" and must match exactly
		}
		return (a - b).Abs() <= tolerance
	})
	if diff := cmp.Diff(want, got, durations); diff != "" {
		t.Errorf("Redis results (+) differ from memory (-), tolerance %v:\n%s", tolerance, diff)
	}
	// The script must exercise both outcomes to mean anything.
	var allowed, refused int
	for _, r := range want {
		if r.Allowed > 0 {
			allowed++
		} else if r.RetryAfter > 0 {
			refused++
		}
	}
	if allowed < 4 || refused < 3 {
		t.Fatalf("script allowed %d and refused %d requests; it should do plenty of both:\n%s", allowed, refused, format(want))
	}
}

func format(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%+v\n", r)
	}
	return b.String()
}
