package sqldb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func (t *Tables) scanWebhookEndpoint(r sqlrow.Scanner) (store.WebhookEndpoint, error) {
	return sqlrow.ScanWebhookEndpoint(r, t.d.TimeDest, t.d.NullTimeDest, t.d.ListDest)
}

// CreateWebhookEndpoint implements store.WebhookStore. An organisation
// that does not exist is ErrNotFound.
func (t *Tables) CreateWebhookEndpoint(ctx context.Context, e store.WebhookEndpoint) (store.WebhookEndpoint, error) {
	e, err := sqlrow.PrepareWebhookEndpoint(e, t.now())
	if err != nil {
		return store.WebhookEndpoint{}, t.errorf("create webhook endpoint: %w", err)
	}
	created, err := row(ctx, t, Write, t.scanWebhookEndpoint, `INSERT INTO webhook_endpoints (`+sqlrow.WebhookEndpointColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING `+sqlrow.WebhookEndpointColumns,
		sqlrow.WebhookEndpointValues(e, t.d.TimeValue, t.d.ListValue)...)
	if err != nil {
		return store.WebhookEndpoint{}, t.errorf("create webhook endpoint %q: %w", e.ID, t.d.MapRefErr(err))
	}
	return created, nil
}

// GetWebhookEndpoint implements store.WebhookStore, reading the primary.
func (t *Tables) GetWebhookEndpoint(ctx context.Context, id string) (store.WebhookEndpoint, error) {
	return t.getWebhookEndpoint(ctx, id, "")
}

// GetWebhookEndpointForUpdate implements store.WebhookStore with SELECT …
// FOR UPDATE where the dialect has it (SQLite's write transactions hold
// the database's write lock from their start).
func (t *Tables) GetWebhookEndpointForUpdate(ctx context.Context, id string) (store.WebhookEndpoint, error) {
	return t.getWebhookEndpoint(ctx, id, t.d.ForUpdate)
}

func (t *Tables) getWebhookEndpoint(ctx context.Context, id, lock string) (store.WebhookEndpoint, error) {
	if !sqlrow.Storable(id) {
		return store.WebhookEndpoint{}, t.errorf("get webhook endpoint %q: %w", id, store.ErrNotFound)
	}
	e, err := row(ctx, t, Primary, t.scanWebhookEndpoint, "SELECT "+sqlrow.WebhookEndpointColumns+
		" FROM webhook_endpoints WHERE id = $1"+lock, id)
	if err != nil {
		return store.WebhookEndpoint{}, t.errorf("get webhook endpoint %q: %w", id, t.d.MapErr(err))
	}
	return e, nil
}

// ListWebhookEndpoints implements store.WebhookStore: oldest first, ties
// broken by ID, from the primary.
func (t *Tables) ListWebhookEndpoints(ctx context.Context) ([]store.WebhookEndpoint, error) {
	list, err := rows(ctx, t, Primary, t.scanWebhookEndpoint, "SELECT "+sqlrow.WebhookEndpointColumns+
		" FROM webhook_endpoints ORDER BY created_at, id")
	if err != nil {
		return nil, t.errorf("list webhook endpoints: %w", err)
	}
	return list, nil
}

// ListEnabledWebhookEndpoints implements store.WebhookStore: oldest
// first, ties broken by ID, from the primary.
func (t *Tables) ListEnabledWebhookEndpoints(ctx context.Context) ([]store.WebhookEndpoint, error) {
	list, err := rows(ctx, t, Primary, t.scanWebhookEndpoint, "SELECT "+sqlrow.WebhookEndpointColumns+
		" FROM webhook_endpoints WHERE enabled ORDER BY created_at, id")
	if err != nil {
		return nil, t.errorf("list enabled webhook endpoints: %w", err)
	}
	return list, nil
}

// UpdateWebhookEndpoint implements store.WebhookStore.
func (t *Tables) UpdateWebhookEndpoint(ctx context.Context, e store.WebhookEndpoint) (store.WebhookEndpoint, error) {
	if !sqlrow.Storable(e.ID) {
		return store.WebhookEndpoint{}, t.errorf("update webhook endpoint %q: %w", e.ID, store.ErrNotFound)
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = t.now()
	}
	e, err := sqlrow.PrepareWebhookEndpoint(e, e.UpdatedAt) // CreatedAt is not updated
	if err != nil {
		return store.WebhookEndpoint{}, t.errorf("update webhook endpoint: %w", err)
	}
	tv := t.d.TimeValue
	updated, err := row(ctx, t, Write, t.scanWebhookEndpoint, `UPDATE webhook_endpoints SET
		url = $2, events = $3, description = $4, organization_id = $5, enabled = $6, disabled_reason = $7,
		secret = $8, previous_secret = $9, previous_secret_expires_at = $10, failing_since = $11, updated_at = $12
		WHERE id = $1 RETURNING `+sqlrow.WebhookEndpointColumns,
		e.ID, e.URL, t.d.ListValue(e.Events), sqlrow.Null(e.Description), sqlrow.Null(e.OrganizationID), e.Enabled,
		sqlrow.Null(e.DisabledReason), e.Secret, sqlrow.Null(e.PreviousSecret), tv(e.PreviousSecretExpiresAt),
		tv(e.FailingSince), tv(e.UpdatedAt))
	if err != nil {
		return store.WebhookEndpoint{}, t.errorf("update webhook endpoint %q: %w", e.ID, t.d.MapRefErr(err))
	}
	return updated, nil
}

// DeleteWebhookEndpoint implements store.WebhookStore: its deliveries and
// their attempts go with it (ON DELETE CASCADE); its events stay until
// PurgeWebhookDeliveries finds them orphaned.
func (t *Tables) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	if !sqlrow.Storable(id) {
		return t.errorf("delete webhook endpoint %q: %w", id, store.ErrNotFound)
	}
	return t.deleteOne(ctx, "delete webhook endpoint "+quote(id), "DELETE FROM webhook_endpoints WHERE id = $1", id)
}

// MarkWebhookEndpointResult implements store.WebhookStore. It writes only
// when FailingSince changes, which most attempts leave as it is (an
// endpoint that keeps answering, or keeps failing), so a busy endpoint's
// row is not rewritten, nor locked, on every attempt; otherwise it reads.
// Each UPDATE checks its own condition, so concurrent calls keep the first
// failure's time.
func (t *Tables) MarkWebhookEndpointResult(ctx context.Context, id string, ok bool, at time.Time) (store.WebhookEndpoint, error) {
	if !sqlrow.Storable(id) {
		return store.WebhookEndpoint{}, t.errorf("mark webhook endpoint %q: %w", id, store.ErrNotFound)
	}
	var (
		e   store.WebhookEndpoint
		err error
	)
	if ok {
		e, err = row(ctx, t, Write, t.scanWebhookEndpoint, `UPDATE webhook_endpoints SET failing_since = NULL
			WHERE id = $1 AND failing_since IS NOT NULL RETURNING `+sqlrow.WebhookEndpointColumns, id)
	} else {
		if at.IsZero() {
			return store.WebhookEndpoint{}, t.errorf("mark webhook endpoint %q: a failure needs its time", id)
		}
		e, err = row(ctx, t, Write, t.scanWebhookEndpoint, `UPDATE webhook_endpoints SET failing_since = $2
			WHERE id = $1 AND failing_since IS NULL RETURNING `+sqlrow.WebhookEndpointColumns, id, t.d.TimeValue(at))
	}
	if err == nil {
		return e, nil
	}
	if err = t.d.MapErr(err); !notFound(err) {
		return store.WebhookEndpoint{}, t.errorf("mark webhook endpoint %q: %w", id, err)
	}
	// Nothing to change, or no such endpoint.
	return t.GetWebhookEndpoint(ctx, id)
}

func (t *Tables) scanWebhookEvent(r sqlrow.Scanner) (store.WebhookEvent, error) {
	return sqlrow.ScanWebhookEvent(r, t.d.TimeDest, t.d.ListDest)
}

// CreateWebhookEvent implements store.WebhookStore.
func (t *Tables) CreateWebhookEvent(ctx context.Context, ev store.WebhookEvent) error {
	ev, err := sqlrow.PrepareWebhookEvent(ev, t.now())
	if err != nil {
		return t.errorf("create webhook event: %w", err)
	}
	_, err = t.x.Exec(ctx, `INSERT INTO webhook_events (`+sqlrow.WebhookEventColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		sqlrow.WebhookEventValues(ev, t.d.TimeValue, t.d.ListValue)...)
	if err != nil {
		return t.errorf("create webhook event %q: %w", ev.ID, t.d.MapErr(err))
	}
	return nil
}

// GetWebhookEvent implements store.WebhookStore, reading the primary.
func (t *Tables) GetWebhookEvent(ctx context.Context, id string) (store.WebhookEvent, error) {
	if !sqlrow.Storable(id) {
		return store.WebhookEvent{}, t.errorf("get webhook event %q: %w", id, store.ErrNotFound)
	}
	ev, err := row(ctx, t, Primary, t.scanWebhookEvent, "SELECT "+sqlrow.WebhookEventColumns+" FROM webhook_events WHERE id = $1", id)
	if err != nil {
		return store.WebhookEvent{}, t.errorf("get webhook event %q: %w", id, t.d.MapErr(err))
	}
	return ev, nil
}

// WebhookDeliveryChunk is how many deliveries one INSERT of
// InsertWebhookDeliveries stores (7 parameters each, well below either
// engine's limit on parameters).
const WebhookDeliveryChunk = 500

// InsertWebhookDeliveries stores ds with one multi-row INSERT per
// WebhookDeliveryChunk deliveries. Each row's event_type is read from its
// event in the same statement. It is store.WebhookStore's
// CreateWebhookDeliveries for at most one chunk; the backends run it in a
// transaction for more, so that a conflict in a later chunk leaves none
// stored.
func (t *Tables) InsertWebhookDeliveries(ctx context.Context, ds []store.WebhookDelivery) error {
	ds, err := sqlrow.PrepareWebhookDeliveries(ds, t.now())
	if err != nil {
		return t.errorf("create webhook deliveries: %w", err)
	}
	for len(ds) > 0 {
		chunk := ds[:min(len(ds), WebhookDeliveryChunk)]
		ds = ds[len(chunk):]
		var (
			q    strings.Builder
			args = make([]any, 0, 7*len(chunk))
		)
		q.WriteString("INSERT INTO webhook_deliveries (" + sqlrow.WebhookDeliveryColumns + ") VALUES ")
		for i, d := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d, $%d, $%d, COALESCE((SELECT type FROM webhook_events WHERE id = $%[3]d), ''), $%d, $%d, $%d, $%d)",
				n+1, n+2, n+3, n+4, n+5, n+6, n+7)
			args = append(args, d.ID, d.EndpointID, d.EventID, d.Status,
				t.d.TimeValue(d.NextAttemptAt), t.d.TimeValue(d.CreatedAt), t.d.TimeValue(d.UpdatedAt))
		}
		if _, err := t.x.Exec(ctx, q.String(), args...); err != nil {
			return t.errorf("create webhook deliveries: %w", t.d.MapRefErr(err))
		}
	}
	return nil
}

// deliveryWithAttempts selects a delivery and its attempts, one row per
// attempt (one row with NULL attempt columns when it has none), oldest
// first: read in one statement, the attempts agree with the status.
var deliveryWithAttempts = "SELECT " + qualify("d", sqlrow.WebhookDeliveryColumns) + ", " +
	qualify("a", sqlrow.WebhookAttemptColumns) + ` FROM webhook_deliveries d
	LEFT JOIN webhook_attempts a ON a.delivery_id = d.id
	WHERE d.id = $1 ORDER BY a.at, a.attempt`

// qualify prefixes every column of a column list with table.
func qualify(table, columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = table + "." + c
	}
	return strings.Join(cols, ", ")
}

// GetWebhookDelivery implements store.WebhookStore, reading the primary.
func (t *Tables) GetWebhookDelivery(ctx context.Context, id string) (store.WebhookDelivery, error) {
	if !sqlrow.Storable(id) {
		return store.WebhookDelivery{}, t.errorf("get webhook delivery %q: %w", id, store.ErrNotFound)
	}
	d, err := t.getDelivery(ctx, id)
	if err != nil {
		return store.WebhookDelivery{}, t.errorf("get webhook delivery %q: %w", id, err)
	}
	return d, nil
}

// getDelivery reads a delivery with its attempts; errors are mapped.
func (t *Tables) getDelivery(ctx context.Context, id string) (store.WebhookDelivery, error) {
	var (
		d     store.WebhookDelivery
		found bool
	)
	err := t.x.Rows(ctx, Primary, deliveryWithAttempts, []any{id}, func(r sqlrow.Scanner) error {
		var (
			at              time.Time
			code, latency   *int64
			message, answer *string
		)
		got, err := sqlrow.ScanWebhookDelivery(sqlrow.WithExtra(r, t.d.NullTimeDest(&at), &code, &latency, &message, &answer),
			t.d.TimeDest, t.d.NullTimeDest)
		if err != nil {
			return err
		}
		if !found {
			d, found = got, true
		}
		if !at.IsZero() {
			d.Attempts = append(d.Attempts, store.WebhookAttempt{
				At: at.UTC(), StatusCode: int(*code), Latency: time.Duration(*latency) * time.Millisecond,
				Error: deref(message), Response: deref(answer),
			})
		}
		return nil
	})
	if err != nil {
		return store.WebhookDelivery{}, t.d.MapErr(err)
	}
	if !found {
		return store.WebhookDelivery{}, store.ErrNotFound
	}
	return d, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// nextAttempt is the attempt number of a new attempt of delivery $1.
const nextAttempt = "(SELECT COALESCE(MAX(attempt), 0) + 1 FROM webhook_attempts WHERE delivery_id = $1)"

// RecordWebhookAttemptTx is store.WebhookStore's RecordWebhookAttempt
// without the transaction: the backends call it on the Tables of one
// (theirs, or the caller's inside InTx). Its UPDATE comes first: on
// PostgreSQL it locks the delivery's row until the transaction ends, so
// concurrent attempts on one delivery number themselves one after the
// other (SQLite's transaction holds the database's write lock already).
func (t *Tables) RecordWebhookAttemptTx(ctx context.Context, id string, a store.WebhookAttempt, status string, next time.Time) (store.WebhookDelivery, error) {
	if !sqlrow.Storable(id) {
		return store.WebhookDelivery{}, t.errorf("record webhook attempt of %q: %w", id, store.ErrNotFound)
	}
	if !sqlrow.ValidDeliveryStatus(status) {
		return store.WebhookDelivery{}, t.errorf("record webhook attempt of %q: unknown status %q", id, status)
	}
	a, err := sqlrow.PrepareWebhookAttempt(a)
	if err != nil {
		return store.WebhookDelivery{}, t.errorf("record webhook attempt of %q: %w", id, err)
	}
	now := t.now()
	tv := t.d.TimeValue
	var endpointID string
	err = t.x.Row(ctx, Write, `UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, updated_at = $4
		WHERE id = $1 RETURNING endpoint_id`, id, status, tv(sqlrow.DeliveryNext(status, next, now)), tv(now)).Scan(&endpointID)
	if err != nil {
		return store.WebhookDelivery{}, t.errorf("record webhook attempt of %q: %w", id, t.d.MapErr(err))
	}
	_, err = t.x.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, endpoint_id, at, status_code, latency_ms, error, response)
		VALUES ($1, `+nextAttempt+`, $2, $3, $4, $5, $6, $7)`,
		id, endpointID, tv(a.At), a.StatusCode, a.Latency.Milliseconds(), sqlrow.Null(a.Error), sqlrow.Null(a.Response))
	if err != nil {
		return store.WebhookDelivery{}, t.errorf("record webhook attempt of %q: %w", id, t.d.MapErr(err))
	}
	d, err := t.getDelivery(ctx, id)
	if err != nil {
		return store.WebhookDelivery{}, t.errorf("record webhook attempt of %q: %w", id, err)
	}
	return d, nil
}

// RequeueWebhookDelivery implements store.WebhookStore.
func (t *Tables) RequeueWebhookDelivery(ctx context.Context, id string, next time.Time) (store.WebhookDelivery, error) {
	if !sqlrow.Storable(id) {
		return store.WebhookDelivery{}, t.errorf("requeue webhook delivery %q: %w", id, store.ErrNotFound)
	}
	now := t.now()
	next = sqlrow.DeliveryNext(store.DeliveryPending, next, now)
	n, err := t.x.Exec(ctx, `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, updated_at = $3
		WHERE id = $1`, id, t.d.TimeValue(next), t.d.TimeValue(now))
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.WebhookDelivery{}, t.errorf("requeue webhook delivery %q: %w", id, t.d.MapErr(err))
	}
	d, err := t.getDelivery(ctx, id)
	if err != nil {
		return store.WebhookDelivery{}, t.errorf("requeue webhook delivery %q: %w", id, err)
	}
	return d, nil
}

