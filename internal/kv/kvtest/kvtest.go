// Package kvtest is the conformance suite every kv.Store implementation
// must pass, so that the in-process store and Redis behave the same.
package kvtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse/gatehouse/internal/kv"
)

// NewStore returns an empty store, isolated from every other store it
// returns, and a function that moves the store's clock forward: a fake
// clock's Advance, or time.Sleep for a store on real time. It registers the
// store's cleanup with t and is called from parallel subtests.
type NewStore func(t *testing.T) (kv.Store, func(time.Duration))

// Run runs the suite. Subtests run in parallel, so a store on real time
// sleeps (for little more than a second) only once overall.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewStore)
	}{
		{"GetSet", testGetSet},
		{"Expiry", testExpiry},
		{"SetNX", testSetNX},
		{"GetDelOnce", testGetDelOnce},
		{"GetSetMany", testGetSetMany},
		{"CompareAndSwap", testCompareAndSwap},
		{"IncrAtomic", testIncrAtomic},
		{"IncrFixedWindow", testIncrFixedWindow},
		{"IncrErrors", testIncrErrors},
		{"IncrUnless", testIncrUnless},
		{"IncrUnlessErrors", testIncrUnlessErrors},
		{"IncrUnlessAtomic", testIncrUnlessAtomic},
		{"DecrExisting", testDecrExisting},
		{"DecrExistingErrors", testDecrExistingErrors},
		{"DecrExistingAtomic", testDecrExistingAtomic},
		{"TTLAndExpire", testTTLAndExpire},
		{"NegativeTTL", testNegativeTTL},
		{"Delete", testDelete},
		{"Sets", testSets},
		{"WrongType", testWrongType},
		{"PubSub", testPubSub},
		{"PubSubClose", testPubSubClose},
		{"PubSubContext", testPubSubContext},
		{"Isolation", testIsolation},
		{"Close", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore)
		})
	}
}

// wait bounds every wait for a message or a closed channel; it is long
// because the suite may run on a loaded machine, and only failures hit it.
const wait = 5 * time.Second

func ctx(t *testing.T) context.Context { return t.Context() }

func mustSet(t *testing.T, s kv.Store, key, value string, ttl time.Duration) {
	t.Helper()
	if err := s.Set(ctx(t), key, []byte(value), ttl); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func wantValue(t *testing.T, s kv.Store, key, want string) {
	t.Helper()
	got, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v, want %q", key, err, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

func wantNotFound(t *testing.T, s kv.Store, key string) {
	t.Helper()
	if got, err := s.Get(ctx(t), key); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, got, err)
	}
	if got, err := s.TTL(ctx(t), key); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("TTL(%q) = %v, %v; want ErrNotFound", key, got, err)
	}
}

// wantTTL checks that key expires within (lo, hi].
func wantTTL(t *testing.T, s kv.Store, key string, lo, hi time.Duration) {
	t.Helper()
	got, err := s.TTL(ctx(t), key)
	if err != nil {
		t.Fatalf("TTL(%q): %v", key, err)
	}
	if got <= lo || got > hi {
		t.Fatalf("TTL(%q) = %v, want in (%v, %v]", key, got, lo, hi)
	}
}

func wantNoExpiry(t *testing.T, s kv.Store, key string) {
	t.Helper()
	got, err := s.TTL(ctx(t), key)
	if err != nil || got != 0 {
		t.Fatalf("TTL(%q) = %v, %v; want 0 (no expiry)", key, got, err)
	}
}

