package ratelimit

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newMultiFunc returns a fresh MultiLimiter, isolated from every other one
// it returns, and a function that moves its clock forward (a fake clock's
// Advance, or time.Sleep for Redis).
type newMultiFunc func(t *testing.T) (MultiLimiter, func(time.Duration))

// penaltySlack is how much earlier than exact a duration of the penalty
// tests may come back from Redis, whose clock runs while the test works.
// It is below their emission interval of 500ms, so that a refusal never
// passes for a block, nor a block for the next level's.
const penaltySlack = 400 * time.Millisecond

var (
	// halfSecond refuses a second request within 500ms: short enough for
	// the penalty tests to sleep through on Redis, long enough for their
	// second request to come before the first one's RetryAfter.
	halfSecond = Limit{Rate: 2, Burst: 1, Period: time.Second}
	// perDay hardly refills while a test runs, even on Redis's clock.
	perDay = Limit{Rate: 1, Burst: 1000, Period: 24 * time.Hour}
)

// runMultiSuite checks a MultiLimiter against GCRA, all-or-nothing
// counting and progressive penalties. On Redis, time keeps running between
// calls, so durations are checked within a range whose upper end is the
// exact value.
//
// skip names cases a limiter does not run (NewNodeCache: those that check
// exact figures it only approximates).
func runMultiSuite(t *testing.T, newMulti newMultiFunc, skip ...string) {
	tests := []struct {
		name string
		fn   func(*testing.T, MultiLimiter, func(time.Duration))
	}{
		{"BurstThenRefusal", testMultiBurst},
		{"AllOrNothing", testMultiAllOrNothing},
		{"PenaltyEscalates", testPenaltyEscalates},
		{"BlockNotExtended", testPenaltyBlockNotExtended},
		{"PenaltyDecays", testPenaltyDecays},
		{"Lift", testMultiLift},
		{"KeysIndependent", testMultiKeysIndependent},
		{"Concurrent", testMultiConcurrent},
		{"Empty", testMultiEmpty},
		{"Invalid", testMultiInvalid},
		{"Want", testMultiWant},
		{"BlockedFor", testMultiBlockedFor},
		{"PunishBlockOnly", testPunishBlockOnly},
		{"PunishRuleCheck", testPunishRuleCheck},
	}
	for _, tt := range tests {
		if slices.Contains(skip, tt.name) {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, advance := newMulti(t)
			tt.fn(t, l, advance)
		})
	}
}

func checkAll(t *testing.T, l MultiLimiter, checks ...Check) []CheckResult {
	t.Helper()
	rs, err := l.CheckAll(t.Context(), checks)
	if err != nil {
		t.Fatalf("CheckAll(%+v): %v", checks, err)
	}
	if len(rs) != len(checks) {
		t.Fatalf("CheckAll(%d checks) returned %d results", len(checks), len(rs))
	}
	return rs
}

func check(t *testing.T, l MultiLimiter, c Check) CheckResult {
	t.Helper()
	return checkAll(t, l, c)[0]
}

// wantPass checks an allowed result: Remaining exactly, ResetAfter within
// slack below resetAfter.
func wantPass(t *testing.T, r CheckResult, remaining, level int, resetAfter time.Duration) {
	t.Helper()
	if !r.Allowed || r.Remaining != remaining || r.RetryAfter != -1 || r.Penalised || r.Level != level {
		t.Fatalf("got %+v, want Allowed, Remaining %d, RetryAfter -1, Level %d", r, remaining, level)
	}
	within(t, "ResetAfter", r.ResetAfter, resetAfter-slack, resetAfter)
}

// wantRefused checks a refused result: RetryAfter within tolerance below
// retryAfter.
func wantRefused(t *testing.T, r CheckResult, penalised bool, level int, retryAfter, tolerance time.Duration) {
	t.Helper()
	if r.Allowed || r.Remaining != 0 || r.Penalised != penalised || r.Level != level {
		t.Fatalf("got %+v, want refused, Remaining 0, Penalised %v, Level %d", r, penalised, level)
	}
	within(t, "RetryAfter", r.RetryAfter, retryAfter-tolerance, retryAfter)
}

