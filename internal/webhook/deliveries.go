package webhook

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Deliveries returns a page of the deliveries of endpoint f.EndpointID
// matching f, newest first, with their attempts, and the cursor of the
// next page ("" on the last). An unknown endpoint is ErrEndpointNotFound.
func (s *Service) Deliveries(ctx context.Context, f store.WebhookDeliveryFilter) ([]store.WebhookDelivery, string, error) {
	if _, err := s.GetEndpoint(ctx, f.EndpointID); err != nil {
		return nil, "", err
	}
	return s.d.Store.ListWebhookDeliveries(ctx, f)
}

// RetryDelivery sends delivery id again now: it is made pending, due now,
// and its job enqueued, in one transaction; its attempts are kept and the
// next one is added to them. A delivered delivery may be sent again (its
// webhook-id is the same, so a receiver that deduplicates ignores it). A
// pending one is ErrDeliveryPending, one of a disabled endpoint
// ErrEndpointDisabled.
//
// Two retries of one delivery at the same moment may both enqueue a job:
// the receiver may get the event twice, as at-least-once allows.
func (s *Service) RetryDelivery(ctx context.Context, m httpapi.Meta, id string) (store.WebhookDelivery, error) {
	var out store.WebhookDelivery
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		d, err := tx.GetWebhookDelivery(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrDeliveryNotFound
		} else if err != nil {
			return err
		}
		if d.Status == store.DeliveryPending {
			return ErrDeliveryPending
		}
		ep, err := getEndpoint(ctx, tx, d.EndpointID)
		if err != nil {
			return err
		}
		if !ep.Enabled {
			return ErrEndpointDisabled
		}
		if out, err = tx.RequeueWebhookDelivery(ctx, id, s.now()); err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, []store.WebhookDelivery{out}); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, s.auditEvent(m, ep.ID, "webhook.delivery_retried", map[string]any{
			"delivery_id": id, "event_id": d.EventID, "event_type": d.EventType, "previous_status": d.Status,
		}))
	})
	return out, err
}

// MaxReplay is the most deliveries one replay sends again.
const MaxReplay = 1000

// ReplayInput selects the deliveries of an endpoint to send again.
type ReplayInput struct {
	Since time.Time // required: deliveries created at or after
	Until time.Time // deliveries created before; zero: up to now
	// Status is store.DeliveryFailed or store.DeliveryDelivered; "" is
	// both. Pending deliveries are never replayed: they will be sent.
	Status string
}