func testGetSet(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	wantNotFound(t, s, "k")

	mustSet(t, s, "k", "v1", 0)
	wantValue(t, s, "k", "v1")
	mustSet(t, s, "k", "v2", 0)
	wantValue(t, s, "k", "v2")

	// Set replaces the TTL too.
	mustSet(t, s, "k", "v3", time.Hour)
	wantTTL(t, s, "k", 59*time.Minute, time.Hour)
	mustSet(t, s, "k", "v4", 0)
	wantNoExpiry(t, s, "k")

	// Arbitrary bytes and the empty value round-trip; empty is not absent.
	bin := []byte{0, 0xff, '\n', 0xc3, 0x28}
	if err := s.Set(ctx(t), "bin", bin, 0); err != nil {
		t.Fatal(err)
	}
	wantValue(t, s, "bin", string(bin))
	mustSet(t, s, "empty", "", 0)
	wantValue(t, s, "empty", "")

	// The store keeps its own copy: changing either slice afterwards
	// changes nothing stored.
	buf := []byte("abc")
	if err := s.Set(ctx(t), "copy", buf, 0); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X'
	got, err := s.Get(ctx(t), "copy")
	if err != nil {
		t.Fatal(err)
	}
	got[1] = 'Y'
	wantValue(t, s, "copy", "abc")

	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testExpiry(t *testing.T, newStore NewStore) {
	s, advance := newStore(t)
	mustSet(t, s, "short", "v", time.Second)
	mustSet(t, s, "long", "v", time.Hour)
	mustSet(t, s, "forever", "v", 0)
	if ok, err := s.SetNX(ctx(t), "nx", []byte("v"), time.Second); err != nil || !ok {
		t.Fatalf("SetNX = %v, %v; want true", ok, err)
	}
	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Expire(ctx(t), "set", time.Second); err != nil || !ok {
		t.Fatalf("Expire(set) = %v, %v; want true", ok, err)
	}
	wantTTL(t, s, "short", 0, time.Second)

	advance(1200 * time.Millisecond)

	wantNotFound(t, s, "short")
	wantNotFound(t, s, "nx")
	wantNotFound(t, s, "set")
	if m, err := s.SMembers(ctx(t), "set"); err != nil || len(m) != 0 {
		t.Fatalf("SMembers(expired set) = %v, %v; want empty", m, err)
	}
	wantValue(t, s, "long", "v")
	wantValue(t, s, "forever", "v")
	// An expired key is absent for every operation, SetNX included.
	if ok, err := s.SetNX(ctx(t), "nx", []byte("again"), 0); err != nil || !ok {
		t.Fatalf("SetNX(expired) = %v, %v; want true", ok, err)
	}
	wantValue(t, s, "nx", "again")
	if n, err := s.Delete(ctx(t), "short"); err != nil || n != 0 {
		t.Fatalf("Delete(expired) = %d, %v; want 0", n, err)
	}
}

func testSetNX(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	ok, err := s.SetNX(ctx(t), "k", []byte("first"), time.Hour)
	if err != nil || !ok {
		t.Fatalf("SetNX(new) = %v, %v; want true", ok, err)
	}
	wantTTL(t, s, "k", 59*time.Minute, time.Hour)
	ok, err = s.SetNX(ctx(t), "k", []byte("second"), 0)
	if err != nil || ok {
		t.Fatalf("SetNX(existing) = %v, %v; want false", ok, err)
	}
	wantValue(t, s, "k", "first")
	wantTTL(t, s, "k", 59*time.Minute, time.Hour) // untouched

	ok, err = s.SetNX(ctx(t), "plain", []byte("v"), 0)
	if err != nil || !ok {
		t.Fatalf("SetNX(no ttl) = %v, %v; want true", ok, err)
	}
	wantNoExpiry(t, s, "plain")

	// A set occupies its key too.
	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SetNX(ctx(t), "set", []byte("v"), 0); err != nil || ok {
		t.Fatalf("SetNX(set key) = %v, %v; want false", ok, err)
	}

	// Under contention exactly one caller creates the key.
	var wins int
	var mu sync.Mutex
	parallel(t, 50, func(i int) error {
		ok, err := s.SetNX(ctx(t), "race", []byte(strconv.Itoa(i)), 0)
		if ok {
			mu.Lock()
			wins++
			mu.Unlock()
		}
		return err
	})
	if wins != 1 {
		t.Fatalf("%d parallel SetNX calls won, want exactly 1", wins)
	}
}

// parallel runs fn(0..n-1) on n goroutines released at the same moment and
// fails the test on any error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			if err := fn(i); err != nil {
				errs <- fmt.Errorf("goroutine %d: %w", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func testGetDelOnce(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	if v, err := s.GetDel(ctx(t), "missing"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("GetDel(missing) = %q, %v; want ErrNotFound", v, err)
	}

	mustSet(t, s, "code", "123456", time.Minute)
	var (
		mu   sync.Mutex
		wins [][]byte
	)
	parallel(t, 50, func(int) error {
		v, err := s.GetDel(ctx(t), "code")
		if errors.Is(err, kv.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		wins = append(wins, v)
		mu.Unlock()
		return nil
	})
	if len(wins) != 1 || string(wins[0]) != "123456" {
		t.Fatalf("parallel GetDel handed out %q, want the value exactly once", wins)
	}
	wantNotFound(t, s, "code")
}

func testGetSetMany(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	if err := s.SetMany(ctx(t)); err != nil {
		t.Fatalf("SetMany() = %v", err)
	}
	if err := s.SetMany(ctx(t),
		kv.Entry{Key: "a", Value: []byte("1"), TTL: time.Hour},
		kv.Entry{Key: "b", Value: []byte("2")},
		kv.Entry{Key: "c", Value: []byte{}, TTL: time.Minute},
	); err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	wantValue(t, s, "a", "1")
	wantTTL(t, s, "a", 59*time.Minute, time.Hour)
	wantNoExpiry(t, s, "b")
	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetMany(ctx(t), "b", "missing", "a", "set", "c")
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	want := [][]byte{[]byte("2"), nil, []byte("1"), nil, {}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("GetMany (-want +got):\n%s", diff)
	}
	if got[4] == nil {
		t.Fatal("GetMany returned nil for an empty value; want an empty, non-nil slice")
	}
	if got, err := s.GetMany(ctx(t)); err != nil || len(got) != 0 {
		t.Fatalf("GetMany() = %q, %v; want nothing", got, err)
	}
	if err := s.SetMany(ctx(t), kv.Entry{Key: "neg", Value: []byte("v"), TTL: -time.Second}); err == nil {
		t.Fatal("SetMany with a negative TTL succeeded")
	}
}

func testCompareAndSwap(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	if ok, err := s.CompareAndSwap(ctx(t), "missing", []byte(""), []byte("v"), 0); err != nil || ok {
		t.Fatalf("CompareAndSwap(missing) = %v, %v; want false", ok, err)
	}
	wantNotFound(t, s, "missing")
	mustSet(t, s, "k", "old", time.Hour)
	if ok, err := s.CompareAndSwap(ctx(t), "k", []byte("other"), []byte("new"), 0); err != nil || ok {
		t.Fatalf("CompareAndSwap(wrong old) = %v, %v; want false", ok, err)
	}
	wantValue(t, s, "k", "old")
	if ok, err := s.CompareAndSwap(ctx(t), "k", []byte("old"), []byte("new"), 0); err != nil || !ok {
		t.Fatalf("CompareAndSwap(old) = %v, %v; want true", ok, err)
	}
	wantValue(t, s, "k", "new")
	wantNoExpiry(t, s, "k") // the TTL is replaced too
	if ok, err := s.CompareAndSwap(ctx(t), "k", []byte("new"), []byte("newer"), time.Hour); err != nil || !ok {
		t.Fatalf("CompareAndSwap(with ttl) = %v, %v; want true", ok, err)
	}
	wantTTL(t, s, "k", 59*time.Minute, time.Hour)
	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.CompareAndSwap(ctx(t), "set", []byte("m"), []byte("v"), 0); err != nil || ok {
		t.Fatalf("CompareAndSwap(set) = %v, %v; want false", ok, err)
	}
	// Under contention exactly one caller swaps.
	mustSet(t, s, "race", "0", 0)
	var (
		mu   sync.Mutex
		wins int
	)
	parallel(t, 50, func(i int) error {
		ok, err := s.CompareAndSwap(ctx(t), "race", []byte("0"), []byte(strconv.Itoa(i+1)), 0)
		if ok {
			mu.Lock()
			wins++
			mu.Unlock()
		}
		return err
	})
	if wins != 1 {
		t.Fatalf("%d parallel swaps from the same value succeeded, want 1", wins)
	}
}

func testIncrAtomic(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	const n = 100
	got := make([]int64, n)
	parallel(t, n, func(i int) error {
		v, err := s.Incr(ctx(t), "counter", 1, time.Hour)
		got[i] = v
		return err
	})
	slices.Sort(got)
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("values returned by %d parallel Incr calls (-want +got):\n%s", n, diff)
	}
	wantValue(t, s, "counter", strconv.Itoa(n))

	// Other deltas, and a counter without expiry.
	for _, step := range []struct{ delta, want int64 }{{5, 5}, {-7, -2}, {0, -2}, {1 << 40, 1<<40 - 2}} {
		v, err := s.Incr(ctx(t), "other", step.delta, 0)
		if err != nil || v != step.want {
			t.Fatalf("Incr(other, %d) = %d, %v; want %d", step.delta, v, err, step.want)
		}
	}
	wantNoExpiry(t, s, "other")

	// A counter may start from a value Set as a decimal string.
	mustSet(t, s, "preset", "41", 0)
	if v, err := s.Incr(ctx(t), "preset", 1, 0); err != nil || v != 42 {
		t.Fatalf("Incr(preset) = %d, %v; want 42", v, err)
	}
}

func testIncrFixedWindow(t *testing.T, newStore NewStore) {
	s, advance := newStore(t)
	if v, err := s.Incr(ctx(t), "w", 1, time.Second); err != nil || v != 1 {
		t.Fatalf("Incr = %d, %v; want 1", v, err)
	}
	wantTTL(t, s, "w", 0, time.Second)

	advance(600 * time.Millisecond)
	if v, err := s.Incr(ctx(t), "w", 1, time.Second); err != nil || v != 2 {
		t.Fatalf("second Incr = %d, %v; want 2", v, err)
	}
	// Still the first window: about 400ms left, not a fresh second.
	wantTTL(t, s, "w", 0, 450*time.Millisecond)

	advance(600 * time.Millisecond)
	wantNotFound(t, s, "w")
	if v, err := s.Incr(ctx(t), "w", 1, time.Second); err != nil || v != 1 {
		t.Fatalf("Incr in the next window = %d, %v; want 1", v, err)
	}
	wantTTL(t, s, "w", 500*time.Millisecond, time.Second)

	// Incr on a key that exists without expiry does not add one.
	mustSet(t, s, "plain", "5", 0)
	if v, err := s.Incr(ctx(t), "plain", 1, time.Second); err != nil || v != 6 {
		t.Fatalf("Incr(plain) = %d, %v; want 6", v, err)
	}
	wantNoExpiry(t, s, "plain")
}

func wantErr(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one", what)
	}
	if errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("%s: %v, want an error other than ErrNotFound", what, err)
	}
}

