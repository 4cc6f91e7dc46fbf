package ratelimit

import (
	"context"
	"sync"
	"time"
)

// memoryMulti is the in-process MultiLimiter, for a single node: the Lua
// script of the Redis one, step for step, in Go under one mutex.
//
// A key is kept while its TAT or its penalty state lies ahead (the moments
// at which Redis would expire them); at most every sweepEvery, CheckAll
// drops every key past both, so memory is bounded by the keys in use.
type memoryMulti struct {
	now func() time.Time

	mu        sync.Mutex
	keys      map[string]*multiEntry
	nextSweep time.Time
}

// multiEntry is the state of one key.
type multiEntry struct {
	tat        time.Time // back to a full burst at; absent when not after now
	pen        penaltyState
	penExpires time.Time // pen is absent (zero) from then on
}

// penaltyState is the penalty state of one key.
type penaltyState struct {
	level        int
	blockedUntil time.Time // refused until then, whatever GCRA says
	refusedUntil time.Time // the RetryAfter of the last refusal: a refusal before it raises the level
	lastRefusal  time.Time // the level decays to 0 a Decay after it
}

// NewMemoryMulti returns an in-process MultiLimiter, for a single node,
// that reads the time from now (time.Now when nil).
func NewMemoryMulti(now func() time.Time) MultiLimiter {
	if now == nil {
		now = time.Now
	}
	return &memoryMulti{now: now, keys: make(map[string]*multiEntry)}
}

// CheckAll implements MultiLimiter.
func (m *memoryMulti) CheckAll(ctx context.Context, checks []Check) ([]CheckResult, error) {
	if len(checks) == 0 {
		return []CheckResult{}, nil
	}
	rules, err := compile(checks)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)

	var (
		results = make([]CheckResult, len(checks))
		tats    = make(map[string]time.Time, len(checks))     // TATs with the checks so far counted
		pens    = make(map[string]*penaltyState, len(checks)) // penalty states read or changed by this call
		dirty   = make(map[string]time.Duration)              // refused keys with a penalty: their Decay
		refused bool
	)
	for i, c := range checks {
		r := rules[i]
		if r.blockOnly {
			p := m.penalty(pens, c.Key, r.decay, now)
			res := CheckResult{Allowed: true, RetryAfter: -1, Granted: 1, Level: p.level}
			if now.Before(p.blockedUntil) {
				refused = true
				p.lastRefusal = now
				dirty[c.Key] = r.decay
				res = CheckResult{RetryAfter: p.blockedUntil.Sub(now), Penalised: true, Level: p.level, BlockedFor: p.blockedUntil.Sub(now)}
			}
			results[i] = res
			continue
		}
		tat, ok := tats[c.Key]
		if !ok {
			tat = m.storedTAT(c.Key, now)
		}
		tat = later(tat, now)
		newTAT := tat.Add(r.emission)
		diff := now.Sub(newTAT.Add(-r.burstOffset))
		allowed := diff >= 0
		var retry time.Duration
		if !allowed {
			retry = -diff
		}

		res := CheckResult{}
		if r.penalty {
			p := m.penalty(pens, c.Key, r.decay, now)
			if now.Before(p.blockedUntil) {
				allowed = false
				res.Penalised = true
				retry = max(retry, p.blockedUntil.Sub(now))
			} else if !allowed && now.Before(p.refusedUntil) {
				p.level++
				block := r.block(p.level)
				p.blockedUntil = now.Add(block)
				res.Penalised = true
				retry = max(retry, block)
			}
			if !allowed {
				p.lastRefusal = now
				p.refusedUntil = later(p.refusedUntil, now.Add(retry))
				dirty[c.Key] = r.decay
			}
			if now.Before(p.blockedUntil) {
				res.BlockedFor = p.blockedUntil.Sub(now)
			}
			res.Level = p.level
		}

		if allowed {
			// Up to want events, as many as are available (diff >= 0: one is).
			res.Granted = min(r.want, int(diff/r.emission)+1)
			newTAT = tat.Add(time.Duration(res.Granted) * r.emission)
			diff = now.Sub(newTAT.Add(-r.burstOffset))
			tats[c.Key] = newTAT
			res.Allowed = true
			res.Remaining = int(diff / r.emission)
			res.RetryAfter = -1
			res.ResetAfter = newTAT.Sub(now)
		} else {
			refused = true
			res.RetryAfter = retry
			res.ResetAfter = tat.Sub(now)
		}
		results[i] = res
	}

	if !refused {
		for key, tat := range tats {
			e := m.entry(key)
			e.tat = tat
		}
		return results, nil
	}
	// Nothing is counted: the checks that allowed report their key as it
	// stands, and the refused ones with a penalty record it.
	for i, c := range checks {
		if res := &results[i]; res.Allowed {
			r := rules[i]
			if r.blockOnly {
				res.Granted = 0
				continue
			}
			tat := later(m.storedTAT(c.Key, now), now)
			res.Remaining = int((now.Sub(tat) + r.burstOffset) / r.emission)
			res.ResetAfter = tat.Sub(now)
			res.Granted = 0
		}
	}
	for key, decay := range dirty {
		p := pens[key]
		e := m.entry(key)
		e.pen = *p
		e.penExpires = later(p.lastRefusal.Add(decay), later(p.blockedUntil, p.refusedUntil))
	}
	return results, nil
}

