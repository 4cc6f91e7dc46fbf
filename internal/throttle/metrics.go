package throttle

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/ratepolicy"
)

// Metrics are the limiter's Prometheus series. A nil *Metrics records
// nothing.
type Metrics struct {
	decisionsTotal *prometheus.CounterVec
	latency        prometheus.Histogram
}

// NewMetrics registers gatehouse_rate_limit_decisions_total{rule,decision}
// (allowed, limited, penalised, bypassed) and
// gatehouse_rate_limit_check_seconds, the limiter's own latency.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_rate_limit_decisions_total",
			Help: "Rate-limit decisions by rule: allowed, limited, penalised (refused while blocked) or bypassed (trusted network or exempt client).",
		}, []string{"rule", "decision"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_rate_limit_check_seconds",
			Help:    "Time the rate limiter took to decide a request (one round trip to the counters).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}),
	}
	reg.MustRegister(m.decisionsTotal, m.latency)
	return m
}

func (m *Metrics) decision(rule, d string) {
	if m != nil {
		m.decisionsTotal.WithLabelValues(rule, d).Inc()
	}
}

func (m *Metrics) decisions(rules []*ratepolicy.Rule, d string) {
	for _, r := range rules {
		m.decision(r.Name, d)
	}
}

func (m *Metrics) observe(d time.Duration) {
	if m != nil {
		m.latency.Observe(d.Seconds())
	}
}
