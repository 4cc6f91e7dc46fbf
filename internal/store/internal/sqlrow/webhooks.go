package sqlrow

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/internal/store"
)

// WebhookEndpointColumns is the column list ScanWebhookEndpoint expects, in
// order; the values WebhookEndpointValues returns are in the same order.
const WebhookEndpointColumns = "id, url, events, description, organization_id, enabled, disabled_reason, " +
	"secret, previous_secret, previous_secret_expires_at, failing_since, created_at, updated_at"

// ScanWebhookEndpoint scans one row selected with WebhookEndpointColumns.
// td scans a NOT NULL time column, ntd a nullable one. Empty Events come
// back nil.
func ScanWebhookEndpoint(s Scanner, td, ntd TimeDest, ld ListDest) (store.WebhookEndpoint, error) {
	var (
		e                                        store.WebhookEndpoint
		description, org, reason, previousSecret *string
	)
	if err := s.Scan(&e.ID, &e.URL, ld(&e.Events), &description, &org, &e.Enabled, &reason,
		&e.Secret, &previousSecret, ntd(&e.PreviousSecretExpiresAt), ntd(&e.FailingSince),
		td(&e.CreatedAt), td(&e.UpdatedAt)); err != nil {
		return store.WebhookEndpoint{}, err
	}
	e.Description, e.OrganizationID, e.DisabledReason, e.PreviousSecret = deref(description), deref(org), deref(reason), deref(previousSecret)
	e.Events = nilIfEmpty(e.Events)
	utc(&e.PreviousSecretExpiresAt, &e.FailingSince, &e.CreatedAt, &e.UpdatedAt)
	return e, nil
}

// WebhookEndpointValues returns the values of the WebhookEndpointColumns
// columns of an endpoint PrepareWebhookEndpoint returned, in order.
func WebhookEndpointValues(e store.WebhookEndpoint, tv TimeValue, lv ListValue) []any {
	return []any{e.ID, e.URL, lv(e.Events), Null(e.Description), Null(e.OrganizationID), e.Enabled, Null(e.DisabledReason),
		e.Secret, Null(e.PreviousSecret), tv(e.PreviousSecretExpiresAt), tv(e.FailingSince),
		tv(e.CreatedAt), tv(e.UpdatedAt)}
}

// validDisabledReason reports whether r is one of the reasons an endpoint
// is disabled for; the migrations hold the same list in a CHECK constraint.
func validDisabledReason(r string) bool {
	switch r {
	case store.EndpointDisabledByAdmin, store.EndpointGone, store.EndpointFailing:
		return true
	}
	return false
}