// ListWebhookDeliveries implements store.WebhookStore by keyset cursor on
// (created_at, id), from the primary: the page in one query, then the
// attempts of the whole page in a second.
func (t *Tables) ListWebhookDeliveries(ctx context.Context, f store.WebhookDeliveryFilter) ([]store.WebhookDelivery, string, error) {
	if f.EndpointID == "" {
		return nil, "", t.errorf("list webhook deliveries: the endpoint is required")
	}
	limit := sqlrow.DeliveryLimit(f.Limit)
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Cursor != "" {
		at, id, err := sqlrow.DecodeDeliveryCursor(f.Cursor)
		if err != nil {
			return nil, "", t.errorf("list webhook deliveries: %w", err)
		}
		where = append(where, fmt.Sprintf("(created_at, id) < (%s, %s)", arg(t.d.TimeValue(at)), arg(id)))
	}
	// Text no row can hold matches nothing (and PostgreSQL would refuse it).
	for _, s := range []string{f.EndpointID, f.Status, f.EventType} {
		if s != "" && !sqlrow.Storable(s) {
			return nil, "", nil
		}
	}
	where = append(where, "endpoint_id = "+arg(f.EndpointID))
	if f.Status != "" {
		where = append(where, "status = "+arg(f.Status))
	}
	if f.EventType != "" {
		where = append(where, "event_type = "+arg(f.EventType))
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= "+arg(t.d.TimeValue(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "created_at < "+arg(t.d.TimeValue(f.Until)))
	}
	q := "SELECT " + sqlrow.WebhookDeliveryColumns + " FROM webhook_deliveries WHERE " + strings.Join(where, " AND ") +
		" ORDER BY created_at DESC, id DESC LIMIT " + arg(limit+1)
	list, err := rows(ctx, t, Primary, t.scanWebhookDelivery, q, args...)
	if err != nil {
		return nil, "", t.errorf("list webhook deliveries: %w", err)
	}
	list, next := sqlrow.DeliveryPage(list, limit)
	if err := t.loadAttempts(ctx, list); err != nil {
		return nil, "", t.errorf("list webhook deliveries: %w", err)
	}
	return list, next, nil
}