// Punish implements MultiLimiter.
func (m *memoryMulti) Punish(ctx context.Context, key string, pen Penalty) (Punishment, error) {
	r, err := penaltyRule(pen)
	if err != nil {
		return Punishment{}, err
	}
	if err := ctx.Err(); err != nil {
		return Punishment{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	p := m.penalty(map[string]*penaltyState{}, key, r.decay, now)
	p.level++
	p.blockedUntil = later(p.blockedUntil, now.Add(r.block(p.level)))
	p.lastRefusal = now
	p.refusedUntil = later(p.refusedUntil, p.blockedUntil)
	e := m.entry(key)
	e.pen = *p
	e.penExpires = later(p.lastRefusal.Add(r.decay), p.blockedUntil)
	return Punishment{Level: p.level, BlockedFor: p.blockedUntil.Sub(now)}, nil
}

// penalty returns key's penalty state as this call sees it (pens holds
// what the call read or changed), its level decayed to 0 a decay after
// its last refusal. The caller holds m.mu.
func (m *memoryMulti) penalty(pens map[string]*penaltyState, key string, decay time.Duration, now time.Time) *penaltyState {
	p := pens[key]
	if p == nil {
		p = m.storedPenalty(key, now)
		pens[key] = p
	}
	if p.level > 0 && now.Sub(p.lastRefusal) >= decay {
		p.level = 0
	}
	return p
}

// storedTAT returns key's TAT, the zero time when it has none. The caller
// holds m.mu.
func (m *memoryMulti) storedTAT(key string, now time.Time) time.Time {
	if e := m.keys[key]; e != nil && e.tat.After(now) {
		return e.tat
	}
	return time.Time{}
}

// storedPenalty returns a copy of key's penalty state, the zero state when
// it has none. The caller holds m.mu.
func (m *memoryMulti) storedPenalty(key string, now time.Time) *penaltyState {
	if e := m.keys[key]; e != nil && e.penExpires.After(now) {
		p := e.pen
		return &p
	}
	return &penaltyState{}
}

// entry returns key's entry, creating it if needed. The caller holds m.mu.
func (m *memoryMulti) entry(key string) *multiEntry {
	e := m.keys[key]
	if e == nil {
		e = &multiEntry{}
		m.keys[key] = e
	}
	return e
}

// sweep drops every key back to a full burst whose penalty state has
// expired, at most every sweepEvery. The caller holds m.mu.
func (m *memoryMulti) sweep(now time.Time) {
	if now.Before(m.nextSweep) {
		return
	}
	m.nextSweep = now.Add(sweepEvery)
	for k, e := range m.keys {
		if !e.tat.After(now) && !e.penExpires.After(now) {
			delete(m.keys, k)
		}
	}
}

// Lift implements MultiLimiter.
func (m *memoryMulti) Lift(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, key)
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
