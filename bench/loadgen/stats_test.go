package main

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want latencies
	}{
		{"empty", nil, latencies{}},
		{"one", []time.Duration{7}, latencies{7, 7, 7, 7}},
		{"hundred reversed", func() []time.Duration {
			d := make([]time.Duration, 100)
			for i := range d {
				d[i] = time.Duration(100 - i) // 100 … 1
			}
			return d
		}(), latencies{P50: 50, P90: 90, P99: 99, Max: 100}},
		{"ten", []time.Duration{10, 1, 9, 2, 8, 3, 7, 4, 6, 5}, latencies{P50: 5, P90: 9, P99: 10, Max: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Errorf("summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}
