package ratelimit

import (
	"context"
	"sync"
	"time"
)

// sweepEvery is how often, by the limiter's clock, AllowN drops keys that
// are back to a full burst.
const sweepEvery = time.Minute

// memory is an in-process Limiter for a single node. It is the twin of
// the Redis limiter: AllowN is redis_rate's Lua script line for line, in
// integer nanoseconds where the script uses floating-point seconds, so it
// gives the same Allowed and Remaining (the emission interval is rounded
// down to whole nanoseconds, which no real limit notices).
//
// A key whose TAT has passed is equivalent to an absent key, so such keys
// are dropped, as Redis expires them; at most every sweepEvery, AllowN
// sweeps them all out.
type memory struct {
	now func() time.Time

	mu        sync.Mutex
	tat       map[string]time.Time
	nextSweep time.Time
}

// NewMemory returns an in-process Limiter, for a single node, that reads
// the time from now (time.Now when nil).
func NewMemory(now func() time.Time) Limiter {
	if now == nil {
		now = time.Now
	}
	return &memory{now: now, tat: make(map[string]time.Time)}
}

// AllowN implements Limiter.
func (m *memory) AllowN(ctx context.Context, key string, limit Limit, n int) (Result, error) {
	emission, err := limit.interval(n)
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	increment := emission * time.Duration(n)
	burstOffset := emission * time.Duration(limit.Burst)

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)

	tat, ok := m.tat[key]
	if !ok || tat.Before(now) {
		tat = now
	}
	newTAT := tat.Add(increment)
	allowAt := newTAT.Add(-burstOffset)
	diff := now.Sub(allowAt)
	if diff < 0 { // remaining < 0 in the script
		return Result{
			Allowed:    0,
			Remaining:  0,
			RetryAfter: -diff,
			ResetAfter: tat.Sub(now),
		}, nil
	}
	resetAfter := newTAT.Sub(now)
	if resetAfter > 0 {
		m.tat[key] = newTAT
	}
	return Result{
		Allowed:    n,
		Remaining:  int(diff / emission), // diff >= 0: rounds down, as the script's integer reply does
		RetryAfter: -1,
		ResetAfter: resetAfter,
	}, nil
}

// sweep drops every key whose TAT has passed, at most every sweepEvery.
// The caller holds m.mu.
func (m *memory) sweep(now time.Time) {
	if now.Before(m.nextSweep) {
		return
	}
	m.nextSweep = now.Add(sweepEvery)
	for k, tat := range m.tat {
		if !tat.After(now) {
			delete(m.tat, k)
		}
	}
}

// Reset implements Limiter.
func (m *memory) Reset(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tat, key)
	return nil
}