func testIncrErrors(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	mustSet(t, s, "text", "abc", 0)
	_, err := s.Incr(ctx(t), "text", 1, 0)
	wantErr(t, "Incr on a non-integer", err)
	wantValue(t, s, "text", "abc")

	mustSet(t, s, "max", "9223372036854775807", 0)
	_, err = s.Incr(ctx(t), "max", 1, 0)
	wantErr(t, "Incr past MaxInt64", err)
	wantValue(t, s, "max", "9223372036854775807")

	mustSet(t, s, "min", "-9223372036854775808", 0)
	_, err = s.Incr(ctx(t), "min", -1, 0)
	wantErr(t, "Incr past MinInt64", err)

	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Incr(ctx(t), "set", 1, 0)
	wantErr(t, "Incr on a set", err)
}

// wantCounted calls IncrUnless(key, delta, ttl, guard) and checks that it
// was not blocked and returned want.
func wantCounted(t *testing.T, s kv.Store, key string, delta int64, ttl time.Duration, guard string, want int64) {
	t.Helper()
	n, d, blocked, err := s.IncrUnless(ctx(t), key, delta, ttl, guard)
	if err != nil || blocked || n != want || d != 0 {
		t.Fatalf("IncrUnless(%q, %d, %v, guard %q) = %d, %v, %v, %v; want %d, 0, false", key, delta, ttl, guard, n, d, blocked, err, want)
	}
}

