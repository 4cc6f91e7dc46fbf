package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Defaults of Deps.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxResponse  = 4 << 10
	DefaultDisableAfter = 5 * 24 * time.Hour
)

// UserAgent is the user-agent header of every delivery.
const UserAgent = "Gatehouse-Webhooks/1 (+https://www.standardwebhooks.com/)"

// drainLimit is how much of a response beyond MaxResponse is read (and
// dropped) so that the connection can be reused; a longer response is
// cut off and its connection closed.
const drainLimit = 64 << 10

// jobTimeoutMargin is what a delivery job may take beyond its HTTP
// request: reading the delivery, recording the attempt, notifying.
const jobTimeoutMargin = 30 * time.Second

// Tables are the webhook tables the worker reads and writes.
type Tables interface {
	GetWebhookDelivery(ctx context.Context, id string) (store.WebhookDelivery, error)
	GetWebhookEvent(ctx context.Context, id string) (store.WebhookEvent, error)
	GetWebhookEndpoint(ctx context.Context, id string) (store.WebhookEndpoint, error)
	UpdateWebhookEndpoint(ctx context.Context, e store.WebhookEndpoint) (store.WebhookEndpoint, error)
	MarkWebhookEndpointResult(ctx context.Context, id string, ok bool, at time.Time) (store.WebhookEndpoint, error)
	RecordWebhookAttempt(ctx context.Context, id string, a store.WebhookAttempt, status string, next time.Time) (store.WebhookDelivery, error)
}

// Tx is the store inside the transaction that records an attempt.
type Tx interface {
	Tables
	// DriverTx is the driver's transaction, for the next attempt's job.
	DriverTx() any
}

// Store is the storage the worker needs (see store.Narrow).
type Store interface {
	Tables
	InTx(ctx context.Context, fn func(Tx) error) error
}