func (t *Tables) scanWebhookDelivery(r sqlrow.Scanner) (store.WebhookDelivery, error) {
	return sqlrow.ScanWebhookDelivery(r, t.d.TimeDest, t.d.NullTimeDest)
}

// loadAttempts fills in the attempts of ds with one query; errors are
// mapped.
func (t *Tables) loadAttempts(ctx context.Context, ds []store.WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	index := make(map[string]int, len(ds))
	params := make([]string, len(ds))
	args := make([]any, len(ds))
	for i, d := range ds {
		index[d.ID] = i
		params[i] = fmt.Sprintf("$%d", i+1)
		args[i] = d.ID
	}
	q := "SELECT delivery_id, " + sqlrow.WebhookAttemptColumns + " FROM webhook_attempts WHERE delivery_id IN (" +
		strings.Join(params, ", ") + ") ORDER BY delivery_id, at, attempt"
	err := t.x.Rows(ctx, Primary, q, args, func(r sqlrow.Scanner) error {
		var id string
		a, err := sqlrow.ScanWebhookAttempt(extraFirst{r, &id}, t.d.TimeDest)
		if err != nil {
			return err
		}
		if i, ok := index[id]; ok {
			ds[i].Attempts = append(ds[i].Attempts, a)
		}
		return nil
	})
	return t.d.MapErr(err)
}

