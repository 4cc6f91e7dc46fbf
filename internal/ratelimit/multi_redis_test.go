package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// newRedisMulti returns a MultiLimiter on the test Redis under a prefix of
// its own (removed when the test ends), its client and the prefix.
func newRedisMulti(t testing.TB) (MultiLimiter, *redis.Client, string) {
	t.Helper()
	client, prefix := redisClient(t)
	return NewRedisMulti(client, prefix), client, prefix
}

func TestRedisMulti(t *testing.T) {
	testenv.Redis(t) // skip (or fail) here rather than in every subtest
	runMultiSuite(t, func(t *testing.T) (MultiLimiter, func(time.Duration)) {
		l, _, _ := newRedisMulti(t)
		return l, time.Sleep
	})
}

func TestRedisMultiKeys(t *testing.T) {
	l, client, prefix := newRedisMulti(t)
	ctx := t.Context()
	tatKey, penKey := prefix+"rl:k", prefix+"rl-penalty:k"
	ttl := func(key string) time.Duration {
		t.Helper()
		d, err := client.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	limit := Limit{Rate: 10, Burst: 1, Period: time.Minute} // 6s
	c := Check{Key: "k", Limit: limit, Penalty: &Penalty{Base: time.Minute, Max: time.Hour, Decay: 10 * time.Minute}}

	// Allowed: the TAT lives until the key is back to a full burst; no
	// penalty state yet.
	check(t, l, c)
	within(t, "TTL of the TAT", ttl(tatKey), 6*time.Second-slack, 6*time.Second)
	if d := ttl(penKey); d != -2 {
		t.Fatalf("penalty key after an allowed request: TTL %v, want none (-2)", d)
	}
	// Refused, then penalised: the penalty state lives a Decay after the
	// last refusal, the TAT does not move.
	check(t, l, c)
	within(t, "TTL of the penalty state", ttl(penKey), 10*time.Minute-slack, 10*time.Minute)
	if r := check(t, l, c); !r.Penalised {
		t.Fatalf("third request %+v, want penalised", r)
	}
	within(t, "TTL of the penalty state", ttl(penKey), 10*time.Minute-slack, 10*time.Minute)
	within(t, "TTL of the TAT", ttl(tatKey), 6*time.Second-slack, 6*time.Second)

	// A block longer than Decay keeps the state until the block ends.
	long := Check{Key: "long", Limit: limit, Penalty: &Penalty{Base: time.Hour, Max: time.Hour, Decay: time.Minute}}
	for range 3 {
		check(t, l, long)
	}
	within(t, "TTL of a long block", ttl(prefix+"rl-penalty:long"), time.Hour-slack, time.Hour)

	if err := l.Lift(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Exists(ctx, tatKey, penKey).Result(); err != nil || n != 0 {
		t.Fatalf("%d keys still there after Lift (%v)", n, err)
	}
}

// commandCounter counts the commands a client sends, each command of a
// pipeline included.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestRedisMultiOneRoundTrip checks that CheckAll sends one command
// whatever the number of checks (once the script is loaded: the very first
// call may need an EVAL after a NOSCRIPT), and none for no checks.
func TestRedisMultiOneRoundTrip(t *testing.T) {
	l, client, _ := newRedisMulti(t)
	var counter commandCounter
	client.AddHook(&counter)
	pen := &Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}
	checks := []Check{
		{Key: "ip", Limit: perMinute, Penalty: pen},
		{Key: "email", Limit: Limit{Rate: 1, Burst: 1, Period: time.Hour}, Penalty: pen},
		{Key: "route", Limit: perSecond},
	}
	checkAll(t, l, checks...) // loads the script if needed
	for i := range 4 {        // allowed, refused, penalised, blocked
		before := counter.n.Load()
		checkAll(t, l, checks...)
		if n := counter.n.Load() - before; n != 1 {
			t.Fatalf("call %d: %d commands, want 1", i+2, n)
		}
	}
	before := counter.n.Load()
	checkAll(t, l)
	if n := counter.n.Load() - before; n != 0 {
		t.Fatalf("CheckAll of no checks sent %d commands, want 0", n)
	}
}

// TestRedisMultiUnavailable cuts the connection to Redis: CheckAll and
// Lift fail with kv.ErrUnavailable, and CheckAll of no checks, which needs
// no Redis, still succeeds.
func TestRedisMultiUnavailable(t *testing.T) {
	url, prefix := testenv.Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, opts.Addr)
	opts.Addr = proxy.Addr()
	opts.MaxRetries = -1 // no retries
	opts.DialTimeout = time.Second
	client := redis.NewClient(opts)
	defer client.Close()
	l := NewRedisMulti(client, prefix)
	checks := []Check{{Key: "k", Limit: perMinute}}
	checkAll(t, l, checks...)

	proxy.Cut()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := l.CheckAll(ctx, checks); !errors.Is(err, kv.ErrUnavailable) {
		t.Errorf("CheckAll with Redis gone = %v, want kv.ErrUnavailable", err)
	}
	if err := l.Lift(ctx, "k"); !errors.Is(err, kv.ErrUnavailable) {
		t.Errorf("Lift with Redis gone = %v, want kv.ErrUnavailable", err)
	}
	if rs, err := l.CheckAll(ctx, nil); err != nil || len(rs) != 0 {
		t.Errorf("CheckAll(nil) with Redis gone = %v, %v; want no results, no error", rs, err)
	}
}