func testMultiBurst(t *testing.T, l MultiLimiter, _ func(time.Duration)) {
	c := Check{Key: "k", Limit: Limit{Rate: 10, Burst: 3, Period: time.Minute}} // a token every 6s
	for i := range 3 {
		wantPass(t, check(t, l, c), 2-i, 0, time.Duration(i+1)*6*time.Second)
	}
	for range 3 {
		r := check(t, l, c)
		wantRefused(t, r, false, 0, 6*time.Second, slack)
		within(t, "ResetAfter", r.ResetAfter, 18*time.Second-slack, 18*time.Second)
	}
}

func testMultiAllOrNothing(t *testing.T, l MultiLimiter, _ func(time.Duration)) {
	pen := &Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}
	a := Check{Key: "a", Limit: perMinute, Penalty: pen}                                      // burst 5
	b := Check{Key: "b", Limit: Limit{Rate: 10, Burst: 1, Period: time.Minute}, Penalty: pen} // burst 1

	rs := checkAll(t, l, a, b)
	wantPass(t, rs[0], 4, 0, 6*time.Second)
	wantPass(t, rs[1], 0, 0, 6*time.Second)

	// b refuses, so a is not counted: it reports what it has left.
	rs = checkAll(t, l, a, b)
	wantPass(t, rs[0], 5-1, 0, 6*time.Second)
	wantRefused(t, rs[1], false, 0, 6*time.Second, slack)

	// b keeps going and is penalised; a's penalty state does not move.
	rs = checkAll(t, l, a, b)
	wantPass(t, rs[0], 4, 0, 6*time.Second)
	wantRefused(t, rs[1], true, 1, time.Minute, slack)
	rs = checkAll(t, l, b, a) // order of results follows the checks
	wantRefused(t, rs[0], true, 1, time.Minute, slack)
	wantPass(t, rs[1], 4, 0, 6*time.Second)

	// Of the four calls, only the first counted a.
	wantPass(t, check(t, l, a), 3, 0, 12*time.Second)

	// Several refusing checks: each reports its own refusal.
	c := Check{Key: "c", Limit: Limit{Rate: 1, Burst: 1, Period: time.Hour}}
	check(t, l, c)
	rs = checkAll(t, l, a, b, c)
	wantPass(t, rs[0], 3, 0, 12*time.Second)
	wantRefused(t, rs[1], true, 1, time.Minute, slack)
	wantRefused(t, rs[2], false, 0, time.Hour, slack)
	wantPass(t, check(t, l, a), 2, 0, 18*time.Second)
}

// escalate exhausts c (a halfSecond limit) and keeps going: the second
// request is refused as usual, the third raises the penalty to level and
// is blocked for block, which it then waits out.
func escalate(t *testing.T, l MultiLimiter, advance func(time.Duration), c Check, level int, block time.Duration) {
	t.Helper()
	wantPass(t, check(t, l, c), 0, level-1, 500*time.Millisecond)
	wantRefused(t, check(t, l, c), false, level-1, 500*time.Millisecond, penaltySlack)
	r := check(t, l, c)
	wantRefused(t, r, true, level, block, penaltySlack)
	within(t, "ResetAfter", r.ResetAfter, 500*time.Millisecond-penaltySlack, 500*time.Millisecond)
	advance(r.RetryAfter)
}

func testPenaltyEscalates(t *testing.T, l MultiLimiter, advance func(time.Duration)) {
	c := Check{Key: "k", Limit: halfSecond, Penalty: &Penalty{Base: time.Second, Max: 2500 * time.Millisecond, Decay: time.Minute}}
	escalate(t, l, advance, c, 1, time.Second)
	escalate(t, l, advance, c, 2, 2*time.Second)
	escalate(t, l, advance, c, 3, 2500*time.Millisecond) // 4s, capped
	// The block is over: a request that waited for it passes.
	wantPass(t, check(t, l, c), 0, 3, 500*time.Millisecond)
}

func testPenaltyBlockNotExtended(t *testing.T, l MultiLimiter, advance func(time.Duration)) {
	c := Check{Key: "k", Limit: halfSecond, Penalty: &Penalty{Base: time.Second, Max: time.Minute, Decay: time.Minute}}
	check(t, l, c)
	check(t, l, c)
	wantRefused(t, check(t, l, c), true, 1, time.Second, penaltySlack)

	advance(400 * time.Millisecond)
	r := check(t, l, c)
	wantRefused(t, r, true, 1, 600*time.Millisecond, penaltySlack)
	r = check(t, l, c)
	wantRefused(t, r, true, 1, 600*time.Millisecond, penaltySlack)

	advance(r.RetryAfter)
	wantPass(t, check(t, l, c), 0, 1, 500*time.Millisecond)
}