// extraFirst scans a row's leading column into first before the
// destinations a scan helper passes.
type extraFirst struct {
	s     sqlrow.Scanner
	first any
}

func (e extraFirst) Scan(dest ...any) error { return e.s.Scan(append([]any{e.first}, dest...)...) }

// webhookStats aggregates the deliveries created since $2 and the
// attempts made since $2 of endpoint $1 in one row.
var webhookStats = `SELECT d.deliveries, d.delivered, d.failed, a.* FROM
	(SELECT COUNT(*) AS deliveries,
		COUNT(CASE WHEN status = 'delivered' THEN 1 END) AS delivered,
		COUNT(CASE WHEN status = 'failed' THEN 1 END) AS failed
		FROM webhook_deliveries WHERE endpoint_id = $1 AND created_at >= $2) d
	CROSS JOIN
	(SELECT COUNT(*) AS attempts,
		COUNT(CASE WHEN status_code BETWEEN 200 AND 299 THEN 1 END) AS succeeded, ` + sqlrow.LatencyBucketsSQL + `
		FROM webhook_attempts WHERE endpoint_id = $1 AND at >= $2) a`

// WebhookDeliveryStats implements store.WebhookStore with two aggregate
// queries (the figures, then the failed attempts by status code), which
// may run on a read replica.
func (t *Tables) WebhookDeliveryStats(ctx context.Context, endpointID string, since time.Time) (store.WebhookStats, error) {
	st := store.WebhookStats{ByStatus: map[int]int{}, LatencyBuckets: make([]int, len(store.WebhookLatencyBounds)+1)}
	if !sqlrow.Storable(endpointID) {
		return st, nil // no endpoint has this ID
	}
	if since.IsZero() {
		since = time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC) // before every row; TimeValue binds the zero time as NULL
	}
	dest := []any{&st.Deliveries, &st.Delivered, &st.Failed, &st.Attempts, &st.Succeeded}
	for i := range st.LatencyBuckets {
		dest = append(dest, &st.LatencyBuckets[i])
	}
	if err := t.x.Row(ctx, Replica, webhookStats, endpointID, t.d.TimeValue(since)).Scan(dest...); err != nil {
		return store.WebhookStats{}, t.errorf("webhook delivery stats of %q: %w", endpointID, t.d.MapErr(err))
	}
	err := t.x.Rows(ctx, Replica, `SELECT status_code, COUNT(*) FROM webhook_attempts
		WHERE endpoint_id = $1 AND at >= $2 AND status_code NOT BETWEEN 200 AND 299 GROUP BY status_code`,
		[]any{endpointID, t.d.TimeValue(since)}, func(r sqlrow.Scanner) error {
			var code, n int
			if err := r.Scan(&code, &n); err != nil {
				return err
			}
			st.ByStatus[code] = n
			return nil
		})
	if err != nil {
		return store.WebhookStats{}, t.errorf("webhook delivery stats of %q: %w", endpointID, t.d.MapErr(err))
	}
	return st, nil
}

