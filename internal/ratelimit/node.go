package ratelimit

import (
	"context"
	"sync"
	"time"
)

// NodeCacheTTL is how long a node keeps a lease or a refusal it holds
// (NewNodeCache): the longest a lifted block still refuses on another
// node, and the longest leased events stay unused before they are given
// up.
const NodeCacheTTL = time.Second

// leaseShare is the share of a key's burst one lease may take (1/100),
// and maxLease the most events one lease holds: a key with a burst below
// 2·leaseShare is never leased.
const (
	leaseShare = 100
	maxLease   = 100
)

// nodeCache is a MultiLimiter in front of a shared one (Redis) that
// answers on the node what it can answer without counting wrong:
//
//   - Leases. A check whose limit has a large burst (at least 200) asks
//     the store for more than one event, up to 1% of the burst (at most
//     100): the node hands the events it was granted to the next requests
//     for the key, without a round trip, for up to NodeCacheTTL. A key's
//     lease starts at one event and doubles each time the node used the
//     whole of the previous one; one that expired half used halves it.
//     Every event a node hands out was counted in the store beforehand, so
//     the nodes together never allow more than the limit; a lease left
//     unused makes the key refuse a little early (across N nodes, at most
//     N leases: N% of its burst).
//   - Refusals. A refusal that repeating cannot change is answered on the
//     node for the rest of it, at most NodeCacheTTL: a check without a
//     penalty (a refusal counts nothing, so the answer holds until its
//     RetryAfter) and a key blocked by its penalty (a request during the
//     block changes nothing but the penalty's decay). A check with a
//     penalty that is refused but not blocked goes to the store every
//     time, so that a key that keeps going is penalised as it would be
//     without the cache.
//
// A request whose checks cannot all be answered on the node goes to the
// store in one call, as without the cache. The cache counts one event per
// check (it sets Want itself). What it answers on the node is the store's
// last answer moved on by the node's clock: Remaining counts the events
// the node still holds, and the other checks of a request refused on the
// node, not asked, are reported allowed with a full burst. Lift forgets the key on this
// node at once; other nodes answer from what they hold for up to
// NodeCacheTTL.
type nodeCache struct {
	inner MultiLimiter
	now   func() time.Time
	ttl   time.Duration

	mu        sync.Mutex
	keys      map[string]*nodeKey
	nextSweep time.Time
}

// nodeKey is what a node holds of one key.
type nodeKey struct {
	// The lease: tokens events left to hand out until leaseUntil; the
	// store had remaining events left and reset at resetAt after granting
	// them.
	tokens     int
	leaseUntil time.Time
	remaining  int
	resetAt    time.Time
	level      int
	size       int  // the next lease's size
	refilling  bool // a call to the store for a new lease is under way
	// The refusal: answered on the node until refusedUntil, with a retry
	// at retryAt, the key back to a full burst at fullAt and blocked by its
	// penalty until blockedUntil.
	refusedUntil time.Time
	retryAt      time.Time
	fullAt       time.Time
	blockedUntil time.Time
	penalised    bool
}

// NewNodeCache returns inner with leases and refusals answered on the
// node (see nodeCache), reading the time from now (time.Now when nil) and
// holding what it answers for ttl (NodeCacheTTL when <= 0).
func NewNodeCache(inner MultiLimiter, now func() time.Time, ttl time.Duration) MultiLimiter {
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = NodeCacheTTL
	}
	return &nodeCache{inner: inner, now: now, ttl: ttl, keys: make(map[string]*nodeKey)}
}

// leaseMax is the largest lease a limit allows: 0 when its burst is too
// small to lease.
func leaseMax(l Limit) int {
	n := min(l.Burst/leaseShare, maxLease)
	if n < 2 {
		return 0
	}
	return n
}

// CheckAll implements MultiLimiter.
func (c *nodeCache) CheckAll(ctx context.Context, checks []Check) ([]CheckResult, error) {
	if len(checks) == 0 {
		return []CheckResult{}, nil
	}
	if _, err := compile(checks); err != nil {
		return nil, err // what the store would say, without asking it
	}
	c.mu.Lock()
	now := c.now()
	c.sweep(now)
	if rs, ok := c.local(checks, now); ok {
		c.mu.Unlock()
		return rs, nil
	}
	// To the store: a leasable key asks for its next lease, unless another
	// request of this node is already asking.
	asked := make([]Check, len(checks))
	refill := make([]bool, len(checks))
	for i, ck := range checks {
		asked[i] = ck
		asked[i].Want = 1
		if leaseMax(ck.Limit) == 0 {
			continue
		}
		k := c.key(ck.Key)
		if !k.refilling {
			k.refilling, refill[i] = true, true
			asked[i].Want = max(1, k.size)
		}
	}
	c.mu.Unlock()

	rs, err := c.inner.CheckAll(ctx, asked)

	c.mu.Lock()
	defer c.mu.Unlock()
	now = c.now()
	for i, ck := range checks {
		if refill[i] {
			c.key(ck.Key).refilling = false
		}
	}
	if err != nil {
		return nil, err
	}
	allowed := true
	for _, r := range rs {
		allowed = allowed && r.Allowed
	}
	for i, ck := range checks {
		r := &rs[i]
		k := c.keys[ck.Key]
		switch {
		case allowed && r.Granted > 1:
			c.lease(k, ck, *r, refill[i], now)
			r.Remaining += k.tokens
			r.Granted = 1 // to the request; the rest is the node's
		case allowed:
			if k != nil && refill[i] {
				c.resize(k, ck, now)
			}
		case !r.Allowed:
			c.holdRefusal(ck, *r, now)
		}
	}
	return rs, nil
}

