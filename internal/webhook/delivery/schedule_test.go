package delivery

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseSchedule(t *testing.T) {
	good := map[string]Schedule{
		"1s,2s,4s":               {time.Second, 2 * time.Second, 4 * time.Second},
		" 10ms , 20ms ":          {10 * time.Millisecond, 20 * time.Millisecond},
		"5s":                     {5 * time.Second},
		"1h30m,168h":             {90 * time.Minute, 168 * time.Hour},
		DefaultSchedule.String(): DefaultSchedule,
	}
	for in, want := range good {
		got, err := ParseSchedule(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", in, diff)
		}
	}
	bad := map[string]string{
		"":                               "empty",
		"   ":                            "empty",
		"1s,,2s":                         "entry 2",
		"1s,two":                         `entry 2 "two"`,
		"5":                              "not a duration",
		"0s":                             "positive",
		"-1s":                            "positive",
		"169h":                           "longer",
		"1s,x,-2s":                       "entry 3",
		strings.Repeat("1s,", 50) + "1s": "at most 50",
	}
	for in, want := range bad {
		_, err := ParseSchedule(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", in, err, want)
		}
	}
}

func TestDefaultSchedule(t *testing.T) {
	want := "5s,5m0s,30m0s,2h0m0s,5h0m0s,10h0m0s,10h0m0s"
	if got := DefaultSchedule.String(); got != want {
		t.Errorf("DefaultSchedule = %s, want %s", got, want)
	}
}

func TestScheduleNext(t *testing.T) {
	s := Schedule{10 * time.Second, time.Minute, time.Hour}
	mid := func() float64 { return 0.5 }
	low := func() float64 { return 0 }
	high := func() float64 { return 0.999999 }

	// One wait per failed attempt, then exhausted: 1 + len(s) attempts.
	for i, want := range s {
		got, ok := s.next(i+1, 0, mid)
		if !ok || got != want {
			t.Errorf("after %d failures: %s %v, want %s", i+1, got, ok, want)
		}
	}
	for _, n := range []int{0, -1, len(s) + 1, 100} {
		if d, ok := s.next(n, 0, mid); ok {
			t.Errorf("after %d failures: wait %s, want exhausted", n, d)
		}
	}

	// Jitter spreads by ±20 %.
	if got, _ := s.next(2, 0, low); got != 48*time.Second {
		t.Errorf("lowest jitter: %s, want 48s", got)
	}
	if got, _ := s.next(2, 0, high); got < 71*time.Second || got > 72*time.Second {
		t.Errorf("highest jitter: %s, want about 72s", got)
	}

	// Retry-After wins when longer, never shortens the wait, and is capped.
	if got, _ := s.next(1, 30*time.Second, high); got != 30*time.Second {
		t.Errorf("Retry-After 30s over a 10s wait: %s", got)
	}
	if got, _ := s.next(3, time.Second, mid); got != time.Hour {
		t.Errorf("Retry-After 1s over a 1h wait: %s", got)
	}
	if got, _ := s.next(1, 30*24*time.Hour, mid); got != MaxRetryAfter {
		t.Errorf("Retry-After of a month: %s, want %s", got, MaxRetryAfter)
	}
	// Retry-After does not extend an exhausted schedule.
	if _, ok := s.next(4, time.Second, mid); ok {
		t.Error("Retry-After revived an exhausted schedule")
	}
}