// PendingWebhookDeliveries implements store.WebhookStore from the partial
// index of pending deliveries; it may run on a read replica.
func (t *Tables) PendingWebhookDeliveries(ctx context.Context) (int, time.Time, error) {
	var (
		n      int
		oldest time.Time
	)
	err := t.x.Row(ctx, Replica, "SELECT COUNT(*), MIN(created_at) FROM webhook_deliveries WHERE status = 'pending'").
		Scan(&n, t.d.NullTimeDest(&oldest))
	if err != nil {
		return 0, time.Time{}, t.errorf("pending webhook deliveries: %w", t.d.MapErr(err))
	}
	if !oldest.IsZero() {
		oldest = oldest.UTC()
	}
	return n, oldest, nil
}

// PurgeWebhookDeliveries implements store.WebhookStore with two
// statements: should the second fail, the next purge removes the events it
// left.
func (t *Tables) PurgeWebhookDeliveries(ctx context.Context, before time.Time) (int, error) {
	if before.IsZero() {
		return 0, t.errorf("purge webhook deliveries: zero time")
	}
	b := t.d.TimeValue(before)
	n, err := t.x.Exec(ctx, "DELETE FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending'", b)
	if err != nil {
		return 0, t.errorf("purge webhook deliveries: %w", t.d.MapErr(err))
	}
	_, err = t.x.Exec(ctx, `DELETE FROM webhook_events WHERE created_at < $1
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE webhook_deliveries.event_id = webhook_events.id)`, b)
	if err != nil {
		return int(n), t.errorf("purge webhook events: %w", t.d.MapErr(err))
	}
	return int(n), nil
}
