package delivery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the delivery worker's Prometheus series. A nil *Metrics
// records nothing.
type Metrics struct {
	deliveries *prometheus.CounterVec
	latency    prometheus.Histogram
}

// PendingCounter counts the pending deliveries, as store.WebhookStore
// does.
type PendingCounter interface {
	PendingWebhookDeliveries(ctx context.Context) (count int, oldest time.Time, err error)
}

// queueCacheTTL is how long the queue figures are reused between
// scrapes: several Prometheus servers scraping every few seconds cost one
// query.
const queueCacheTTL = 5 * time.Second

// queueQueryTimeout bounds the query behind the queue gauges.
const queueQueryTimeout = 2 * time.Second

// NewMetrics registers on reg:
//   - gatehouse_webhook_deliveries_total{outcome}: attempts by outcome
//     (delivered, retry, failed, gone, refused);
//   - gatehouse_webhook_delivery_seconds: the time of each request sent,
//     to the end of its response;
//   - gatehouse_webhook_queue_depth and
//     gatehouse_webhook_oldest_pending_seconds: the pending deliveries and
//     the age of the oldest (by creation), read from pending at scrape
//     time and kept for 5 seconds. They are left out of a scrape when
//     the database does not answer.
//
// now is the clock of the ages (time.Now when nil); log receives a
// warning when the figures cannot be read (nil discards).
func NewMetrics(reg prometheus.Registerer, pending PendingCounter, now func() time.Time, log *slog.Logger) *Metrics {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered (2xx), retry (failed, another attempt scheduled), failed (failed for good), gone (410, endpoint disabled) or refused (destination not allowed).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_webhook_delivery_seconds",
			Help:    "Time from sending a webhook request to the end of its response (or its failure).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	for _, o := range []string{OutcomeDelivered, OutcomeRetry, OutcomeFailed, OutcomeGone, OutcomeRefused} {
		m.deliveries.WithLabelValues(o)
	}
	reg.MustRegister(m.deliveries, m.latency, &queueCollector{pending: pending, now: now, log: log})
	return m
}

// observe counts an attempt, and its latency when a request was sent.
func (m *Metrics) observe(outcome string, sent bool, latency time.Duration) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(outcome).Inc()
	if sent {
		m.latency.Observe(latency.Seconds())
	}
}

var (
	queueDepthDesc = prometheus.NewDesc("gatehouse_webhook_queue_depth",
		"Webhook deliveries waiting for their next attempt.", nil, nil)
	oldestPendingDesc = prometheus.NewDesc("gatehouse_webhook_oldest_pending_seconds",
		"Age of the oldest webhook delivery still pending (0 when none is).", nil, nil)
)

// queueCollector reads the pending deliveries at scrape time, at most
// once per queueCacheTTL.
type queueCollector struct {
	pending PendingCounter
	now     func() time.Time
	log     *slog.Logger

	mu     sync.Mutex
	readAt time.Time // zero: never read
	count  int
	oldest time.Time
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- oldestPendingDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.readAt.IsZero() || now.Sub(c.readAt) >= queueCacheTTL || now.Before(c.readAt) {
		ctx, cancel := context.WithTimeout(context.Background(), queueQueryTimeout)
		count, oldest, err := c.pending.PendingWebhookDeliveries(ctx)
		cancel()
		if err != nil {
			c.log.Warn("could not read the webhook queue figures for metrics", "error", err.Error())
			return
		}
		c.readAt, c.count, c.oldest = now, count, oldest
	}
	age := 0.0
	if c.count > 0 && !c.oldest.IsZero() {
		age = max(0, now.Sub(c.oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(c.count))
	ch <- prometheus.MustNewConstMetric(oldestPendingDesc, prometheus.GaugeValue, age)
}