// wantBlocked calls IncrUnless(key, 1, time.Minute, guard) and checks that
// the guard blocked it, with a guard TTL in (lo, hi] (exactly 0 when hi is
// 0).
func wantBlocked(t *testing.T, s kv.Store, key, guard string, lo, hi time.Duration) {
	t.Helper()
	n, d, blocked, err := s.IncrUnless(ctx(t), key, 1, time.Minute, guard)
	if err != nil || !blocked || n != 0 {
		t.Fatalf("IncrUnless(%q, guard %q) = %d, %v, %v, %v; want blocked", key, guard, n, d, blocked, err)
	}
	if hi == 0 && d != 0 || hi != 0 && (d <= lo || d > hi) {
		t.Fatalf("IncrUnless(%q, guard %q): guard TTL %v, want in (%v, %v]", key, guard, d, lo, hi)
	}
}

func testIncrUnless(t *testing.T, newStore NewStore) {
	s, advance := newStore(t)

	// Without its guard it is Incr: created at 0, any delta, no expiry
	// for a ttl of 0, a decimal string.
	wantCounted(t, s, "n", 1, 0, "guard", 1)
	wantCounted(t, s, "n", 5, 0, "guard", 6)
	wantCounted(t, s, "n", -8, 0, "guard", -2)
	wantValue(t, s, "n", "-2")
	wantNoExpiry(t, s, "n")
	mustSet(t, s, "preset", "41", 0)
	wantCounted(t, s, "preset", 1, time.Minute, "guard", 42)
	wantNoExpiry(t, s, "preset") // an existing key gets no expiry
	wantNotFound(t, s, "guard")  // and the guard is not created

	// A fixed window, set only by the call that creates the key.
	wantCounted(t, s, "w", 1, time.Second, "guard", 1)
	wantTTL(t, s, "w", 0, time.Second)

	// A guard blocks: the key keeps its value and TTL, a missing key
	// stays missing, and the answer is the guard's TTL.
	if _, err := s.Incr(ctx(t), "c", 3, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "lock", "1", time.Hour)
	wantBlocked(t, s, "c", "lock", 59*time.Minute, time.Hour)
	wantValue(t, s, "c", "3")
	wantTTL(t, s, "c", 9*time.Minute, 10*time.Minute)
	wantBlocked(t, s, "absent", "lock", 59*time.Minute, time.Hour)
	wantNotFound(t, s, "absent")
	// The guard's TTL agrees with TTL's.
	_, d, _, err := s.IncrUnless(ctx(t), "c", 1, 0, "lock")
	if ttl, err2 := s.TTL(ctx(t), "lock"); err != nil || err2 != nil || d < ttl || d > ttl+time.Second {
		t.Fatalf("guard TTL %v (%v), TTL(lock) after it %v (%v); want the same, give or take the time between", d, err, ttl, err2)
	}

	// A guard without expiry answers 0; an empty value and a set are
	// guards too.
	mustSet(t, s, "forever", "1", 0)
	wantBlocked(t, s, "c", "forever", 0, 0)
	mustSet(t, s, "empty", "", 0)
	wantBlocked(t, s, "c", "empty", 0, 0)
	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	wantBlocked(t, s, "c", "set", 0, 0)
	if ok, err := s.Expire(ctx(t), "set", time.Hour); err != nil || !ok {
		t.Fatalf("Expire(set) = %v, %v", ok, err)
	}
	wantBlocked(t, s, "c", "set", 59*time.Minute, time.Hour)
	wantValue(t, s, "c", "3")

	// A guard that expires stops blocking.
	mustSet(t, s, "brief", "1", time.Second)
	wantBlocked(t, s, "c", "brief", 0, time.Second)

	advance(600 * time.Millisecond)
	wantCounted(t, s, "w", 1, time.Second, "guard", 2)
	wantTTL(t, s, "w", 0, 450*time.Millisecond) // still the first window
	advance(600 * time.Millisecond)

	wantNotFound(t, s, "brief")
	wantCounted(t, s, "c", 1, 0, "brief", 4)
	wantNotFound(t, s, "w")
	wantCounted(t, s, "w", 1, time.Second, "guard", 1)
	wantTTL(t, s, "w", 500*time.Millisecond, time.Second)
}

