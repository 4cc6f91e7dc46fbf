package throttle

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/ratepolicy"
)

func TestFeatureLimiter(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	pol, err := ratepolicy.Parse([]byte("rules:\n  - name: register-ip\n    routes: [register]\n    key: ip\n    limit: 1/1h\n    penalty: false\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	store := memory.New(clock)
	defer store.Close()
	inner := ratelimit.NewMemory(clock)
	stats := NewStats(store, clock, nil)
	f := &FeatureLimiter{Inner: inner, Multi: ratelimit.NewMemoryMulti(clock), Policy: func() *ratepolicy.Policy { return pol }, Stats: stats}
	builtin := ratelimit.Limit{Rate: 3, Burst: 3, Period: time.Hour}

	// A rule the policy names: its limit, not the feature's.
	if r, err := f.AllowN(ctx, "register:ip:192.0.2.1", builtin, 1); err != nil || r.Allowed != 1 {
		t.Fatalf("first = %+v, %v", r, err)
	}
	r, err := f.AllowN(ctx, "register:ip:192.0.2.1", builtin, 1)
	if err != nil || r.Allowed != 0 || r.RetryAfter <= 0 {
		t.Fatalf("second under register-ip 1/1h = %+v, %v; want refused", r, err)
	}
	// A feature rule the policy lacks keeps the feature's limit.
	for i := range 3 {
		if r, _ := f.AllowN(ctx, "email:ip:192.0.2.1", builtin, 1); r.Allowed != 1 {
			t.Fatalf("email-ip %d refused", i+1)
		}
	}
	if r, _ := f.AllowN(ctx, "email:ip:192.0.2.1", builtin, 1); r.Allowed != 0 {
		t.Error("email-ip beyond the built-in limit allowed")
	}
	// Other keys go to the inner limiter, as before.
	if r, _ := f.AllowN(ctx, "email-change:user:u1", ratelimit.Limit{Rate: 1, Burst: 1, Period: time.Hour}, 1); r.Allowed != 1 {
		t.Error("a key of no rule refused")
	}
	if r, _ := inner.AllowN(ctx, "email-change:user:u1", ratelimit.Limit{Rate: 1, Burst: 1, Period: time.Hour}, 0); r.Remaining != 0 {
		t.Errorf("the inner limiter did not count the key: %+v", r)
	}
	// Refusals are in the report under the rule's name and key.
	if err := stats.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := stats.Report(ctx, "register-ip", 5)
	if err != nil || rep.Refusals1h != 1 || len(rep.TopKeys) != 1 || rep.TopKeys[0].Key != "192.0.2.1" {
		t.Errorf("report = %+v, %v", rep, err)
	}
	// Reset lifts the rule's key.
	if err := f.Reset(ctx, "register:ip:192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.AllowN(ctx, "register:ip:192.0.2.1", builtin, 1); r.Allowed != 1 {
		t.Error("refused after Reset")
	}

	// A bypass network skips the rules by client address, not those that
	// protect an address or an account.
	f.Bypass = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/48")}
	for _, key := range []string{"register:ip:198.51.100.7", "register:ip:2001:db8::/64"} {
		for i := range 5 {
			if r, err := f.AllowN(ctx, key, builtin, 1); err != nil || r.Allowed != 1 {
				t.Fatalf("%s from a bypass network, request %d = %+v, %v", key, i+1, r, err)
			}
		}
	}
	f.Bypass = []netip.Prefix{netip.MustParsePrefix("2001:db8::1/128")}
	f.AllowN(ctx, "register:ip:2001:db8::/64", builtin, 1)
	if r, _ := f.AllowN(ctx, "register:ip:2001:db8::/64", builtin, 1); r.Allowed != 0 {
		t.Error("a /64 counted as bypassed for one address of it")
	}
	f.Bypass = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	f.AllowN(ctx, "email:addr:x", builtin, 1)
	for range 3 {
		f.AllowN(ctx, "email:addr:x", builtin, 1)
	}
	if r, _ := f.AllowN(ctx, "email:addr:x", builtin, 1); r.Allowed != 0 {
		t.Error("email-address skipped for a bypass network")
	}
}
