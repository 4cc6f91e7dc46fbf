package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// A Check is one rule applied to one key.
type Check struct {
	Key     string   // e.g. "login-ip:192.0.2.1" (the store adds its prefix)
	Limit   Limit    // GCRA: Rate per Period, Burst
	Penalty *Penalty // nil: none
	// Want is how many events to count when the check allows, at least 1
	// (0 means 1): up to Want of the events available are counted, at
	// least one, and CheckResult.Granted says how many. A node leases
	// events in advance with it (NewNodeCache). A check is allowed as soon
	// as one event is available.
	Want int
	// BlockOnly makes a check that counts nothing: it refuses only while
	// its key is blocked by a penalty (Punish), and a refusal then keeps
	// the penalty's level from decaying. Its Limit is ignored and its
	// Penalty, required, gives the Decay. It costs one read of the
	// penalty state in the call's round trip, no write while not blocked.
	BlockOnly bool
}

// Penalty blocks a key that keeps going after a refusal: the first
// request that arrives while the key is refused (before its RetryAfter)
// raises its level and blocks it for Base·2^(level-1), capped at Max; a
// request while blocked is refused with the rest of the block as
// RetryAfter (and does not extend it). The level falls back to 0 after
// Decay without any refusal.
//
// Every refusal of the key counts for Decay, a refusal during a block
// included, so a key that keeps knocking while blocked keeps its level. A
// client that waits for RetryAfter before trying again is never
// penalised. A Check without a Penalty neither reads nor writes the
// penalty state of its key: a key should always be checked under the same
// rule.
//
// Base, Max and Decay are used in whole microseconds (Redis's clock).
type Penalty struct{ Base, Max, Decay time.Duration }

// CheckResult is the outcome of one Check of a CheckAll call.
type CheckResult struct {
	Allowed    bool
	Remaining  int           // after this request (0 when refused)
	RetryAfter time.Duration // when refused: until a retry can succeed (GCRA or block); -1 when allowed
	ResetAfter time.Duration // until the key is back to a full burst
	Penalised  bool          // refused because of a penalty block
	Level      int           // the penalty level after this request
	Granted    int           // events counted: 1..Want when allowed, 0 when refused
	// BlockedFor is how long the key stays blocked by its penalty (0 when
	// not blocked): until then every request is refused whatever GCRA says,
	// and refusing it changes nothing but the penalty's decay.
	BlockedFor time.Duration
}

// MultiLimiter applies several checks to one request.
//
// A request is allowed when every CheckResult is Allowed. When another
// check of the same call refuses, a check that would have allowed still
// reports Allowed, with its key's state as it stands, since nothing was
// counted: its Remaining is what is left now and its ResetAfter unchanged.
//
// A key should appear at most once in a call; if it appears more than
// once, each later check sees the earlier ones counted.
type MultiLimiter interface {
	// CheckAll applies every check in ONE round trip to the store (one Lua
	// EVALSHA for Redis; one lock in memory), atomically: when any check
	// refuses, none is counted (no GCRA state moves), and refused checks
	// with a Penalty update their penalty state. Results are in the order
	// of checks. An empty checks slice costs nothing.
	//
	// A Limit or Penalty it cannot apply fails the whole call with
	// ErrInvalidLimit before the store is touched.
	CheckAll(ctx context.Context, checks []Check) ([]CheckResult, error)
	// Lift forgets key's counter and penalty (an operator lifting a block).
	Lift(ctx context.Context, key string) error
	// Punish raises key's penalty level by one, as a refusal during a
	// refusal would, and blocks it for p.Base·2^(level-1) capped at p.Max
	// (a block already longer stands); the level decays after p.Decay
	// without refusals. It returns the new level and how long the key is
	// blocked. What an automated response uses to block an offender for a
	// growing period (checks of the key with a Penalty, or BlockOnly,
	// refuse while it lasts).
	Punish(ctx context.Context, key string, p Penalty) (Punishment, error)
}

// Punishment is what Punish did.
type Punishment struct {
	Level      int
	BlockedFor time.Duration
}

// rule is a Check's limit and penalty in the units both stores compute
// with: every duration a whole number of microseconds, the resolution of
// Redis's clock, so that the Lua script works on integers that a double
// holds exactly and the in-process twin gives the same answers.
type rule struct {
	blockOnly   bool          // Check.BlockOnly: only the penalty's block applies
	want        int           // events to count when allowed, at least 1
	emission    time.Duration // Period/Rate, truncated to the microsecond
	burstOffset time.Duration // emission·Burst
	penalty     bool
	base, max   time.Duration // the first and the longest block
	decay       time.Duration
}

// compile checks every check and returns their rules, or ErrInvalidLimit
// for the first one that cannot be applied.
func compile(checks []Check) ([]rule, error) {
	rules := make([]rule, len(checks))
	for i, c := range checks {
		r, err := c.rule()
		if err != nil {
			// Not the key: it may be an email address.
			return nil, fmt.Errorf("%w (check %d)", err, i)
		}
		rules[i] = r
	}
	return rules, nil
}

func (c Check) rule() (rule, error) {
	if c.BlockOnly {
		if c.Penalty == nil {
			return rule{}, fmt.Errorf("%w: a BlockOnly check needs a Penalty", ErrInvalidLimit)
		}
		r, err := penaltyRule(*c.Penalty)
		r.blockOnly, r.want = true, 1
		return r, err
	}
	e, err := c.Limit.interval(1)
	if err != nil {
		return rule{}, err
	}
	e = e.Truncate(time.Microsecond)
	if e == 0 {
		return rule{}, fmt.Errorf("%w: %v: more than one event per microsecond", ErrInvalidLimit, c.Limit)
	}
	if c.Want < 0 {
		return rule{}, fmt.Errorf("%w: Want %d is negative", ErrInvalidLimit, c.Want)
	}
	r := rule{want: max(1, c.Want), emission: e, burstOffset: e * time.Duration(c.Limit.Burst)}
	if p := c.Penalty; p != nil {
		pr, err := penaltyRule(*p)
		if err != nil {
			return rule{}, err
		}
		r.penalty, r.base, r.max, r.decay = true, pr.base, pr.max, pr.decay
	}
	return r, nil
}

// penaltyRule is p in the units the stores compute with, or
// ErrInvalidLimit.
func penaltyRule(p Penalty) (rule, error) {
	base, maxBlock, decay := p.Base.Truncate(time.Microsecond), p.Max.Truncate(time.Microsecond), p.Decay.Truncate(time.Microsecond)
	if base <= 0 || maxBlock < base || decay <= 0 || maxBlock > maxSpan || decay > maxSpan {
		return rule{}, fmt.Errorf("%w: penalty %+v: Base and Decay must be at least 1µs, Max at least Base, Max and Decay at most %v", ErrInvalidLimit, p, maxSpan)
	}
	return rule{penalty: true, base: base, max: maxBlock, decay: decay}, nil
}

// block returns how long a key is blocked at level (at least 1):
// base·2^(level-1), capped at max.
func (r rule) block(level int) time.Duration {
	d := r.base
	for i := 1; i < level && d < r.max; i++ {
		d *= 2 // d < max <= maxSpan: no overflow
	}
	return min(d, r.max)
}
