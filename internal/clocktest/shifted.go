package clocktest

import (
	"sync/atomic"
	"time"
)

// Shifted is a fake clock for whole-server tests: it runs with the real
// clock, shifted by an offset that only Advance changes. Unlike Clock it
// never stands still, so timers, job schedules and timeouts inside the
// server keep working while a test jumps past an expiry instead of
// sleeping until it. Safe for concurrent use; the zero value is the real
// clock.
type Shifted struct {
	offset atomic.Int64 // nanoseconds
}

// Now returns the real time plus the offset.
func (s *Shifted) Now() time.Time {
	return time.Now().Add(time.Duration(s.offset.Load()))
}

// Advance moves the clock forward by d; a negative d is refused, as time
// going back is not something the server is built to see.
func (s *Shifted) Advance(d time.Duration) {
	if d < 0 {
		panic("clocktest: Shifted.Advance with a negative duration")
	}
	s.offset.Add(int64(d))
}
