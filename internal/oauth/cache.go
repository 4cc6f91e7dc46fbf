package oauth

import (
	"sync"
	"time"
)

// ttlCache keeps values until a fixed expiry. Past maxCacheEntries it
// forgets everything at once: a crude bound that keeps a flood of distinct
// keys (unknown client IDs, say) from growing memory. The zero value is
// ready to use.
type ttlCache[V any] struct {
	mu sync.Mutex
	m  map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

const maxCacheEntries = 10000

// get returns the value of key if it is still fresh at now.
func (c *ttlCache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put keeps v for key until expires.
func (c *ttlCache[V]) put(key string, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCacheEntries {
		c.m = map[string]ttlEntry[V]{}
	}
	c.m[key] = ttlEntry[V]{v: v, expires: expires}
}