// local answers the checks on the node when it can: a refusal it holds
// for any of them, or a lease with an event left for each. The caller
// holds c.mu.
func (c *nodeCache) local(checks []Check, now time.Time) ([]CheckResult, bool) {
	leased := true
	for i, ck := range checks {
		k := c.keys[ck.Key]
		if k != nil && now.Before(k.refusedUntil) {
			return c.heldRefusal(checks, i, now), true
		}
		need := 1
		for _, other := range checks[:i] {
			if other.Key == ck.Key {
				need++
			}
		}
		if k == nil || !now.Before(k.leaseUntil) || k.tokens < need {
			leased = false
		}
	}
	if !leased {
		return nil, false
	}
	rs := make([]CheckResult, len(checks))
	for i, ck := range checks {
		k := c.keys[ck.Key]
		k.tokens--
		rs[i] = CheckResult{
			Allowed: true, Remaining: k.remaining + k.tokens, RetryAfter: -1,
			ResetAfter: max(0, k.resetAt.Sub(now)), Level: k.level, Granted: 1,
		}
	}
	return rs, true
}

// heldRefusal is the answer to checks when checks[refused] is refused on
// the node: nothing is counted, and the other checks, unknown here, are
// reported allowed with their burst. The caller holds c.mu.
func (c *nodeCache) heldRefusal(checks []Check, refused int, now time.Time) []CheckResult {
	rs := make([]CheckResult, len(checks))
	for i, ck := range checks {
		rs[i] = CheckResult{Allowed: true, Remaining: ck.Limit.Burst, RetryAfter: -1}
	}
	k := c.keys[checks[refused].Key]
	rs[refused] = CheckResult{
		RetryAfter: k.retryAt.Sub(now), ResetAfter: max(0, k.fullAt.Sub(now)),
		Penalised: k.penalised, Level: k.level, BlockedFor: max(0, k.blockedUntil.Sub(now)),
	}
	return rs
}

// lease keeps the events granted beyond the one this request uses. The
// caller holds c.mu.
func (c *nodeCache) lease(k *nodeKey, ck Check, r CheckResult, refilled bool, now time.Time) {
	if k == nil {
		k = c.key(ck.Key)
	}
	if refilled {
		c.resize(k, ck, now)
	}
	if !now.Before(k.leaseUntil) {
		k.tokens = 0
	}
	k.tokens += r.Granted - 1
	k.leaseUntil = now.Add(c.ttl)
	k.remaining, k.resetAt, k.level = r.Remaining, now.Add(r.ResetAfter), r.Level
}

// resize sets the size of k's next lease from how the last one went: used
// whole, twice as many; expired unused in part, half as many. The caller
// holds c.mu.
func (c *nodeCache) resize(k *nodeKey, ck Check, now time.Time) {
	switch {
	case k.size == 0:
		k.size = 2
	case k.tokens == 0:
		k.size *= 2
	case !now.Before(k.leaseUntil):
		k.size /= 2
	}
	k.size = min(max(k.size, 1), leaseMax(ck.Limit))
}

// holdRefusal keeps a refusal that repeating cannot change, for the rest
// of it and at most the TTL. The caller holds c.mu.
func (c *nodeCache) holdRefusal(ck Check, r CheckResult, now time.Time) {
	var hold time.Duration
	switch {
	case ck.Penalty == nil:
		hold = r.RetryAfter
	case r.BlockedFor > 0:
		hold = r.BlockedFor
	default:
		return // the next request may raise the penalty: ask the store
	}
	k := c.key(ck.Key)
	k.refusedUntil = now.Add(min(hold, c.ttl))
	k.retryAt = now.Add(r.RetryAfter)
	k.fullAt = now.Add(r.ResetAfter)
	k.blockedUntil = now.Add(r.BlockedFor)
	k.penalised = r.Penalised && r.BlockedFor > 0
	k.level = r.Level
	k.tokens = 0 // a refused key has no events left to hand out
}

// key returns the node's entry for key, creating it. The caller holds
// c.mu.
func (c *nodeCache) key(key string) *nodeKey {
	k := c.keys[key]
	if k == nil {
		k = &nodeKey{}
		c.keys[key] = k
	}
	return k
}

// sweep drops, at most every ten TTLs, the keys whose lease and refusal
// have expired and that no request is refilling. The caller holds c.mu.
func (c *nodeCache) sweep(now time.Time) {
	if now.Before(c.nextSweep) {
		return
	}
	c.nextSweep = now.Add(10 * c.ttl)
	for key, k := range c.keys {
		if !k.refilling && now.After(k.leaseUntil.Add(c.ttl)) && !now.Before(k.refusedUntil) {
			delete(c.keys, key)
		}
	}
}

// Punish implements MultiLimiter: the key is forgotten on this node (its
// lease would let it through), then punished in the store.
func (c *nodeCache) Punish(ctx context.Context, key string, p Penalty) (Punishment, error) {
	c.mu.Lock()
	delete(c.keys, key)
	c.mu.Unlock()
	return c.inner.Punish(ctx, key, p)
}

// Lift implements MultiLimiter: the key is forgotten on this node, then in
// the store.
func (c *nodeCache) Lift(ctx context.Context, key string) error {
	c.mu.Lock()
	delete(c.keys, key)
	c.mu.Unlock()
	return c.inner.Lift(ctx, key)
}