// Replay sends again every delivery of endpoint id that in selects: each
// is made pending, due now, and its job enqueued, all in one transaction,
// audited with their number, which it returns. More than MaxReplay is
// ErrReplayTooLarge and sends none: the administrator narrows the window.
func (s *Service) Replay(ctx context.Context, m httpapi.Meta, id string, in ReplayInput) (int, error) {
	var fe []httpapi.FieldError
	if in.Since.IsZero() {
		fe = append(fe, httpapi.FieldError{Field: "since", Rule: "required", Message: "since (an RFC 3339 time) is required."})
	}
	if !in.Until.IsZero() && !in.Until.After(in.Since) {
		fe = append(fe, httpapi.FieldError{Field: "until", Rule: "after", Message: "until must be later than since."})
	}
	statuses := []string{store.DeliveryFailed, store.DeliveryDelivered}
	switch in.Status {
	case "":
	case store.DeliveryFailed, store.DeliveryDelivered:
		statuses = []string{in.Status}
	default:
		fe = append(fe, httpapi.FieldError{Field: "status", Rule: "enum", Message: "status must be failed or delivered."})
	}
	if len(fe) > 0 {
		return 0, httpapi.Validation(fe...)
	}
	var n int
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		ep, err := getEndpoint(ctx, tx, id)
		if err != nil {
			return err
		}
		if !ep.Enabled {
			return ErrEndpointDisabled
		}
		var ids []string
		for _, st := range statuses {
			f := store.WebhookDeliveryFilter{EndpointID: id, Status: st, Since: in.Since, Until: in.Until, Limit: store.MaxDeliveryLimit}
			for {
				page, next, err := tx.ListWebhookDeliveries(ctx, f)
				if err != nil {
					return err
				}
				for _, d := range page {
					ids = append(ids, d.ID)
				}
				if len(ids) > MaxReplay {
					return ErrReplayTooLarge
				}
				if next == "" {
					break
				}
				f.Cursor = next
			}
		}
		now := s.now()
		requeued := make([]store.WebhookDelivery, 0, len(ids))
		for _, did := range ids {
			d, err := tx.RequeueWebhookDelivery(ctx, did, now)
			if err != nil {
				return err
			}
			requeued = append(requeued, d)
		}
		if err := s.enqueue(ctx, tx, requeued); err != nil {
			return err
		}
		n = len(requeued)
		data := map[string]any{"since": in.Since.UTC().Format(time.RFC3339Nano), "until": nil, "status": in.Status, "replayed": n}
		if !in.Until.IsZero() {
			data["until"] = in.Until.UTC().Format(time.RFC3339Nano)
		}
		return tx.AppendAuditEvent(ctx, s.auditEvent(m, id, "webhook.replayed", data))
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Stats are an endpoint's figures over the last 24 hours and 7 days.
type Stats struct {
	Day  WindowStats
	Week WindowStats
}

// WindowStats are an endpoint's figures since a time: the deliveries
// created since then, and the attempts made since then.
type WindowStats struct {
	Since      time.Time
	Deliveries int
	Delivered  int
	Failed     int
	Pending    int
	// SuccessRate is Delivered / (Delivered + Failed): the share of the
	// deliveries that reached an end that succeeded; -1 when none has.
	SuccessRate       float64
	Attempts          int
	AttemptsSucceeded int
	// LatencyP50 and LatencyP95 are estimated from the store's latency
	// buckets (store.WebhookLatencyBounds): each is the upper bound of the
	// bucket that holds the percentile's attempt, so the true value is at
	// most that (and above the bucket below). An attempt slower than
	// every bound is counted at the last bound, a lower bound then. -1
	// when there was no attempt.
	LatencyP50 time.Duration
	LatencyP95 time.Duration
	// FailuresByStatus counts the failed attempts by HTTP status code; 0
	// is no HTTP answer (a network error, a timeout, a refused
	// destination).
	FailuresByStatus map[int]int
}

// Stats returns the figures of endpoint id over the last 24 hours and 7
// days.
func (s *Service) Stats(ctx context.Context, id string) (Stats, error) {
	if _, err := s.GetEndpoint(ctx, id); err != nil {
		return Stats{}, err
	}
	now := s.now()
	var out Stats
	for _, w := range []struct {
		dst *WindowStats
		d   time.Duration
	}{{&out.Day, 24 * time.Hour}, {&out.Week, 7 * 24 * time.Hour}} {
		since := now.Add(-w.d)
		st, err := s.d.Store.WebhookDeliveryStats(ctx, id, since)
		if err != nil {
			return Stats{}, err
		}
		*w.dst = windowStats(since, st)
	}
	return out, nil
}

func windowStats(since time.Time, st store.WebhookStats) WindowStats {
	w := WindowStats{
		Since: since, Deliveries: st.Deliveries, Delivered: st.Delivered, Failed: st.Failed,
		Pending: max(0, st.Deliveries-st.Delivered-st.Failed), Attempts: st.Attempts, AttemptsSucceeded: st.Succeeded,
		SuccessRate: -1, LatencyP50: -1, LatencyP95: -1, FailuresByStatus: st.ByStatus,
	}
	if w.FailuresByStatus == nil {
		w.FailuresByStatus = map[int]int{}
	}
	if done := st.Delivered + st.Failed; done > 0 {
		w.SuccessRate = float64(st.Delivered) / float64(done)
	}
	w.LatencyP50 = percentile(st.LatencyBuckets, 50)
	w.LatencyP95 = percentile(st.LatencyBuckets, 95)
	return w
}

// percentile estimates the p-th percentile (0 < p ≤ 100) of the
// latencies counted in buckets (see store.WebhookStats.LatencyBuckets):
// the upper bound of the bucket holding the ⌈p·n/100⌉-th fastest of the n
// attempts, the last bound for the bucket above every bound, -1 when n is
// 0.
func percentile(buckets []int, p int) time.Duration {
	n := 0
	for _, c := range buckets {
		n += c
	}
	if n == 0 {
		return -1
	}
	rank := max(1, (p*n+99)/100)
	bounds := store.WebhookLatencyBounds
	seen := 0
	for i, c := range buckets {
		seen += c
		if seen >= rank {
			return bounds[min(i, len(bounds)-1)]
		}
	}
	return bounds[len(bounds)-1]
}
