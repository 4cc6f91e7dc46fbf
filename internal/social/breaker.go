package social

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type breakerState struct {
	failures  int
	openUntil time.Time
}

func (s *Service) count(providerID, outcome string) {
	if s.Metrics != nil {
		s.Metrics.WithLabelValues(providerID, outcome).Inc()
	}
}

// NewMetrics registers the per-provider outcome counter.
func NewMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_social_logins_total",
		Help: "Social sign-in callbacks by provider and outcome (signed_in, signed_up, linked, link_required, or an error code).",
	}, []string{"provider", "outcome"})
	reg.MustRegister(c)
	return c
}

// open reports whether the provider's circuit breaker is open.
func (s *Service) open(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.breaker[id]
	return b != nil && s.now().Before(b.openUntil)
}

// record updates the breaker with the outcome of a provider call.
func (s *Service) record(id string, unavailable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.breaker == nil {
		s.breaker = map[string]*breakerState{}
	}
	b := s.breaker[id]
	if b == nil {
		b = &breakerState{}
		s.breaker[id] = b
	}
	if !unavailable {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= s.Config.BreakerFailures {
		b.openUntil = s.now().Add(s.Config.BreakerCooldown)
		b.failures = 0
	}
}
