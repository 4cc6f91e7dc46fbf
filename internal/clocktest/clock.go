// Package clocktest is the one fake clock of the tests: it stands still until
// the test moves it, so expiry, windows and lockouts are tested without
// sleeping.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a fake clock for tests: it stands still until Advance (or Set)
// moves it. Safe for concurrent use. Pass its Now where code takes a
// clock (func() time.Time).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock at t, or at a fixed time in 2030 when t is
// zero.
func New(t time.Time) *Clock {
	if t.IsZero() {
		t = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	return &Clock{t: t}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (back, for a negative d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
