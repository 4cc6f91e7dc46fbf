// Package ratelimit limits how often something may happen per key (a client
// address, an account, an email address) with the generic cell rate
// algorithm (GCRA), the algorithm of github.com/go-redis/redis_rate.
//
// A Limit allows Rate events per Period on average, and up to Burst of them
// at once. GCRA keeps one timestamp per key, the theoretical arrival time
// (TAT): the moment the key would be back to a full burst. Each event pushes
// it Period/Rate (the emission interval) further into the future; an event
// is refused when that would put the TAT more than Burst emission intervals
// ahead of now. Tokens so come back one every emission interval, not all at
// the end of a window.
//
// Two implementations give the same answers: NewRedis, for state shared by
// every node, runs redis_rate's Lua script atomically in Redis; NewMemory, for
// a single node, runs the same algorithm in process under a mutex.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limit allows Rate events per Period, with bursts of up to Burst events.
type Limit struct {
	Rate   int
	Burst  int
	Period time.Duration
}

// String describes the limit, for logs.
func (l Limit) String() string {
	return fmt.Sprintf("%d per %s (burst %d)", l.Rate, l.Period, l.Burst)
}

// maxSpan bounds Burst (or n) emission intervals, so that the arithmetic on
// times never overflows: about 36 years.
const maxSpan = time.Duration(1 << 60)

// ErrInvalidLimit is returned by AllowN for a Limit or n it cannot apply.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

// interval returns the emission interval of l, Period/Rate, to the
// nanosecond below, after checking that l and n make sense.
func (l Limit) interval(n int) (time.Duration, error) {
	if l.Rate < 1 || l.Burst < 1 || l.Period <= 0 || n < 0 {
		return 0, fmt.Errorf("%w: %v, n=%d: Rate and Burst must be at least 1, Period positive, n not negative", ErrInvalidLimit, l, n)
	}
	e := l.Period / time.Duration(l.Rate)
	if e == 0 {
		return 0, fmt.Errorf("%w: %v: more than one event per nanosecond", ErrInvalidLimit, l)
	}
	if time.Duration(max(l.Burst, n)) > maxSpan/e {
		return 0, fmt.Errorf("%w: %v, n=%d: spans more than %v", ErrInvalidLimit, l, n, maxSpan)
	}
	return e, nil
}

// Result is the outcome of AllowN. Its fields mean what redis_rate's do.
type Result struct {
	// Allowed is n when the events may happen, 0 when they may not (AllowN
	// never allows only some of them).
	Allowed int
	// Remaining is how many more events would be allowed right now after
	// this call: 0 when this call was refused.
	Remaining int
	// RetryAfter is -1 when the events were allowed; otherwise how long
	// until the same n events would be allowed (for a Retry-After header).
	// When n exceeds Burst they never will be, whatever RetryAfter says.
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to a full burst, as if
	// unused.
	ResetAfter time.Duration
}

// Limiter applies limits per key. Keys of different limits must differ
// (prefix them with what they limit, as in "login:ip:192.0.2.1"): the state
// of a key is one timestamp that any limit applied to it moves.
type Limiter interface {
	// AllowN reports whether n events may happen now for key under limit,
	// and records them if so. n = 0 asks without recording anything.
	AllowN(ctx context.Context, key string, limit Limit, n int) (Result, error)
	// Reset forgets key, giving it a full burst again.
	Reset(ctx context.Context, key string) error
}
