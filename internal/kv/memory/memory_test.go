package memory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/kvtest"
)

func newStore(t *testing.T) (*Store, *clocktest.Clock) {
	c := clocktest.New(time.Time{})
	s := New(c.Now)
	t.Cleanup(func() { _ = s.Close() })
	return s, c
}

func TestConformance(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) (kv.Store, func(time.Duration)) {
		s, c := newStore(t)
		return s, c.Advance
	})
}

func TestExpiresAtDeadline(t *testing.T) {
	s, c := newStore(t)
	ctx := t.Context()
	if err := s.Set(ctx, "k", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second - time.Nanosecond)
	if d, err := s.TTL(ctx, "k"); err != nil || d != time.Nanosecond {
		t.Fatalf("TTL 1ns before the deadline = %v, %v; want 1ns", d, err)
	}
	c.Advance(time.Nanosecond)
	if _, err := s.Get(ctx, "k"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get at the deadline: %v, want ErrNotFound", err)
	}
}

func TestSweepRemovesUntouchedKeys(t *testing.T) {
	s, c := newStore(t)
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if err := s.Set(ctx, k, []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SAdd(ctx, "set", "m"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expire(ctx, "set", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "forever", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}

	if n := s.sweep(); n != 0 {
		t.Fatalf("sweep before expiry removed %d keys", n)
	}
	c.Advance(time.Minute)
	if n := s.sweep(); n != 2 {
		t.Fatalf("sweep removed %d keys, want 2", n)
	}
	c.Advance(time.Minute)
	if n := s.sweep(); n != 1 {
		t.Fatalf("second sweep removed %d keys, want 1 (the set)", n)
	}
	s.mu.Lock()
	left := len(s.data)
	s.mu.Unlock()
	if left != 1 {
		t.Fatalf("%d keys left, want 1", left)
	}
}

func TestJanitorRunsAndStops(t *testing.T) {
	c := clocktest.New(time.Time{})
	s := &Store{
		now:  c.Now,
		data: make(map[string]*entry),
		subs: make(map[string]map[*subscription]struct{}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.janitor(time.Millisecond)
	if err := s.Set(t.Context(), "k", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.data)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("janitor did not remove the expired key")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("Close returned before the janitor stopped")
	}
}

func TestPublishDropsWhenBufferFull(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	slow, err := s.Subscribe(ctx, "ch")
	if err != nil {
		t.Fatal(err)
	}
	// Publish must not block however far behind the subscriber is.
	done := make(chan error, 1)
	go func() {
		for range SubscriptionBuffer + 10 {
			if err := s.Publish(ctx, "ch", []byte("x")); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a full subscriber")
	}
	if err := slow.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for range slow.C() {
		n++
	}
	if n != SubscriptionBuffer {
		t.Fatalf("subscriber got %d messages, want the %d that fit its buffer", n, SubscriptionBuffer)
	}
}

func TestPublishCopiesPayload(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	a, err := s.Subscribe(ctx, "ch")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Subscribe(ctx, "ch")
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("abc")
	if err := s.Publish(ctx, "ch", payload); err != nil {
		t.Fatal(err)
	}
	payload[0] = 'X'
	ma, mb := <-a.C(), <-b.C()
	ma.Payload[1] = 'Y'
	if string(mb.Payload) != "abc" {
		t.Fatalf("b got %q, want %q", mb.Payload, "abc")
	}
}

func TestTypedErrors(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	if _, err := s.SAdd(ctx, "set", "m"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "set", 1, 0); !errors.Is(err, ErrWrongType) {
		t.Fatalf("Incr on a set: %v, want ErrWrongType", err)
	}
	if err := s.Set(ctx, "s", []byte("1.5"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "s", 1, 0); !errors.Is(err, ErrNotInteger) {
		t.Fatalf("Incr on 1.5: %v, want ErrNotInteger", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after Close: %v, want ErrClosed", err)
	}
}

func TestNilClockUsesTimeNow(t *testing.T) {
	s := New(nil)
	defer s.Close()
	ctx := context.Background()
	if err := s.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if d, err := s.TTL(ctx, "k"); err != nil || d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("TTL = %v, %v", d, err)
	}
}
