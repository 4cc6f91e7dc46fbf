// Package ttlcache keeps looked-up values in memory for a fixed time.
package ttlcache

import (
	"sync"
	"time"
)

// Cache keeps values until a fixed expiry. Past maxCacheEntries it
// forgets everything at once: a crude bound that keeps a flood of distinct
// keys (unknown client IDs, say) from growing memory. The zero value is
// ready to use.
type Cache[V any] struct {
	mu sync.Mutex
	m  map[string]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time
}

const maxCacheEntries = 10000

// Get returns the value of key if it is still fresh at now.
func (c *Cache[V]) Get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put keeps v for key until expires.
func (c *Cache[V]) Put(key string, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCacheEntries {
		c.m = map[string]entry[V]{}
	}
	c.m[key] = entry[V]{v: v, expires: expires}
}

// Forget drops key.
func (c *Cache[V]) Forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}
