package delivery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse/gatehouse/internal/clocktest"
)

// pendingCounter is a PendingCounter that counts its calls.
type pendingCounter struct {
	calls  int
	count  int
	oldest time.Time
	err    error
}

func (p *pendingCounter) PendingWebhookDeliveries(context.Context) (int, time.Time, error) {
	p.calls++
	return p.count, p.oldest, p.err
}

func TestQueueGaugesCached(t *testing.T) {
	clk := clocktest.New(time.Time{})
	pc := &pendingCounter{count: 7, oldest: clk.Now().Add(-90 * time.Second)}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, pc, clk.Now, nil)

	want := `
# HELP gatehouse_webhook_oldest_pending_seconds Age of the oldest webhook delivery still pending (0 when none is).
# TYPE gatehouse_webhook_oldest_pending_seconds gauge
gatehouse_webhook_oldest_pending_seconds 90
# HELP gatehouse_webhook_queue_depth Webhook deliveries waiting for their next attempt.
# TYPE gatehouse_webhook_queue_depth gauge
gatehouse_webhook_queue_depth 7
`
	names := []string{"gatehouse_webhook_queue_depth", "gatehouse_webhook_oldest_pending_seconds"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// Scrapes within 5 s reuse the figures (the age still grows).
	clk.Advance(2 * time.Second)
	pc.count = 8
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if pc.calls != 1 {
		t.Errorf("%d queries for two scrapes within 5s, want 1", pc.calls)
	}
	clk.Advance(4 * time.Second)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.NewReplacer("90", "96", "depth 7", "depth 8").Replace(want)), names...); err != nil {
		t.Error(err)
	}
	if pc.calls != 2 {
		t.Errorf("%d queries, want 2 after the cache expired", pc.calls)
	}

	// No pending delivery: age 0. A failing database: the gauges are
	// left out, the other series stay.
	clk.Advance(time.Minute)
	pc.count, pc.oldest = 0, time.Time{}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.NewReplacer("90", "0", "depth 7", "depth 0").Replace(want)), names...); err != nil {
		t.Error(err)
	}
	clk.Advance(time.Minute)
	pc.err = errors.New("database down")
	if n := testutil.CollectAndCount(reg, names...); n != 0 {
		t.Errorf("%d queue series while the database fails, want none", n)
	}

	// Outcomes exist from the start and count.
	if n := testutil.CollectAndCount(reg, "gatehouse_webhook_deliveries_total"); n != 5 {
		t.Errorf("%d outcome series, want 5", n)
	}
	m.observe(OutcomeDelivered, true, 30*time.Millisecond)
	m.observe(OutcomeRefused, false, 0)
	if got := testutil.ToFloat64(m.deliveries.WithLabelValues(OutcomeDelivered)); got != 1 {
		t.Errorf("delivered = %v", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "gatehouse_webhook_delivery_seconds" {
			if n := mf.GetMetric()[0].GetHistogram().GetSampleCount(); n != 1 {
				t.Errorf("%d latencies observed, want 1 (the refused attempt sent nothing)", n)
			}
		}
	}
	var nilMetrics *Metrics
	nilMetrics.observe(OutcomeFailed, true, time.Second) // records nothing, does not panic
}