func testPenaltyDecays(t *testing.T, l MultiLimiter, advance func(time.Duration)) {
	c := Check{Key: "k", Limit: halfSecond, Penalty: &Penalty{Base: time.Second, Max: time.Minute, Decay: 1500 * time.Millisecond}}
	check(t, l, c)
	check(t, l, c)
	r := check(t, l, c)
	wantRefused(t, r, true, 1, time.Second, penaltySlack)

	// Within Decay of the last refusal the level stays.
	advance(r.RetryAfter)
	wantPass(t, check(t, l, c), 0, 1, 500*time.Millisecond)
	// Decay without a refusal: back to 0, and the next block is Base again.
	advance(1500 * time.Millisecond)
	wantPass(t, check(t, l, c), 0, 0, 500*time.Millisecond)
	wantRefused(t, check(t, l, c), false, 0, 500*time.Millisecond, penaltySlack)
	wantRefused(t, check(t, l, c), true, 1, time.Second, penaltySlack)
}

func testMultiLift(t *testing.T, l MultiLimiter, _ func(time.Duration)) {
	pen := &Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}
	c := Check{Key: "k", Limit: Limit{Rate: 10, Burst: 2, Period: time.Minute}, Penalty: pen}
	other := Check{Key: "other", Limit: c.Limit, Penalty: pen}
	for _, c := range []Check{c, other} {
		check(t, l, c)
		check(t, l, c)
		wantRefused(t, check(t, l, c), false, 0, 6*time.Second, slack)
		wantRefused(t, check(t, l, c), true, 1, time.Minute, slack)
	}

	if err := l.Lift(t.Context(), "k"); err != nil {
		t.Fatalf("Lift: %v", err)
	}
	// A full burst again, level 0, and no trace of the last refusal: the
	// next refusal is an ordinary one.
	wantPass(t, check(t, l, c), 1, 0, 6*time.Second)
	wantPass(t, check(t, l, c), 0, 0, 12*time.Second)
	wantRefused(t, check(t, l, c), false, 0, 6*time.Second, slack)
	// Another key is still blocked.
	wantRefused(t, check(t, l, other), true, 1, time.Minute, slack)

	if err := l.Lift(t.Context(), "never used"); err != nil {
		t.Fatalf("Lift(unknown key): %v", err)
	}
}

func testMultiKeysIndependent(t *testing.T, l MultiLimiter, _ func(time.Duration)) {
	pen := &Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}
	limit := Limit{Rate: 10, Burst: 1, Period: time.Minute}
	a := Check{Key: "a", Limit: limit, Penalty: pen}
	check(t, l, a)
	check(t, l, a)
	wantRefused(t, check(t, l, a), true, 1, time.Minute, slack)

	// The same rule on another key, and another rule's key, start afresh.
	wantPass(t, check(t, l, Check{Key: "b", Limit: limit, Penalty: pen}), 0, 0, 6*time.Second)
	wantPass(t, check(t, l, Check{Key: "c", Limit: perMinute}), 4, 0, 6*time.Second)
}

func testMultiConcurrent(t *testing.T, l MultiLimiter, _ func(time.Duration)) {
	k := Check{Key: "k", Limit: Limit{Rate: 10, Burst: 10, Period: time.Minute}}
	wide := Check{Key: "wide", Limit: perDay}
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
			rs, err := l.CheckAll(t.Context(), []Check{wide, k})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case rs[0].Allowed && rs[1].Allowed:
				remaining = append(remaining, rs[1].Remaining)
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
	// The 90 refused calls did not count wide.
	wantPass(t, check(t, l, wide), 1000-10-1, 0, 11*perDay.Period)
}

func testMultiEmpty(t *testing.T, l MultiLimiter, _ func(time.Duration)) {
	for _, checks := range [][]Check{nil, {}} {
		rs, err := l.CheckAll(t.Context(), checks)
		if err != nil || len(rs) != 0 {
			t.Fatalf("CheckAll(%#v) = %v, %v; want no results and no error", checks, rs, err)
		}
	}
}

