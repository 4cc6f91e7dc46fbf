package session

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/lockout"
)

func TestIPBlock(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	kv := memory.New(clk.Now)
	defer kv.Close()
	l := &guard{Counter: lockout.Counter{KV: kv, Prefix: "login"}, cfg: LockoutConfig{IPFailures: 3, IPWindow: 15 * time.Minute}}
	ctx := context.Background()
	for range 3 {
		if d, _ := l.ipAttempt(ctx, "203.0.113.7"); d != 0 {
			t.Fatal("blocked before the limit")
		}
	}
	if d, _ := l.ipAttempt(ctx, "203.0.113.7"); d <= 0 || d > 15*time.Minute {
		t.Errorf("block after the limit = %v", d)
	}
	// A refused attempt is refunded: the counter stays at the limit.
	if b, _ := kv.Get(ctx, ipKey("203.0.113.7")); string(b) != "3" {
		t.Errorf("counter after a refused attempt = %s, want 3", b)
	}
	if d, _ := l.ipAttempt(ctx, "203.0.113.8"); d != 0 {
		t.Error("another IP is blocked")
	}
	clk.Advance(15*time.Minute + time.Second)
	if d, _ := l.ipAttempt(ctx, "203.0.113.7"); d != 0 {
		t.Errorf("still blocked after the window: %v", d)
	}
}

// TestIPBlockCoversTheSlash64 checks that an IPv6 client cannot take a new
// address from its /64 for each attempt.
func TestIPBlockCoversTheSlash64(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	kv := memory.New(clk.Now)
	defer kv.Close()
	l := &guard{Counter: lockout.Counter{KV: kv, Prefix: "login"}, cfg: LockoutConfig{IPFailures: 3, IPWindow: 15 * time.Minute}}
	ctx := context.Background()
	for _, ip := range []string{"2001:db8:a:b::1", "2001:db8:a:b::2", "2001:db8:a:b:ffff:ffff:ffff:ffff"} {
		if d, _ := l.ipAttempt(ctx, ip); d != 0 {
			t.Fatalf("%s blocked before the limit", ip)
		}
	}
	if d, _ := l.ipAttempt(ctx, "2001:db8:a:b:1234::9"); d <= 0 {
		t.Error("a fourth address of the same /64 is not blocked")
	}
	if d, _ := l.ipAttempt(ctx, "2001:db8:a:c::1"); d != 0 {
		t.Error("the next /64 is blocked")
	}
	if d, _ := l.ipAttempt(ctx, "::ffff:203.0.113.9"); d != 0 {
		t.Error("an IPv4-mapped address is blocked")
	}
}

// TestIPRefundAfterTheWindow checks that an attempt still in flight when
// its IP's window ends gives its unit back without lending it to the next
// window: the counter its refund creates at -1 disappears at once.
func TestIPRefundAfterTheWindow(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	kv := memory.New(clk.Now)
	defer kv.Close()
	l := &guard{Counter: lockout.Counter{KV: kv, Prefix: "login"}, cfg: LockoutConfig{IPFailures: 2, IPWindow: 15 * time.Minute}}
	ctx := context.Background()
	const ip = "203.0.113.20"
	for range 2 {
		if d, err := l.ipAttempt(ctx, ip); err != nil || d != 0 {
			t.Fatalf("ipAttempt = %v, %v", d, err)
		}
	}
	clk.Advance(16 * time.Minute) // the window ends with both attempts in flight
	for range 2 {
		if err := l.ipRefund(ctx, ip); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Millisecond)
	// The new window allows IPFailures attempts, not more.
	for i := range 2 {
		if d, err := l.ipAttempt(ctx, ip); err != nil || d != 0 {
			t.Fatalf("attempt %d of the new window = %v, %v; want allowed", i+1, d, err)
		}
	}
	if d, err := l.ipAttempt(ctx, ip); err != nil || d <= 0 {
		t.Fatalf("attempt 3 of the new window = %v, %v; want blocked", d, err)
	}
}