func testIncrUnlessErrors(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	mustSet(t, s, "lock", "1", 0)

	// A negative ttl is an error, guard or no guard, and creates nothing.
	for _, guard := range []string{"none", "lock"} {
		_, _, _, err := s.IncrUnless(ctx(t), "n", 1, -time.Second, guard)
		wantErr(t, "IncrUnless with a negative ttl, guard "+guard, err)
	}
	wantNotFound(t, s, "n")

	mustSet(t, s, "text", "abc", 0)
	_, _, blocked, err := s.IncrUnless(ctx(t), "text", 1, 0, "none")
	wantErr(t, "IncrUnless on a non-integer", err)
	if blocked {
		t.Fatal("IncrUnless on a non-integer reported blocked")
	}
	wantValue(t, s, "text", "abc")

	mustSet(t, s, "max", "9223372036854775807", 0)
	_, _, _, err = s.IncrUnless(ctx(t), "max", 1, 0, "none")
	wantErr(t, "IncrUnless past MaxInt64", err)
	wantValue(t, s, "max", "9223372036854775807")

	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = s.IncrUnless(ctx(t), "set", 1, 0, "none")
	wantErr(t, "IncrUnless on a set", err)
	wantNotFound(t, s, "none")

	// A guard blocks before the key is looked at: nothing is changed, so
	// nothing can fail.
	for _, key := range []string{"text", "max", "set"} {
		wantBlocked(t, s, key, "lock", 0, 0)
	}
	wantValue(t, s, "text", "abc")
}

func testDecrExisting(t *testing.T, newStore NewStore) {
	s, advance := newStore(t)
	// A missing key is not created.
	if n, err := s.DecrExisting(ctx(t), "none", 1); !errors.Is(err, kv.ErrNotFound) || n != 0 {
		t.Fatalf("DecrExisting on a missing key = %d, %v; want 0, ErrNotFound", n, err)
	}
	wantNotFound(t, s, "none")

	// It subtracts, keeps the window, and stops at 0.
	if _, err := s.Incr(ctx(t), "c", 3, time.Second); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int64{2, 1, 0, 0} {
		if n, err := s.DecrExisting(ctx(t), "c", 1); err != nil || n != want {
			t.Fatalf("DecrExisting = %d, %v; want %d", n, err, want)
		}
	}
	wantValue(t, s, "c", "0")
	wantTTL(t, s, "c", 500*time.Millisecond, time.Second)
	if _, err := s.Incr(ctx(t), "c", 5, time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DecrExisting(ctx(t), "c", 7); err != nil || n != 0 {
		t.Fatalf("DecrExisting by more than the value = %d, %v; want 0", n, err)
	}
	if n, err := s.DecrExisting(ctx(t), "c", 0); err != nil || n != 0 {
		t.Fatalf("DecrExisting by 0 = %d, %v; want 0", n, err)
	}

	// Once the window ends, a late give-back lends the next one nothing.
	advance(1100 * time.Millisecond)
	if _, err := s.DecrExisting(ctx(t), "c", 1); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("DecrExisting after the window = %v, want ErrNotFound", err)
	}
	wantNotFound(t, s, "c")

	// A key without expiry keeps none; a value below 0 stays as it is.
	mustSet(t, s, "plain", "2", 0)
	if n, err := s.DecrExisting(ctx(t), "plain", 1); err != nil || n != 1 {
		t.Fatalf("DecrExisting(plain) = %d, %v; want 1", n, err)
	}
	wantNoExpiry(t, s, "plain")
	mustSet(t, s, "neg", "-3", 0)
	if n, err := s.DecrExisting(ctx(t), "neg", 1); err != nil || n != -3 {
		t.Fatalf("DecrExisting(-3) = %d, %v; want -3 unchanged", n, err)
	}
}

func testDecrExistingErrors(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	mustSet(t, s, "n", "2", 0)
	_, err := s.DecrExisting(ctx(t), "n", -1)
	wantErr(t, "DecrExisting with a negative delta", err)
	wantValue(t, s, "n", "2")
	_, err = s.DecrExisting(ctx(t), "none", -1)
	wantErr(t, "DecrExisting on a missing key with a negative delta", err)
	wantNotFound(t, s, "none")

	mustSet(t, s, "text", "abc", 0)
	_, err = s.DecrExisting(ctx(t), "text", 1)
	wantErr(t, "DecrExisting on a non-integer", err)
	wantValue(t, s, "text", "abc")

	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	_, err = s.DecrExisting(ctx(t), "set", 1)
	wantErr(t, "DecrExisting on a set", err)
	wantMembers(t, s, "set", "m")
}