func testMultiInvalid(t *testing.T, l MultiLimiter, _ func(time.Duration)) {
	valid := Check{Key: "valid", Limit: perMinute, Penalty: &Penalty{Base: time.Second, Max: time.Minute, Decay: time.Hour}}
	for _, bad := range []Check{
		{Limit: Limit{}},
		{Limit: Limit{Rate: 0, Burst: 1, Period: time.Second}},
		{Limit: Limit{Rate: 1, Burst: 0, Period: time.Second}},
		{Limit: Limit{Rate: 1, Burst: 1, Period: 0}},
		{Limit: Limit{Rate: 1, Burst: 1, Period: -time.Second}},
		{Limit: Limit{Rate: 2e9, Burst: 1, Period: time.Second}},
		{Limit: Limit{Rate: 1, Burst: 1 << 40, Period: time.Hour}},
		{Limit: Limit{Rate: 2e6, Burst: 1, Period: time.Second}}, // 500ns: below Redis's clock
		{Limit: perMinute, Penalty: &Penalty{}},
		{Limit: perMinute, Penalty: &Penalty{Base: 0, Max: time.Second, Decay: time.Second}},
		{Limit: perMinute, Penalty: &Penalty{Base: -time.Second, Max: time.Second, Decay: time.Second}},
		{Limit: perMinute, Penalty: &Penalty{Base: 500, Max: time.Second, Decay: time.Second}}, // 500ns
		{Limit: perMinute, Penalty: &Penalty{Base: time.Second, Max: time.Millisecond, Decay: time.Second}},
		{Limit: perMinute, Penalty: &Penalty{Base: time.Second, Max: time.Second, Decay: 0}},
		{Limit: perMinute, Penalty: &Penalty{Base: time.Second, Max: 1 << 62, Decay: time.Second}},
		{Limit: perMinute, Penalty: &Penalty{Base: time.Second, Max: time.Second, Decay: 1 << 62}},
		{Limit: perMinute, Want: -1},
	} {
		bad.Key = "bad"
		if rs, err := l.CheckAll(t.Context(), []Check{valid, bad}); !errors.Is(err, ErrInvalidLimit) {
			t.Errorf("CheckAll(valid, %+v) = %+v, %v; want ErrInvalidLimit", bad, rs, err)
		}
	}
	// None of the failed calls counted the valid check.
	wantPass(t, check(t, l, valid), 4, 0, 6*time.Second)
}

// testMultiWant counts up to Want events when the check allows: all of
// them while they are available, then what is left, then a refusal.
func testMultiWant(t *testing.T, l MultiLimiter, _ func(time.Duration)) {
	c := Check{Key: "k", Limit: Limit{Rate: 10, Burst: 10, Period: time.Minute}, Want: 4} // a token every 6s
	for i, granted := range []int{4, 4, 2} {
		r := check(t, l, c)
		left := 10 - 4*i - granted
		if !r.Allowed || r.Granted != granted || r.Remaining != left {
			t.Fatalf("call %d: %+v, want allowed, %d granted, %d left", i, r, granted, left)
		}
		within(t, "ResetAfter", r.ResetAfter, time.Duration(10-left)*6*time.Second-slack, time.Duration(10-left)*6*time.Second)
	}
	r := check(t, l, c)
	wantRefused(t, r, false, 0, 6*time.Second, slack)
	if r.Granted != 0 {
		t.Fatalf("refused: Granted %d, want 0", r.Granted)
	}
	// Without Want, one event.
	if r := check(t, l, Check{Key: "one", Limit: c.Limit}); r.Granted != 1 || r.Remaining != 9 {
		t.Fatalf("Want 0: %+v, want 1 granted, 9 left", r)
	}
	// A call another check refuses grants nothing.
	rs := checkAll(t, l, Check{Key: "two", Limit: c.Limit, Want: 5}, c)
	if rs[0].Granted != 0 || !rs[0].Allowed || rs[0].Remaining != 10 {
		t.Fatalf("beside a refusal: %+v, want allowed with nothing granted and a full burst", rs[0])
	}
}

// testMultiBlockedFor reports how long a penalty blocks a key: 0 for a
// plain refusal, the rest of the block while it lasts.
func testMultiBlockedFor(t *testing.T, l MultiLimiter, advance func(time.Duration)) {
	c := Check{Key: "k", Limit: Limit{Rate: 10, Burst: 1, Period: time.Minute}, Penalty: &Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}}
	check(t, l, c)
	if r := check(t, l, c); r.BlockedFor != 0 {
		t.Fatalf("plain refusal: BlockedFor %v, want 0", r.BlockedFor)
	}
	r := check(t, l, c)
	within(t, "BlockedFor", r.BlockedFor, time.Minute-slack, time.Minute)
	advance(100 * time.Millisecond)
	r = check(t, l, c)
	within(t, "BlockedFor", r.BlockedFor, time.Minute-100*time.Millisecond-slack, time.Minute-100*time.Millisecond)
	if r.RetryAfter < r.BlockedFor {
		t.Fatalf("RetryAfter %v shorter than BlockedFor %v", r.RetryAfter, r.BlockedFor)
	}
}

