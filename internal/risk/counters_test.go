package risk_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// The counters run on both ephemeral stores. Their buckets follow the
// counters' clock; keys expire after two windows of the store's own time,
// which the tests never reach (a one-hour window).
func TestCounters(t *testing.T) {
	stores := map[string]func(t *testing.T) kv.Store{
		"memory": func(t *testing.T) kv.Store {
			s := memory.New(nil)
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		"redis": func(t *testing.T) kv.Store {
			url, prefix := testenv.Redis(t)
			client, err := rediskv.NewClient(rediskv.Options{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = client.Close() })
			s := rediskv.New(client, prefix)
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Run("Distinct", func(t *testing.T) { testCountersDistinct(t, open(t)) })
			t.Run("SlidingWindow", func(t *testing.T) { testCountersSliding(t, open(t)) })
			t.Run("Parallel", func(t *testing.T) { testCountersParallel(t, open(t)) })
		})
	}
}

// start is on a one-hour bucket boundary.
var start = time.Date(2031, 3, 4, 9, 0, 0, 0, time.UTC)

func newCounters(t *testing.T, s kv.Store) (*risk.Counters, *clocktest.Clock) {
	t.Helper()
	clock := clocktest.New(start)
	c, err := risk.NewCounters(s, time.Hour, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return c, clock
}

func read(t *testing.T, c *risk.Counters, ip, account string) risk.Failures {
	t.Helper()
	f, err := c.Read(t.Context(), netip.MustParseAddr(ip), account)
	if err != nil {
		t.Fatalf("Read(%s, %s): %v", ip, account, err)
	}
	return f
}

func fail(t *testing.T, c *risk.Counters, ip, account string) {
	t.Helper()
	if err := c.Failed(t.Context(), netip.MustParseAddr(ip), account); err != nil {
		t.Fatalf("Failed(%s, %s): %v", ip, account, err)
	}
}

func testCountersDistinct(t *testing.T, s kv.Store) {
	c, _ := newCounters(t, s)
	const attacker = "203.0.113.9"
	for i := range 20 {
		account := fmt.Sprintf("user%d@example.com", i)
		fail(t, c, attacker, account)
		fail(t, c, attacker, account) // a repeat of the pair counts once
	}
	if f := read(t, c, attacker, "user0@example.com"); f.AccountsFromIP != 20 || f.IPsForAccount != 1 {
		t.Errorf("after 20 accounts from one address: %+v, want 20 accounts and 1 address", f)
	}
	if f := read(t, c, "203.0.113.10", "someone@example.com"); f != (risk.Failures{}) {
		t.Errorf("another address and account: %+v, want nothing", f)
	}

	// One account failed from many addresses; IPv6 counts by /64, and an
	// IPv4-mapped address as its IPv4 address.
	for _, ip := range []string{"198.51.100.1", "198.51.100.2", "::ffff:198.51.100.2", "2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:3::1"} {
		fail(t, c, ip, "victim@example.com")
	}
	if f := read(t, c, "192.0.2.1", "victim@example.com"); f.IPsForAccount != 4 || f.AccountsFromIP != 0 {
		t.Errorf("victim: %+v, want 4 addresses", f)
	}
	if f := read(t, c, "2001:db8:1:2::42", "other@example.com"); f.AccountsFromIP != 1 {
		t.Errorf("same /64: %+v, want 1 account", f)
	}
}

func testCountersSliding(t *testing.T, s kv.Store) {
	c, clock := newCounters(t, s)
	for i := range 10 {
		fail(t, c, "203.0.113.9", fmt.Sprintf("u%d", i))
	}
	clock.Advance(time.Hour + 15*time.Minute) // next bucket: the previous weighs 3/4
	fail(t, c, "203.0.113.9", "u0")           // the pair counts again in the new bucket
	if f := read(t, c, "203.0.113.9", "x"); f.AccountsFromIP != 1+7 {
		t.Errorf("15 minutes into the next window: %d accounts, want 1 + 10×3/4 = 8", f.AccountsFromIP)
	}
	clock.Advance(45 * time.Minute)
	if f := read(t, c, "203.0.113.9", "x"); f.AccountsFromIP != 1 {
		t.Errorf("two windows later: %d accounts, want 1", f.AccountsFromIP)
	}
	clock.Advance(time.Hour)
	if f := read(t, c, "203.0.113.9", "u0"); f != (risk.Failures{}) {
		t.Errorf("three windows later: %+v, want nothing", f)
	}
}

func testCountersParallel(t *testing.T, s kv.Store) {
	c, _ := newCounters(t, s)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			// 10 accounts, each failed 5 times in parallel.
			if err := c.Failed(t.Context(), netip.MustParseAddr("203.0.113.9"), fmt.Sprintf("u%d", i%10)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if f := read(t, c, "203.0.113.9", "u1"); f.AccountsFromIP != 10 || f.IPsForAccount != 1 {
		t.Errorf("parallel failures: %+v, want 10 accounts and 1 address", f)
	}
}

func TestNewCountersChecks(t *testing.T) {
	s := memory.New(nil)
	defer s.Close()
	if _, err := risk.NewCounters(s, 0, time.Now); err == nil {
		t.Error("zero window accepted")
	}
	if _, err := risk.NewCounters(nil, time.Hour, time.Now); err == nil {
		t.Error("nil store accepted")
	}
}
