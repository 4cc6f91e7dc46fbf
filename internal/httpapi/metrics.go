package httpapi

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the HTTP request metrics, labelled by method, route pattern
// and status (never by raw path, user or email).
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	// inFlightLimit and shed are set by Shed.
	inFlightLimit prometheus.Gauge
	shed          prometheus.Counter
}

// NewMetrics creates the HTTP metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"method", "route", "status"}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method, route pattern and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, labels),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_http_requests_in_flight",
			Help: "HTTP requests being answered now.",
		}),
		inFlightLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_http_requests_in_flight_limit",
			Help: "Requests in flight beyond which new ones are shed with 503 overloaded (health checks excepted); 0 when nothing is shed.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_http_shed_total",
			Help: "HTTP requests refused with 503 overloaded because the in-flight limit was reached.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight, m.inFlightLimit, m.shed)
	return m
}
