package delivery

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Schedule is how long a delivery waits after each failed attempt: after
// the first attempt fails it waits Schedule[0], after the second
// Schedule[1], and so on; when the attempt after the last wait fails too,
// the delivery has failed for good (a dead letter). A delivery is thus
// tried 1 + len(Schedule) times in all.
type Schedule []time.Duration

// DefaultSchedule spreads 8 attempts over about 28 hours: 5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h, 10 h.
var DefaultSchedule = Schedule{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Limits of a schedule and of the waits a receiver may ask for.
const (
	// MaxScheduleLen bounds the number of retries.
	MaxScheduleLen = 50
	// MaxScheduleDelay bounds one wait of a schedule.
	MaxScheduleDelay = 7 * 24 * time.Hour
	// MaxRetryAfter bounds the wait a receiver asks for with Retry-After:
	// a longer one is cut to it.
	MaxRetryAfter = 24 * time.Hour
	// jitter is the spread of each wait: ±20 %, so that the deliveries
	// that failed together during an outage do not all retry at once.
	jitter = 0.20
)

// ParseSchedule reads a schedule written as comma-separated Go durations,
// "1s,2s,4s" (GATEHOUSE_WEBHOOK_RETRY_SCHEDULE). Every wait must be
// positive and at most MaxScheduleDelay, and there are at most
// MaxScheduleLen of them; an empty schedule is refused (a delivery would
// never be retried: say so with a single short wait instead).
func ParseSchedule(s string) (Schedule, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty retry schedule")
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxScheduleLen {
		return nil, fmt.Errorf("retry schedule has %d waits, at most %d allowed", len(parts), MaxScheduleLen)
	}
	out := make(Schedule, 0, len(parts))
	var errs []error
	for i, p := range parts {
		p = strings.TrimSpace(p)
		d, err := time.ParseDuration(p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("retry schedule entry %d %q is not a duration such as 30s or 2h", i+1, p))
		case d <= 0:
			errs = append(errs, fmt.Errorf("retry schedule entry %d %q must be positive", i+1, p))
		case d > MaxScheduleDelay:
			errs = append(errs, fmt.Errorf("retry schedule entry %d %q is longer than %s", i+1, p, MaxScheduleDelay))
		}
		out = append(out, d)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// String writes s as ParseSchedule reads it.
func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// next returns how long to wait before the next attempt of a delivery
// whose last failedAttempts attempts failed (1 after the first failure),
// or false when the schedule is exhausted and the delivery has failed.
// The wait is the schedule's, spread by ±20 % with rnd (a uniform number
// in [0, 1)), and at least retryAfter (the receiver's Retry-After, cut to
// MaxRetryAfter) when that is longer.
func (s Schedule) next(failedAttempts int, retryAfter time.Duration, rnd func() float64) (time.Duration, bool) {
	if failedAttempts < 1 || failedAttempts > len(s) {
		return 0, false
	}
	base := s[failedAttempts-1]
	wait := time.Duration(float64(base) * (1 + jitter*(2*rnd()-1)))
	if wait <= 0 {
		wait = base
	}
	retryAfter = min(retryAfter, MaxRetryAfter)
	return max(wait, retryAfter), true
}