// testPunishBlockOnly: a block-only check passes (counting nothing) until
// its key is punished, refuses while the block lasts, and each punishment
// after a block doubles the next one, up to Max; the level decays.
func testPunishBlockOnly(t *testing.T, l MultiLimiter, advance func(time.Duration)) {
	pen := Penalty{Base: time.Second, Max: 2500 * time.Millisecond, Decay: time.Minute}
	c := Check{Key: "ip", BlockOnly: true, Penalty: &pen}
	other := Check{Key: "other", Limit: perDay}
	for range 3 {
		if r := check(t, l, c); !r.Allowed || r.Penalised || r.Level != 0 || r.Granted != 1 {
			t.Fatalf("before any punishment: %+v, want allowed at level 0", r)
		}
	}
	for level, block := range []time.Duration{time.Second, 2 * time.Second, 2500 * time.Millisecond} {
		p, err := l.Punish(t.Context(), "ip", pen)
		if err != nil {
			t.Fatal(err)
		}
		if p.Level != level+1 {
			t.Fatalf("punishment %d: level %d, want %d", level+1, p.Level, level+1)
		}
		within(t, "BlockedFor", p.BlockedFor, block-penaltySlack, block)
		rs := checkAll(t, l, other, c)
		r := rs[1]
		wantRefused(t, r, true, level+1, block, penaltySlack)
		within(t, "BlockedFor", r.BlockedFor, block-penaltySlack, block)
		// All or nothing: the other check counted nothing.
		if rs[0].Granted != 0 {
			t.Fatalf("a check of a refused call was counted: %+v", rs[0])
		}
		advance(r.RetryAfter)
		if r := check(t, l, c); !r.Allowed || r.Level != level+1 {
			t.Fatalf("after the block: %+v, want allowed at level %d", r, level+1)
		}
	}
	// The other key was never counted by the refused calls.
	if r := check(t, l, other); r.Remaining != 999 {
		t.Fatalf("other key: %+v, want 999 left", r)
	}
	if _, err := l.Punish(t.Context(), "ip", Penalty{}); !errors.Is(err, ErrInvalidLimit) {
		t.Fatalf("Punish with a zero penalty: %v, want ErrInvalidLimit", err)
	}
	if _, err := l.CheckAll(t.Context(), []Check{{Key: "ip", BlockOnly: true}}); !errors.Is(err, ErrInvalidLimit) {
		t.Fatalf("a block-only check without a penalty: %v, want ErrInvalidLimit", err)
	}
	// Decay forgets the level: the next punishment is Base again.
	decaying := Penalty{Base: time.Second, Max: time.Minute, Decay: 1500 * time.Millisecond}
	if _, err := l.Punish(t.Context(), "fresh", decaying); err != nil {
		t.Fatal(err)
	}
	advance(1600 * time.Millisecond)
	p, err := l.Punish(t.Context(), "fresh", decaying)
	if err != nil {
		t.Fatal(err)
	}
	if p.Level != 1 {
		t.Fatalf("after the decay: level %d, want 1", p.Level)
	}
	// Lift ends a block at once.
	if err := l.Lift(t.Context(), "fresh"); err != nil {
		t.Fatal(err)
	}
	if r := check(t, l, Check{Key: "fresh", BlockOnly: true, Penalty: &decaying}); !r.Allowed {
		t.Fatalf("after Lift: %+v, want allowed", r)
	}
}

// testPunishRuleCheck: a punished key refuses a check of a rule with a
// penalty too, whatever its GCRA says.
func testPunishRuleCheck(t *testing.T, l MultiLimiter, _ func(time.Duration)) {
	pen := Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}
	c := Check{Key: "k", Limit: perDay, Penalty: &pen}
	wantPass(t, check(t, l, c), 999, 0, 24*time.Hour)
	if _, err := l.Punish(t.Context(), "k", pen); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, check(t, l, c), true, 1, time.Minute, penaltySlack)
}
