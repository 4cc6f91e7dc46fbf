package main

import (
	"slices"
	"time"
)

// latencies is a summary of request durations.
type latencies struct {
	P50, P90, P99, Max time.Duration
}

// summarize sorts d in place and returns its nearest-rank percentiles.
func summarize(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	slices.Sort(d)
	return latencies{
		P50: percentile(d, 50),
		P90: percentile(d, 90),
		P99: percentile(d, 99),
		Max: d[len(d)-1],
	}
}

// percentile returns the nearest-rank p-th percentile of sorted, which must
// not be empty.
func percentile(sorted []time.Duration, p int) time.Duration {
	// Nearest rank: the smallest value with at least p% of values at or
	// below it, i.e. index ceil(p/100 × n) - 1.
	n := len(sorted)
	rank := (p*n + 99) / 100
	return sorted[min(max(rank-1, 0), n-1)]
}

// ms is d in milliseconds, for printing and JSON.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
