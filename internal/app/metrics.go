package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/jobs"
	"github.com/gatehouse/gatehouse/internal/store"
)

// poolCollector exports the database connection pool figures at scrape time.
type poolCollector struct{ store store.Store }

var (
	poolMaxDesc     = prometheus.NewDesc("gatehouse_db_pool_max_connections", "Maximum connections of the database pool.", nil, nil)
	poolOpenDesc    = prometheus.NewDesc("gatehouse_db_pool_open_connections", "Open connections of the database pool.", nil, nil)
	poolInUseDesc   = prometheus.NewDesc("gatehouse_db_pool_in_use_connections", "Connections of the database pool in use.", nil, nil)
	poolIdleDesc    = prometheus.NewDesc("gatehouse_db_pool_idle_connections", "Idle connections of the database pool.", nil, nil)
	poolWaitsDesc   = prometheus.NewDesc("gatehouse_db_pool_waits_total", "Times a query waited for a free connection.", nil, nil)
	poolWaitSecDesc = prometheus.NewDesc("gatehouse_db_pool_wait_seconds_total", "Total time spent waiting for a free connection.", nil, nil)
	jobsDesc        = prometheus.NewDesc("gatehouse_jobs", "Background jobs in the queue, by state.", []string{"state"}, nil)
	jobsUpDesc      = prometheus.NewDesc("gatehouse_jobs_stats_up", "1 when the job queue figures could be read at this scrape.", nil, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolMaxDesc, poolOpenDesc, poolInUseDesc, poolIdleDesc, poolWaitsDesc, poolWaitSecDesc} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.store.Stats()
	ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(s.MaxOpen))
	ch <- prometheus.MustNewConstMetric(poolOpenDesc, prometheus.GaugeValue, float64(s.Open))
	ch <- prometheus.MustNewConstMetric(poolInUseDesc, prometheus.GaugeValue, float64(s.InUse))
	ch <- prometheus.MustNewConstMetric(poolIdleDesc, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(poolWaitsDesc, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(poolWaitSecDesc, prometheus.CounterValue, s.WaitDuration.Seconds())
}

// jobsCollector counts jobs by state at scrape time with one grouped query.
type jobsCollector struct {
	queue *jobs.Queue
	log   *slog.Logger
}

func (c *jobsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- jobsUpDesc
}

func (c *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.queue.Stats(ctx)
	if err != nil {
		c.log.Warn("could not read job queue figures for metrics", "error", err.Error())
		ch <- prometheus.MustNewConstMetric(jobsUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(jobsUpDesc, prometheus.GaugeValue, 1)
	for state, n := range st.ByState() {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), state)
	}
}