// JobInserter enqueues a job in the caller's database transaction, as
// *jobs.Queue does.
type JobInserter interface {
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// Deps are what a Worker is built from.
type Deps struct {
	Store Store
	Jobs  JobInserter
	// Secrets opens the endpoints' sealed signing secrets (a
	// *secret.Keyring).
	Secrets      Opener
	Destinations Destinations
	// Schedule is the retry schedule; nil is DefaultSchedule.
	Schedule Schedule
	// Timeout bounds each HTTP attempt, from dial to the last byte read
	// (DefaultTimeout when 0).
	Timeout time.Duration
	// MaxResponse is how much of a response body is recorded with the
	// attempt (DefaultMaxResponse when 0).
	MaxResponse int
	// DisableAfter disables an endpoint whose attempts have all failed
	// for that long (DefaultDisableAfter when 0).
	DisableAfter time.Duration
	// Notify is called once the worker has disabled an endpoint (it
	// answered 410 Gone, or kept failing), after the transaction that
	// disabled it committed, with the endpoint as disabled. It must be
	// durable: the wiring makes it enqueue the email job to the
	// administrators (jobs.Queue.Insert, in a transaction of its own). Its
	// error is logged; the endpoint stays disabled either way.
	Notify  func(ctx context.Context, ep store.WebhookEndpoint) error
	Metrics *Metrics // nil records nothing
	Now     func() time.Time
	// Rand returns a uniform number in [0, 1) for the schedule's jitter;
	// nil is math/rand/v2.Float64.
	Rand func() float64
	Log  *slog.Logger
}

// Worker sends webhook deliveries: one job is one attempt.
//
// A job loads its delivery, the event and the endpoint. A delivery that
// is not pending (delivered or failed already) or is gone with its
// endpoint is left alone, so a job run twice sends nothing more once its
// attempt is recorded. A disabled endpoint gets nothing: the attempt is
// recorded with the error "endpoint disabled" and the delivery fails.
// Otherwise the envelope (Envelope) is signed with the endpoint's secret,
// and its previous secret while a rotation's overlap lasts, checked
// against Destinations and POSTed. The outcome:
//   - 2xx: delivered.
//   - 410 Gone: the delivery fails and the endpoint is disabled at once
//     (store.EndpointGone), and Notify is called.
//   - no answer (network error, timeout, refused destination), 408, 429
//     or 5xx: the next attempt is scheduled per the Schedule, at least
//     Retry-After (seconds or an HTTP date) later, by recording the
//     attempt as pending and enqueueing its job in one transaction; when
//     the schedule is exhausted the delivery fails (the dead letters).
//   - anything else (3xx, as redirects are not followed, and every other
//     4xx): the delivery fails at once. Such an answer says the request
//     itself is wrong (a moved or misconfigured URL, a receiver that
//     refuses the signature); it would be the same on every retry, and
//     the administrator can retry or replay it once the endpoint is
//     fixed.
//
// Every attempt but those to a disabled endpoint is recorded on the
// endpoint (MarkWebhookEndpointResult); an endpoint failing for
// DisableAfter is disabled (store.EndpointFailing) and Notify is called.
//
// Work returns an error only when the database failed; River then runs
// the job again (JobMaxAttempts). Delivery is at least once: an attempt
// whose outcome could not be recorded is made again.
type Worker struct {
	river.WorkerDefaults[DeliverArgs]
	d      Deps
	client *http.Client
}

// NewWorker checks d and builds the worker.
func NewWorker(d Deps) (*Worker, error) {
	if err := require.Deps("webhook delivery", map[string]bool{
		"Store": d.Store != nil, "Jobs": d.Jobs != nil, "Secrets": d.Secrets != nil, "Notify": d.Notify != nil,
	}); err != nil {
		return nil, err
	}
	if d.Schedule == nil {
		d.Schedule = DefaultSchedule
	}
	if len(d.Schedule) == 0 {
		return nil, errors.New("webhook delivery: empty retry schedule")
	}
	d.Schedule = append(Schedule(nil), d.Schedule...)
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	if d.MaxResponse <= 0 {
		d.MaxResponse = DefaultMaxResponse
	}
	if d.DisableAfter <= 0 {
		d.DisableAfter = DefaultDisableAfter
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Rand == nil {
		d.Rand = rand.Float64
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Worker{d: d, client: d.Destinations.Client(d.Timeout)}, nil
}

// Timeout implements river.Worker: the HTTP timeout and time to record
// the attempt.
func (w *Worker) Timeout(*river.Job[DeliverArgs]) time.Duration {
	return w.d.Timeout + jobTimeoutMargin
}

// Work implements river.Worker.
func (w *Worker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	return w.deliver(ctx, job.Args)
}

// Outcomes of an attempt, the metrics' outcome label.
const (
	OutcomeDelivered = "delivered" // answered 2xx
	OutcomeRetry     = "retry"     // failed, another attempt is scheduled
	OutcomeFailed    = "failed"    // failed for good
	OutcomeGone      = "gone"      // answered 410 Gone: endpoint disabled
	OutcomeRefused   = "refused"   // the destination was refused (SSRF check)
)

// result is what came of one attempt.
type result struct {
	attempt store.WebhookAttempt
	// sent is set when a request was made (latency is then observed).
	sent bool
	ok   bool
	gone bool
	// retry is set for a failure that another attempt may fix, and
	// retryAfter for the receiver's wish.
	retry      bool
	retryAfter time.Duration
	refused    bool
	// endpoint is set when the attempt counts on the endpoint's record:
	// not for a disabled endpoint, nor for a failure of Gatehouse's own.
	endpoint bool
}

// errDone ends a job early with nothing more to do.
var errDone = errors.New("webhook delivery: nothing to do")

// deliver makes the attempt that args asks for.
func (w *Worker) deliver(ctx context.Context, args DeliverArgs) error {
	d, err := w.d.Store.GetWebhookDelivery(ctx, args.DeliveryID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // removed with its endpoint, or purged
	}
	if err != nil {
		return fmt.Errorf("webhook delivery: load delivery: %w", err)
	}
	if d.Status != store.DeliveryPending {
		return nil
	}
	if args.Attempt != 0 && args.Attempt != len(d.Attempts)+1 {
		return nil // this attempt was made already: the job ran before
	}
	ep, err := w.d.Store.GetWebhookEndpoint(ctx, d.EndpointID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("webhook delivery: load endpoint: %w", err)
	}
	var res result
	if !ep.Enabled {
		res = result{attempt: store.WebhookAttempt{At: w.now(), Error: "endpoint disabled"}}
	} else {
		res, err = w.attempt(ctx, d, ep)
		if err != nil {
			return err
		}
	}
	return w.record(ctx, d, ep, res)
}

// attempt builds, signs and sends the delivery's request.
func (w *Worker) attempt(ctx context.Context, d store.WebhookDelivery, ep store.WebhookEndpoint) (result, error) {
	now := w.now()
	ev, err := w.d.Store.GetWebhookEvent(ctx, d.EventID)
	if errors.Is(err, store.ErrNotFound) {
		return result{attempt: store.WebhookAttempt{At: now, Error: "event no longer stored"}}, nil
	}
	if err != nil {
		return result{}, fmt.Errorf("webhook delivery: load event: %w", err)
	}
	body, err := Envelope(ev)
	if err != nil {
		return result{attempt: store.WebhookAttempt{At: now, Error: "event data is not a JSON object"}}, nil
	}
	secrets, err := w.secrets(ctx, ep, now)
	if err != nil {
		// Gatehouse's own failure (its encryption keys changed): retried,
		// but not held against the endpoint.
		w.d.Log.ErrorContext(ctx, "webhook delivery: signing secret does not open",
			slog.String("endpoint_id", ep.ID), slog.String("delivery_id", d.ID), slog.String("error", err.Error()))
		return result{attempt: store.WebhookAttempt{At: now, Error: "signing secret could not be opened"}, retry: true}, nil
	}
	h, err := Headers(secrets, ev.ID, now, body)
	if err != nil {
		return result{attempt: store.WebhookAttempt{At: now, Error: "signing failed"}, retry: true}, nil
	}
	if err := w.d.Destinations.Check(ctx, ep.URL); err != nil {
		return result{attempt: store.WebhookAttempt{At: now, Error: attemptError(err, w.d.Timeout)},
			retry: true, refused: true, endpoint: true}, nil
	}
	res := w.post(ctx, ep.URL, h, body, now)
	if err := ctx.Err(); err != nil {
		// The job was stopped (shutdown, or its timeout): not the
		// endpoint's doing. River runs the job again later.
		return result{}, fmt.Errorf("webhook delivery: interrupted: %w", err)
	}
	return res, nil
}

// secrets opens the endpoint's signing secrets: the current one, then
// the previous one while its overlap lasts.
func (w *Worker) secrets(ctx context.Context, ep store.WebhookEndpoint, now time.Time) ([]string, error) {
	cur, err := OpenSecret(w.d.Secrets, ep.ID, ep.Secret)
	if err != nil {
		return nil, err
	}
	out := []string{cur}
	if ep.PreviousSecret != "" && ep.PreviousSecretExpiresAt.After(now) {
		prev, err := OpenSecret(w.d.Secrets, ep.ID, ep.PreviousSecret)
		if err != nil {
			// Sign with the current secret alone rather than not at all.
			w.d.Log.WarnContext(ctx, "webhook delivery: previous signing secret does not open",
				slog.String("endpoint_id", ep.ID), slog.String("error", err.Error()))
		} else {
			out = append(out, prev)
		}
	}
	return out, nil
}

// post sends one request and classifies its outcome.
func (w *Worker) post(ctx context.Context, rawURL string, h http.Header, body []byte, at time.Time) result {
	res := result{attempt: store.WebhookAttempt{At: at}, sent: true, endpoint: true}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		res.attempt.Error = "the URL does not make a request"
		return res
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	// Latency is a measurement, taken on the monotonic clock.
	start := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		res.attempt.Latency = time.Since(start)
		res.attempt.Error = attemptError(err, w.d.Timeout)
		res.retry = true
		res.refused = errors.Is(err, ErrDestinationRefused)
		return res
	}
	text, _ := io.ReadAll(io.LimitReader(resp.Body, int64(w.d.MaxResponse)))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	resp.Body.Close()
	res.attempt.Latency = time.Since(start)
	res.attempt.StatusCode = resp.StatusCode
	res.attempt.Response = validText(text)

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		res.ok = true
	case code == http.StatusGone:
		res.gone = true
		res.attempt.Error = "410 Gone: endpoint disabled"
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		res.retry = true
		res.retryAfter = retryAfter(resp.Header.Get("Retry-After"), w.now())
		res.attempt.Error = statusError(code)
	case code >= 300 && code < 400:
		res.attempt.Error = statusError(code) + ": redirect not followed"
	default:
		res.attempt.Error = statusError(code)
	}
	return res
}

// record stores the attempt and what follows from it in one transaction,
// then notifies and counts.
func (w *Worker) record(ctx context.Context, d store.WebhookDelivery, ep store.WebhookEndpoint, res result) error {
	status, next := store.DeliveryFailed, time.Time{}
	outcome := OutcomeFailed
	switch {
	case res.ok:
		status, outcome = store.DeliveryDelivered, OutcomeDelivered
	case res.gone:
		outcome = OutcomeGone
	case res.retry:
		if wait, ok := w.d.Schedule.next(trailingFailures(d.Attempts)+1, res.retryAfter, w.d.Rand); ok {
			status, next, outcome = store.DeliveryPending, w.now().Add(wait), OutcomeRetry
		}
	}
	if res.refused {
		outcome = OutcomeRefused
	}

	var disabled *store.WebhookEndpoint
	var attempts int
	err := w.d.Store.InTx(ctx, func(tx Tx) error {
		disabled = nil
		cur := ep
		// A success on an endpoint that was not failing changes nothing
		// on it: skipping the write keeps every delivery to one endpoint
		// from queueing on its row lock.
		if res.endpoint && !(res.ok && ep.FailingSince.IsZero()) {
			var err error
			cur, err = tx.MarkWebhookEndpointResult(ctx, ep.ID, res.ok, res.attempt.At)
			if errors.Is(err, store.ErrNotFound) {
				return errDone
			}
			if err != nil {
				return fmt.Errorf("mark endpoint: %w", err)
			}
		}
		reason := ""
		switch {
		case !cur.Enabled:
		case res.gone:
			reason = store.EndpointGone
		case res.endpoint && !res.ok && !cur.FailingSince.IsZero() && !res.attempt.At.Before(cur.FailingSince.Add(w.d.DisableAfter)):
			reason = store.EndpointFailing
			status, next = store.DeliveryFailed, time.Time{}
			if outcome == OutcomeRetry {
				outcome = OutcomeFailed
			}
		}
		if reason != "" {
			cur.Enabled, cur.DisabledReason, cur.UpdatedAt = false, reason, time.Time{}
			up, err := tx.UpdateWebhookEndpoint(ctx, cur)
			if errors.Is(err, store.ErrNotFound) {
				return errDone
			}
			if err != nil {
				return fmt.Errorf("disable endpoint: %w", err)
			}
			disabled = &up
		}
		rec, err := tx.RecordWebhookAttempt(ctx, d.ID, res.attempt, status, next)
		if errors.Is(err, store.ErrNotFound) {
			return errDone
		}
		if err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		attempts = len(rec.Attempts)
		if status == store.DeliveryPending {
			opts := InsertOpts()
			opts.ScheduledAt = next
			if _, err := w.d.Jobs.InsertTx(ctx, tx.DriverTx(), DeliverArgs{DeliveryID: d.ID, Attempt: attempts + 1}, opts); err != nil {
				return fmt.Errorf("schedule next attempt: %w", err)
			}
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return nil // the endpoint or delivery was deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("webhook delivery: %w", err)
	}

	var latency time.Duration
	if res.sent {
		latency = res.attempt.Latency
	}
	w.d.Metrics.observe(outcome, res.sent, latency)
	w.logAttempt(ctx, d, ep, res, outcome, attempts, next)
	if disabled != nil {
		w.d.Log.WarnContext(ctx, "webhook endpoint disabled",
			slog.String("endpoint_id", ep.ID), slog.String("reason", disabled.DisabledReason))
		if err := w.d.Notify(ctx, *disabled); err != nil {
			w.d.Log.ErrorContext(ctx, "webhook delivery: could not notify of a disabled endpoint",
				slog.String("endpoint_id", ep.ID), slog.String("error", err.Error()))
		}
	}
	return nil
}

// logAttempt logs a failed attempt at warning level and a delivered one
// at debug level, naming the endpoint's host but never its path or query
// (which may carry a receiver's token).
func (w *Worker) logAttempt(ctx context.Context, d store.WebhookDelivery, ep store.WebhookEndpoint, res result, outcome string, attempts int, next time.Time) {
	attrs := []any{
		slog.String("endpoint_id", ep.ID),
		slog.String("delivery_id", d.ID),
		slog.String("event_type", d.EventType),
		slog.String("host", hostOf(ep.URL)),
		slog.Int("attempt", attempts),
		slog.Int("status", res.attempt.StatusCode),
		slog.String("outcome", outcome),
		slog.Duration("latency", res.attempt.Latency),
	}
	if res.ok {
		w.d.Log.DebugContext(ctx, "webhook delivered", attrs...)
		return
	}
	attrs = append(attrs, slog.String("error", res.attempt.Error))
	if !next.IsZero() {
		attrs = append(attrs, slog.Time("next_attempt_at", next))
	}
	w.d.Log.WarnContext(ctx, "webhook attempt failed", attrs...)
}

func (w *Worker) now() time.Time { return w.d.Now().UTC() }

// trailingFailures counts the failed attempts since the last success: a
// delivery retried or replayed by an administrator after it was delivered
// starts its schedule again, one that had failed gets the one attempt.
func trailingFailures(as []store.WebhookAttempt) int {
	n := 0
	for i := len(as) - 1; i >= 0; i-- {
		a := as[i]
		if a.Error == "" && a.StatusCode >= 200 && a.StatusCode < 300 {
			break
		}
		n++
	}
	return n
}

// retryAfter reads a Retry-After header, in seconds or an HTTP date, as a
// wait from now (0 when absent, malformed or past).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func statusError(code int) string {
	if t := http.StatusText(code); t != "" {
		return fmt.Sprintf("HTTP %d %s", code, t)
	}
	return fmt.Sprintf("HTTP %d", code)
}

// maxErrorLen bounds the error text of an attempt.
const maxErrorLen = 300

// attemptError describes a failed request for the delivery log: the
// cause without the URL (url.Error quotes it whole, query included).
func attemptError(err error, timeout time.Duration) string {
	var de *DestinationError
	if errors.As(err, &de) {
		return de.Error()
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "timed out after " + timeout.String()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	return validText([]byte(msg))
}

// validText makes b storable text: valid UTF-8 without NUL (PostgreSQL
// refuses both), a rune cut by the size cap dropped.
func validText(b []byte) string {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				b = b[:len(b)-i]
			}
			break
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// hostOf returns the host (and port) of rawURL, for logs.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}