// PrepareWebhookEndpoint validates e for CreateWebhookEndpoint or
// UpdateWebhookEndpoint and fills in its times: CreatedAt (now when zero)
// and UpdatedAt (CreatedAt when zero), every time to the microsecond. An
// OrganizationID must be a UUID and comes back in canonical form.
func PrepareWebhookEndpoint(e store.WebhookEndpoint, now time.Time) (store.WebhookEndpoint, error) {
	switch {
	case !Storable(e.ID) || !Storable(e.URL) || !Storable(e.Secret):
		return e, errors.New("webhook endpoint: ID, URL and Secret are required (UTF-8 text without NUL)")
	case !validText(e.Description) || !validText(e.PreviousSecret):
		return e, errors.New("webhook endpoint: Description and PreviousSecret must be UTF-8 text without NUL")
	case e.Enabled && e.DisabledReason != "":
		return e, errors.New("webhook endpoint: an enabled endpoint has no DisabledReason")
	case !e.Enabled && !validDisabledReason(e.DisabledReason):
		return e, fmt.Errorf("webhook endpoint: a disabled endpoint needs a DisabledReason (admin, gone or failing), not %q", e.DisabledReason)
	case (e.PreviousSecret == "") != e.PreviousSecretExpiresAt.IsZero():
		return e, errors.New("webhook endpoint: PreviousSecret and PreviousSecretExpiresAt go together")
	}
	if e.OrganizationID != "" {
		org, ok := ParseID(e.OrganizationID)
		if !ok {
			return e, fmt.Errorf("webhook endpoint: organization %q: %w", e.OrganizationID, store.ErrNotFound)
		}
		e.OrganizationID = org
	}
	var err error
	if e.Events, err = prepareList("webhook endpoint: Events", e.Events); err != nil {
		return e, err
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	e.CreatedAt, e.UpdatedAt = Micro(e.CreatedAt), Micro(e.UpdatedAt)
	e.PreviousSecretExpiresAt, e.FailingSince = microOrZero(e.PreviousSecretExpiresAt), microOrZero(e.FailingSince)
	return e, nil
}

// WebhookEventColumns is the column list ScanWebhookEvent expects, in
// order; the values WebhookEventValues returns are in the same order.
const WebhookEventColumns = "id, type, occurred_at, data, user_id, organization_ids, created_at"

// ScanWebhookEvent scans one row selected with WebhookEventColumns. Data
// comes back as stored, byte for byte; empty OrganizationIDs come back nil.
func ScanWebhookEvent(s Scanner, td TimeDest, ld ListDest) (store.WebhookEvent, error) {
	var (
		ev   store.WebhookEvent
		data []byte
		user *string
	)
	if err := s.Scan(&ev.ID, &ev.Type, td(&ev.OccurredAt), &data, &user, ld(&ev.OrganizationIDs), td(&ev.CreatedAt)); err != nil {
		return store.WebhookEvent{}, err
	}
	ev.Data = bytes.Clone(data) // a driver may reuse its buffer for the next row
	ev.UserID = deref(user)
	ev.OrganizationIDs = nilIfEmpty(ev.OrganizationIDs)
	utc(&ev.OccurredAt, &ev.CreatedAt)
	return ev, nil
}

// WebhookEventValues returns the values of the WebhookEventColumns columns
// of an event PrepareWebhookEvent returned, in order.
func WebhookEventValues(ev store.WebhookEvent, tv TimeValue, lv ListValue) []any {
	return []any{ev.ID, ev.Type, tv(ev.OccurredAt), string(ev.Data), Null(ev.UserID), lv(ev.OrganizationIDs), tv(ev.CreatedAt)}
}

// PrepareWebhookEvent validates ev for CreateWebhookEvent: ID and Type
// required, Data a JSON object (nil is {}), kept byte for byte. A zero
// CreatedAt is now, a zero OccurredAt is CreatedAt; times to the
// microsecond.
func PrepareWebhookEvent(ev store.WebhookEvent, now time.Time) (store.WebhookEvent, error) {
	switch {
	case !Storable(ev.ID) || !Storable(ev.Type):
		return ev, errors.New("webhook event: ID and Type are required (UTF-8 text without NUL)")
	case !validText(ev.UserID):
		return ev, errors.New("webhook event: UserID must be UTF-8 text without NUL")
	}
	if ev.Data == nil {
		ev.Data = []byte("{}")
	}
	if !jsonObject(ev.Data) {
		return ev, errors.New("webhook event: Data must be a JSON object in UTF-8 without NUL")
	}
	var err error
	if ev.OrganizationIDs, err = prepareList("webhook event: OrganizationIDs", ev.OrganizationIDs); err != nil {
		return ev, err
	}
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = now
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = ev.CreatedAt
	}
	ev.CreatedAt, ev.OccurredAt = Micro(ev.CreatedAt), Micro(ev.OccurredAt)
	return ev, nil
}

// jsonObject reports whether b is one JSON object that every backend
// stores as it is: valid UTF-8 without a NUL byte (an escaped \u0000 is
// fine).
func jsonObject(b []byte) bool {
	if !json.Valid(b) || !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// WebhookDeliveryColumns is the column list ScanWebhookDelivery expects,
// in order.
const WebhookDeliveryColumns = "id, endpoint_id, event_id, event_type, status, next_attempt_at, created_at, updated_at"

// ScanWebhookDelivery scans one row selected with WebhookDeliveryColumns,
// without its attempts.
func ScanWebhookDelivery(s Scanner, td, ntd TimeDest) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	if err := s.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Status, ntd(&d.NextAttemptAt),
		td(&d.CreatedAt), td(&d.UpdatedAt)); err != nil {
		return store.WebhookDelivery{}, err
	}
	utc(&d.NextAttemptAt, &d.CreatedAt, &d.UpdatedAt)
	return d, nil
}