// testDecrExistingAtomic gives back 100 units in parallel from a counter
// of 60: it must end at exactly 0, every give-back seeing a distinct value
// on the way down (no two read the same value, none goes below 0).
func testDecrExistingAtomic(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	if _, err := s.Incr(ctx(t), "c", 60, time.Hour); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			n, err := s.DecrExisting(ctx(t), "c", 1)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[n]++
			mu.Unlock()
		})
	}
	wg.Wait()
	for v := int64(1); v < 60; v++ {
		if seen[v] != 1 {
			t.Errorf("value %d was answered %d times, want once", v, seen[v])
		}
	}
	if seen[0] != 41 {
		t.Errorf("0 was answered %d times, want 41", seen[0])
	}
	wantValue(t, s, "c", "0")
}

// testIncrUnlessAtomic runs rounds of 50 goroutines that count on one key
// until its guard blocks them. The caller that counts to setAt sets the
// guard and then reads the key: that value, read once the guard is there,
// must be the final one, and every call that was not blocked must have had
// an n of its own. Were the guard checked and the key incremented in two
// steps, a caller that found no guard just before it was set could count
// after that read, and the final value would exceed it.
func testIncrUnlessAtomic(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	const (
		rounds  = 10
		workers = 50
		setAt   = 100
		limit   = 100 * setAt // calls per goroutine before the test gives up
	)
	for r := range rounds {
		key, guard := fmt.Sprintf("{r%d}:n", r), fmt.Sprintf("{r%d}:guard", r)
		var (
			mu      sync.Mutex
			counted []int64 // n of every call that was not blocked
			seen    int64   // the key's value read after the guard was set
		)
		parallel(t, workers, func(int) error {
			for range limit {
				n, d, blocked, err := s.IncrUnless(ctx(t), key, 1, time.Hour, guard)
				if err != nil {
					return err
				}
				if blocked {
					if d <= 59*time.Minute || d > time.Hour {
						return fmt.Errorf("blocked with guard TTL %v, want about an hour", d)
					}
					return nil
				}
				mu.Lock()
				counted = append(counted, n)
				mu.Unlock()
				if n != setAt {
					continue
				}
				if err := s.Set(ctx(t), guard, []byte("1"), time.Hour); err != nil {
					return err
				}
				v, err := s.Get(ctx(t), key)
				if err != nil {
					return err
				}
				mu.Lock()
				seen, err = strconv.ParseInt(string(v), 10, 64)
				mu.Unlock()
				return err
			}
			return fmt.Errorf("still not blocked after %d calls", limit)
		})

		slices.Sort(counted)
		want := make([]int64, len(counted))
		for i := range want {
			want[i] = int64(i + 1)
		}
		if diff := cmp.Diff(want, counted); diff != "" {
			t.Fatalf("round %d: n of the %d calls that counted, sorted (-distinct 1..%[2]d +got):\n%s", r, len(counted), diff)
		}
		if seen != int64(len(counted)) {
			t.Fatalf("round %d: the key held %d once the guard was set, but %d calls counted: some counted past the guard", r, seen, len(counted))
		}
		wantValue(t, s, key, strconv.Itoa(len(counted)))
	}
}

func testTTLAndExpire(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	if _, err := s.TTL(ctx(t), "missing"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("TTL(missing): %v, want ErrNotFound", err)
	}
	if ok, err := s.Expire(ctx(t), "missing", time.Minute); err != nil || ok {
		t.Fatalf("Expire(missing) = %v, %v; want false", ok, err)
	}
	if ok, err := s.Expire(ctx(t), "missing", 0); err != nil || ok {
		t.Fatalf("Expire(missing, 0) = %v, %v; want false", ok, err)
	}
	wantNotFound(t, s, "missing") // Expire did not create it

	mustSet(t, s, "k", "v", 0)
	wantNoExpiry(t, s, "k")
	if ok, err := s.Expire(ctx(t), "k", 10*time.Second); err != nil || !ok {
		t.Fatalf("Expire(k, 10s) = %v, %v; want true", ok, err)
	}
	wantTTL(t, s, "k", 9*time.Second, 10*time.Second)
	if ok, err := s.Expire(ctx(t), "k", time.Hour); err != nil || !ok {
		t.Fatalf("Expire(k, 1h) = %v, %v; want true", ok, err)
	}
	wantTTL(t, s, "k", 59*time.Minute, time.Hour)
	// 0 means "no expiry": the key stays, without a TTL.
	if ok, err := s.Expire(ctx(t), "k", 0); err != nil || !ok {
		t.Fatalf("Expire(k, 0) = %v, %v; want true", ok, err)
	}
	wantNoExpiry(t, s, "k")
	wantValue(t, s, "k", "v")
	if ok, err := s.Expire(ctx(t), "k", 0); err != nil || !ok {
		t.Fatalf("Expire(k, 0) on a key without expiry = %v, %v; want true", ok, err)
	}

	// A sub-millisecond TTL is honoured, not taken as "no expiry".
	mustSet(t, s, "tiny", "v", 1500*time.Microsecond)
	if d, err := s.TTL(ctx(t), "tiny"); err == nil && (d <= 0 || d > 2*time.Millisecond) {
		t.Fatalf("TTL(tiny) = %v, want in (0, 2ms]", d)
	} else if err != nil && !errors.Is(err, kv.ErrNotFound) { // already gone is fine
		t.Fatalf("TTL(tiny): %v", err)
	}
}