// multiStep is one scripted call: wait, then CheckAll(checks), or Lift(lift).
type multiStep struct {
	wait   time.Duration
	checks []Check
	lift   string
}

// TestMemoryMultiMatchesRedis plays the same calls on both MultiLimiters
// and expects the same results: flags, Remaining and Level exactly,
// durations within the time Redis's clock ran on while the script played.
func TestMemoryMultiMatchesRedis(t *testing.T) {
	pen := &Penalty{Base: 600 * time.Millisecond, Max: time.Second, Decay: time.Minute}
	a := Check{Key: "a", Limit: Limit{Rate: 2, Burst: 2, Period: time.Second}, Penalty: pen} // 500ms
	b := Check{Key: "b", Limit: Limit{Rate: 4, Burst: 3, Period: time.Second}}               // 250ms
	script := []multiStep{
		{checks: []Check{a, b}},
		{checks: []Check{a, b}},
		{checks: []Check{a, b}}, // a refuses
		{checks: []Check{b, a}}, // a penalised
		{checks: []Check{b}},
		{checks: []Check{b}}, // b refuses
		{wait: 300 * time.Millisecond, checks: []Check{a, b}},
		{wait: 300 * time.Millisecond, checks: []Check{a, b}}, // the block is over
		{checks: []Check{a}},
		{checks: []Check{a}}, // penalised again, level 2
		{lift: "a"},
		{checks: []Check{a, b}},
	}
	const waits = 600 * time.Millisecond
	play := func(l MultiLimiter, advance func(time.Duration)) [][]CheckResult {
		var out [][]CheckResult
		for _, s := range script {
			if s.wait > 0 {
				advance(s.wait)
			}
			if s.lift != "" {
				if err := l.Lift(t.Context(), s.lift); err != nil {
					t.Fatal(err)
				}
				continue
			}
			out = append(out, checkAll(t, l, s.checks...))
		}
		return out
	}

	l, _, _ := newRedisMulti(t)
	start := time.Now()
	got := play(l, time.Sleep)
	elapsed := time.Since(start)
	c := clocktest.New(time.Time{})
	want := play(NewMemoryMulti(c.Now), c.Advance)

	tolerance := elapsed - waits + 10*time.Millisecond
	durations := cmp.Comparer(func(x, y time.Duration) bool {
		if x < 0 || y < 0 {
			return x == y // -1 means "allowed" and must match exactly
		}
		return (x - y).Abs() <= tolerance
	})
	if diff := cmp.Diff(want, got, durations); diff != "" {
		t.Errorf("Redis results (+) differ from memory (-), tolerance %v:\n%s", tolerance, diff)
	}
	// The script must exercise every outcome to mean anything.
	var allowed, refused, penalised, level2 int
	for _, rs := range want {
		for _, r := range rs {
			switch {
			case r.Penalised:
				penalised++
			case r.Allowed:
				allowed++
			default:
				refused++
			}
			if r.Level == 2 {
				level2++
			}
		}
	}
	if allowed < 5 || refused < 2 || penalised < 3 || level2 == 0 {
		t.Fatalf("script allowed %d, refused %d and penalised %d checks, reached level 2 %d times: it should do all of them:\n%v",
			allowed, refused, penalised, level2, want)
	}
}