// ValidDeliveryStatus reports whether s is a delivery status; the
// migrations hold the same list in a CHECK constraint.
func ValidDeliveryStatus(s string) bool {
	switch s {
	case store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
		return true
	}
	return false
}

// DeliveryNext returns the NextAttemptAt a delivery in status is stored
// with: the zero time unless pending, next (now when zero) to the
// microsecond when pending.
func DeliveryNext(status string, next, now time.Time) time.Time {
	if status != store.DeliveryPending {
		return time.Time{}
	}
	if next.IsZero() {
		next = now
	}
	return Micro(next)
}

// PrepareWebhookDeliveries validates ds for CreateWebhookDeliveries and
// fills in what the caller may leave out: Status pending, CreatedAt now,
// UpdatedAt CreatedAt, a pending delivery's NextAttemptAt CreatedAt (due at
// once). The slice returned is a copy, without attempts; every time to the
// microsecond. EventType is left alone: the statement takes the event's.
func PrepareWebhookDeliveries(ds []store.WebhookDelivery, now time.Time) ([]store.WebhookDelivery, error) {
	out := make([]store.WebhookDelivery, len(ds))
	for i, d := range ds {
		if d.Status == "" {
			d.Status = store.DeliveryPending
		}
		switch {
		case !Storable(d.ID) || !Storable(d.EndpointID) || !Storable(d.EventID):
			return nil, fmt.Errorf("webhook delivery %d: ID, EndpointID and EventID are required (UTF-8 text without NUL)", i)
		case !ValidDeliveryStatus(d.Status):
			return nil, fmt.Errorf("webhook delivery %q: unknown status %q", d.ID, d.Status)
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = now
		}
		if d.UpdatedAt.IsZero() {
			d.UpdatedAt = d.CreatedAt
		}
		d.CreatedAt, d.UpdatedAt = Micro(d.CreatedAt), Micro(d.UpdatedAt)
		d.NextAttemptAt = DeliveryNext(d.Status, d.NextAttemptAt, d.CreatedAt)
		d.Attempts = nil
		out[i] = d
	}
	return out, nil
}

// WebhookAttemptColumns is the column list ScanWebhookAttempt expects, in
// order.
const WebhookAttemptColumns = "at, status_code, latency_ms, error, response"

// ScanWebhookAttempt scans one row selected with WebhookAttemptColumns.
func ScanWebhookAttempt(s Scanner, td TimeDest) (store.WebhookAttempt, error) {
	var (
		a               store.WebhookAttempt
		latency         int64
		message, answer *string
	)
	if err := s.Scan(td(&a.At), &a.StatusCode, &latency, &message, &answer); err != nil {
		return store.WebhookAttempt{}, err
	}
	a.At = a.At.UTC()
	a.Latency = time.Duration(latency) * time.Millisecond
	a.Error, a.Response = deref(message), deref(answer)
	return a, nil
}

// PrepareWebhookAttempt validates a for RecordWebhookAttempt and returns it
// as it is stored: At required, to the microsecond; StatusCode 0 to 999;
// Latency not negative, truncated to the millisecond; Error and Response
// made storable text (see StorableText), Response cut to
// store.WebhookResponseLimit bytes.
func PrepareWebhookAttempt(a store.WebhookAttempt) (store.WebhookAttempt, error) {
	switch {
	case a.At.IsZero():
		return a, errors.New("webhook attempt: At is required")
	case a.StatusCode < 0 || a.StatusCode > 999:
		return a, fmt.Errorf("webhook attempt: status code %d out of range", a.StatusCode)
	case a.Latency < 0:
		return a, fmt.Errorf("webhook attempt: negative latency %v", a.Latency)
	}
	a.At = Micro(a.At)
	a.Latency = a.Latency.Truncate(time.Millisecond)
	a.Error = StorableText(a.Error)
	a.Response = truncateText(StorableText(a.Response), store.WebhookResponseLimit)
	return a, nil
}