func testNegativeTTL(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	mustSet(t, s, "k", "v", time.Hour)
	wantErr(t, "Set with a negative ttl", s.Set(ctx(t), "k", []byte("x"), -time.Second))
	_, err := s.SetNX(ctx(t), "new", []byte("x"), -1)
	wantErr(t, "SetNX with a negative ttl", err)
	_, err = s.Incr(ctx(t), "n", 1, -time.Second)
	wantErr(t, "Incr with a negative ttl", err)
	_, err = s.Expire(ctx(t), "k", -time.Second)
	wantErr(t, "Expire with a negative ttl", err)
	// Nothing changed.
	wantValue(t, s, "k", "v")
	wantTTL(t, s, "k", 59*time.Minute, time.Hour)
	wantNotFound(t, s, "new")
	wantNotFound(t, s, "n")
}

func testDelete(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	mustSet(t, s, "a", "1", 0)
	mustSet(t, s, "b", "2", time.Hour)
	mustSet(t, s, "keep", "3", 0)
	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Delete(ctx(t)); err != nil || n != 0 {
		t.Fatalf("Delete() = %d, %v; want 0", n, err)
	}
	if n, err := s.Delete(ctx(t), "a", "b", "missing", "set"); err != nil || n != 3 {
		t.Fatalf("Delete(a, b, missing, set) = %d, %v; want 3", n, err)
	}
	wantNotFound(t, s, "a")
	wantNotFound(t, s, "b")
	wantNotFound(t, s, "set")
	wantValue(t, s, "keep", "3")
	if n, err := s.Delete(ctx(t), "keep", "keep"); err != nil || n != 1 {
		t.Fatalf("Delete(keep, keep) = %d, %v; want 1", n, err)
	}
}

func wantMembers(t *testing.T, s kv.Store, key string, want ...string) {
	t.Helper()
	got, err := s.SMembers(ctx(t), key)
	if err != nil {
		t.Fatalf("SMembers(%q): %v", key, err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("SMembers(%q) (-want +got):\n%s", key, diff)
	}
}

func testSets(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	wantMembers(t, s, "set")
	if ok, err := s.SIsMember(ctx(t), "set", "a"); err != nil || ok {
		t.Fatalf("SIsMember(missing set) = %v, %v; want false", ok, err)
	}
	if n, err := s.SRem(ctx(t), "set", "a"); err != nil || n != 0 {
		t.Fatalf("SRem(missing set) = %d, %v; want 0", n, err)
	}

	steps := []struct {
		op      string
		members []string
		want    int64
	}{
		{"add", []string{"a", "b", "b"}, 2},
		{"add", []string{"b", "c"}, 1},
		{"add", nil, 0},
		{"rem", []string{"b", "x"}, 1},
		{"rem", nil, 0},
	}
	for _, st := range steps {
		var n int64
		var err error
		if st.op == "add" {
			n, err = s.SAdd(ctx(t), "set", st.members...)
		} else {
			n, err = s.SRem(ctx(t), "set", st.members...)
		}
		if err != nil || n != st.want {
			t.Fatalf("%s %q = %d, %v; want %d", st.op, st.members, n, err, st.want)
		}
	}
	wantMembers(t, s, "set", "a", "c")
	for member, want := range map[string]bool{"a": true, "b": false, "c": true, "": false} {
		if ok, err := s.SIsMember(ctx(t), "set", member); err != nil || ok != want {
			t.Fatalf("SIsMember(%q) = %v, %v; want %v", member, ok, err, want)
		}
	}

	// Adding keeps the set's TTL.
	if ok, err := s.Expire(ctx(t), "set", time.Hour); err != nil || !ok {
		t.Fatalf("Expire(set) = %v, %v", ok, err)
	}
	if _, err := s.SAdd(ctx(t), "set", "d"); err != nil {
		t.Fatal(err)
	}
	wantTTL(t, s, "set", 59*time.Minute, time.Hour)

	// Removing the last member removes the key.
	if n, err := s.SRem(ctx(t), "set", "a", "c", "d"); err != nil || n != 3 {
		t.Fatalf("SRem(all) = %d, %v; want 3", n, err)
	}
	wantNotFound(t, s, "set")
	wantMembers(t, s, "set")
	if ok, err := s.SetNX(ctx(t), "set", []byte("v"), 0); err != nil || !ok {
		t.Fatalf("SetNX(emptied set) = %v, %v; want true", ok, err)
	}
}

func testWrongType(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	mustSet(t, s, "str", "v", 0)
	if _, err := s.SAdd(ctx(t), "set", "m"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx(t), "set")
	wantErr(t, "Get on a set", err)
	_, err = s.GetDel(ctx(t), "set")
	wantErr(t, "GetDel on a set", err)
	wantMembers(t, s, "set", "m") // not deleted
	_, err = s.SAdd(ctx(t), "str", "m")
	wantErr(t, "SAdd on a string", err)
	_, err = s.SRem(ctx(t), "str", "m")
	wantErr(t, "SRem on a string", err)
	_, err = s.SMembers(ctx(t), "str")
	wantErr(t, "SMembers on a string", err)
	_, err = s.SIsMember(ctx(t), "str", "m")
	wantErr(t, "SIsMember on a string", err)
	wantValue(t, s, "str", "v")

	// Set replaces a value of either kind.
	mustSet(t, s, "set", "now a string", 0)
	wantValue(t, s, "set", "now a string")
}

func subscribe(t *testing.T, s kv.Store, c context.Context, channel string) kv.Subscription {
	t.Helper()
	sub, err := s.Subscribe(c, channel)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", channel, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func publish(t *testing.T, s kv.Store, channel, payload string) {
	t.Helper()
	if err := s.Publish(ctx(t), channel, []byte(payload)); err != nil {
		t.Fatalf("Publish(%q): %v", channel, err)
	}
}

func receive(t *testing.T, sub kv.Subscription) kv.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C():
		if !ok {
			t.Fatal("subscription closed, want a message")
		}
		return m
	case <-time.After(wait):
		t.Fatalf("no message within %v", wait)
	}
	return kv.Message{}
}

func wantMessage(t *testing.T, sub kv.Subscription, channel, payload string) {
	t.Helper()
	got := receive(t, sub)
	want := kv.Message{Channel: channel, Payload: []byte(payload)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("message (-want +got):\n%s", diff)
	}
}

// wantClosed checks that sub's channel is closed without delivering
// anything first.
func wantClosed(t *testing.T, sub kv.Subscription) {
	t.Helper()
	select {
	case m, ok := <-sub.C():
		if ok {
			t.Fatalf("got message %q on %q, want the channel closed", m.Payload, m.Channel)
		}
	case <-time.After(wait):
		t.Fatalf("channel not closed within %v", wait)
	}
}

func testPubSub(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	// Nobody listening: the message is simply lost.
	publish(t, s, "news", "before")

	a := subscribe(t, s, ctx(t), "news")
	b := subscribe(t, s, ctx(t), "news")
	other := subscribe(t, s, ctx(t), "other")

	for _, p := range []string{"one", "two", "three"} {
		publish(t, s, "news", p)
	}
	publish(t, s, "other", "marker")
	for _, sub := range []kv.Subscription{a, b} {
		for _, p := range []string{"one", "two", "three"} {
			wantMessage(t, sub, "news", p)
		}
	}
	// "other" was published to last; had anything on "news" leaked to its
	// subscriber, it would have arrived first.
	wantMessage(t, other, "other", "marker")

	// Payloads are bytes, not text.
	publish(t, s, "news", "\x00\xff")
	wantMessage(t, a, "news", "\x00\xff")
	wantMessage(t, b, "news", "\x00\xff")
}

func testPubSubClose(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	gone := subscribe(t, s, ctx(t), "news")
	stay := subscribe(t, s, ctx(t), "news")
	if err := gone.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := gone.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	publish(t, s, "news", "after")
	wantClosed(t, gone)
	wantMessage(t, stay, "news", "after")
}

func testPubSubContext(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	c, cancel := context.WithCancel(ctx(t))
	sub := subscribe(t, s, c, "news")
	keep := subscribe(t, s, ctx(t), "news")
	cancel()
	wantClosed(t, sub)
	publish(t, s, "news", "after")
	wantMessage(t, keep, "news", "after")

	// A context that has already ended gives no live subscription.
	if sub, err := s.Subscribe(c, "news"); err == nil {
		wantClosed(t, sub)
	}
}

func testIsolation(t *testing.T, newStore NewStore) {
	a, _ := newStore(t)
	b, _ := newStore(t)
	mustSet(t, a, "k", "from a", 0)
	wantNotFound(t, b, "k")
	mustSet(t, b, "k", "from b", 0)
	wantValue(t, a, "k", "from a")
	if v, err := a.Incr(ctx(t), "n", 5, 0); err != nil || v != 5 {
		t.Fatalf("a.Incr = %d, %v", v, err)
	}
	if v, err := b.Incr(ctx(t), "n", 1, 0); err != nil || v != 1 {
		t.Fatalf("b.Incr = %d, %v; want 1 (own counter)", v, err)
	}
	if _, err := a.SAdd(ctx(t), "set", "x"); err != nil {
		t.Fatal(err)
	}
	wantMembers(t, b, "set")

	sub := subscribe(t, b, ctx(t), "chan")
	publish(t, a, "chan", "from a")
	publish(t, b, "chan", "from b")
	wantMessage(t, sub, "chan", "from b")
}

func testClose(t *testing.T, newStore NewStore) {
	s, _ := newStore(t)
	mustSet(t, s, "k", "v", 0)
	sub := subscribe(t, s, ctx(t), "news")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantClosed(t, sub)
	if _, err := s.Get(ctx(t), "k"); err == nil || errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get after Close: %v, want an error other than ErrNotFound", err)
	}
	if _, err := s.Subscribe(ctx(t), "news"); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