// StorableText returns s as every backend can store it: each invalid UTF-8
// sequence replaced by U+FFFD and every NUL removed. It is for text that
// comes from elsewhere (a receiver's answer), which must be kept rather
// than refused.
func StorableText(s string) string {
	if validText(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// truncateText cuts valid UTF-8 s to at most n bytes without splitting a
// character.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DeliveryLimit applies the default and the maximum to a requested page
// size.
func DeliveryLimit(n int) int {
	return PageLimit(n, store.DefaultDeliveryLimit, store.MaxDeliveryLimit)
}

// DeliveryPage trims ds, fetched with limit+1 rows, to limit and returns the
// cursor of the next page ("" when there is none).
func DeliveryPage(ds []store.WebhookDelivery, limit int) ([]store.WebhookDelivery, string) {
	return Page(ds, limit, func(d store.WebhookDelivery) string { return EncodeDeliveryCursor(d.CreatedAt, d.ID) })
}

// deliveryCursorVersion prefixes the payload of a delivery listing's
// cursor; other listings' cursors have other prefixes, so they do not
// decode as one.
const deliveryCursorVersion = "d1"

// EncodeDeliveryCursor returns the opaque keyset cursor positioned after
// the delivery created at t with this id.
func EncodeDeliveryCursor(t time.Time, id string) string {
	return EncodeKeyCursor(deliveryCursorVersion, t, id)
}

// DecodeDeliveryCursor reverses EncodeDeliveryCursor. Malformed input or
// another listing's cursor is an error wrapping store.ErrInvalidCursor.
func DecodeDeliveryCursor(s string) (time.Time, string, error) {
	return DecodeKeyCursor(deliveryCursorVersion, s)
}

// PageLimit applies a listing's default (for n <= 0) and maximum to a
// requested page size.
func PageLimit(n, def, maxN int) int {
	switch {
	case n <= 0:
		return def
	case n > maxN:
		return maxN
	}
	return n
}

// Page trims rows, fetched with limit+1, to limit and returns the cursor of
// the next page, cursor of the last row kept ("" when there is none).
func Page[T any](rows []T, limit int, cursor func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursor(rows[limit-1])
}

// EncodeKeyCursor returns the opaque keyset cursor of a listing ordered by
// (time, id), positioned after the row at t with this id. prefix names the
// listing (and its format's version): one listing's cursor does not decode
// as another's.
func EncodeKeyCursor(prefix string, t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(prefix + "." + strconv.FormatInt(t.UnixMicro(), 10) + "." + id))
}

// DecodeKeyCursor reverses EncodeKeyCursor for the listing prefix.
// Malformed input or another listing's cursor is an error wrapping
// store.ErrInvalidCursor.
func DecodeKeyCursor(prefix, s string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: not base64url", store.ErrInvalidCursor)
	}
	parts := strings.SplitN(string(raw), ".", 3)
	if len(parts) != 3 || parts[0] != prefix {
		return time.Time{}, "", fmt.Errorf("%w: unknown format", store.ErrInvalidCursor)
	}
	micros, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || strconv.FormatInt(micros, 10) != parts[1] || micros < minCursorMicros || micros > maxCursorMicros {
		return time.Time{}, "", fmt.Errorf("%w: bad time", store.ErrInvalidCursor)
	}
	// Every backend must be able to compare against the ID.
	if !Storable(parts[2]) {
		return time.Time{}, "", fmt.Errorf("%w: bad id", store.ErrInvalidCursor)
	}
	return time.UnixMicro(micros).UTC(), parts[2], nil
}

// LatencyBucketsSQL is the list of aggregates that count the attempts in
// each bucket of store.WebhookLatencyBounds (latency_ms compared with each
// bound in milliseconds), for the select list of a statement over
// webhook_attempts.
var LatencyBucketsSQL = latencyBucketsSQL(store.WebhookLatencyBounds)

func latencyBucketsSQL(bounds []time.Duration) string {
	cols := make([]string, 0, len(bounds)+1)
	lower := int64(-1)
	for _, b := range bounds {
		ms := b.Milliseconds()
		cond := "latency_ms <= " + strconv.FormatInt(ms, 10)
		if lower >= 0 {
			cond = "latency_ms > " + strconv.FormatInt(lower, 10) + " AND " + cond
		}
		cols = append(cols, fmt.Sprintf("COUNT(CASE WHEN %s THEN 1 END) AS latency_%d", cond, len(cols)))
		lower = ms
	}
	cols = append(cols, fmt.Sprintf("COUNT(CASE WHEN latency_ms > %d THEN 1 END) AS latency_%d", lower, len(cols)))
	return strings.Join(cols, ", ")
}
