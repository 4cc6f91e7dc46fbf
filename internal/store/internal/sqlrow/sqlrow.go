// Package sqlrow holds what the SQL backends (postgres, sqlite) share about
// turning store values into rows and back: row scanning, input
// normalisation and keyset cursors. The SQL itself stays in each backend.
package sqlrow

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

// Scanner is a single row: pgx.Row, pgx.Rows, *sql.Row and *sql.Rows all
// satisfy it.
type Scanner interface {
	Scan(dest ...any) error
}

// WithExtra returns a Scanner that scans the row's trailing columns into
// extra after the destinations a scan helper passes: for queries that
// select a helper's columns plus a few more.
func WithExtra(s Scanner, extra ...any) Scanner { return extraScanner{s, extra} }

type extraScanner struct {
	s     Scanner
	extra []any
}

func (e extraScanner) Scan(dest ...any) error { return e.s.Scan(append(dest, e.extra...)...) }

// UserEmailColumn selects the email of a row's user_id in the same query.
const UserEmailColumn = "(SELECT u.email FROM users u WHERE u.id = refresh_tokens.user_id)"

// TimeDest adapts a *time.Time to what the driver scans a time column into.
// PostgreSQL scans timestamptz straight into *time.Time; SQLite stores
// integers and passes a sql.Scanner that converts.
type TimeDest func(*time.Time) any

// Null returns nil for "" and s otherwise, so optional strings are stored as
// NULL.
func Null(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// AuditColumns is the column list ScanAuditEvent expects, in order.
const AuditColumns = "id, occurred_at, actor_id, subject_id, action, ip, user_agent, request_id, data, created_at"

// ScanAuditEvent scans one row selected with AuditColumns.
func ScanAuditEvent(s Scanner, td TimeDest) (store.AuditEvent, error) {
	var (
		e                                 store.AuditEvent
		actor, subject, ip, ua, requestID *string
		data                              []byte
	)
	if err := s.Scan(&e.ID, td(&e.OccurredAt), &actor, &subject, &e.Action, &ip, &ua, &requestID, &data, td(&e.CreatedAt)); err != nil {
		return store.AuditEvent{}, err
	}
	e.ActorID, e.SubjectID, e.IP, e.UserAgent, e.RequestID = deref(actor), deref(subject), deref(ip), deref(ua), deref(requestID)
	e.OccurredAt, e.CreatedAt = e.OccurredAt.UTC(), e.CreatedAt.UTC()
	e.Data = map[string]any{}
	if err := json.Unmarshal(data, &e.Data); err != nil {
		return store.AuditEvent{}, fmt.Errorf("decode data of audit event %s: %w", e.ID, err)
	}
	return e, nil
}

// PrepareAuditEvent validates e and fills in what the caller may leave out:
// a UUIDv7 ID, OccurredAt = now. It returns the event with its ID in
// canonical form and OccurredAt in UTC truncated to the microsecond, and its
// Data encoded as a JSON object.
func PrepareAuditEvent(e store.AuditEvent, now time.Time) (store.AuditEvent, []byte, error) {
	if e.Action == "" {
		return store.AuditEvent{}, nil, errors.New("audit event: action is required")
	}
	if e.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return store.AuditEvent{}, nil, fmt.Errorf("audit event: generate id: %w", err)
		}
		e.ID = id.String()
	} else {
		id, err := uuid.Parse(e.ID)
		if err != nil {
			return store.AuditEvent{}, nil, fmt.Errorf("audit event: id %q is not a UUID", e.ID)
		}
		e.ID = id.String()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = now
	}
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return store.AuditEvent{}, nil, fmt.Errorf("audit event: encode data: %w", err)
	}
	return e, raw, nil
}

// AuditLimit applies the default and the maximum to a requested page size.
func AuditLimit(n int) int { return PageLimit(n, store.DefaultAuditLimit, store.MaxAuditLimit) }

// AuditPage trims events, fetched with limit+1 rows, to limit and returns the
// cursor of the next page ("" when there is none).
func AuditPage(events []store.AuditEvent, limit int) ([]store.AuditEvent, string) {
	return Page(events, limit, func(e store.AuditEvent) string { return EncodeCursor(e.OccurredAt, e.ID) })
}

// cursorVersion prefixes the cursor payload so its format can change later
// without misreading old cursors.
const cursorVersion = "1"

// Cursor times are limited to years 1 to 9999, which every backend can
// compare against.
var (
	minCursorMicros = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxCursorMicros = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
)

// EncodeCursor returns the opaque keyset cursor positioned after the row with
// occurred_at t and id.
func EncodeCursor(t time.Time, id string) string {
	payload := cursorVersion + "." + strconv.FormatInt(t.UnixMicro(), 10) + "." + id
	return base64.RawURLEncoding.EncodeToString([]byte(payload))
}

// DecodeCursor reverses EncodeCursor. Any malformed input is an error
// wrapping store.ErrInvalidCursor.
func DecodeCursor(s string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: not base64url", store.ErrInvalidCursor)
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 || parts[0] != cursorVersion {
		return time.Time{}, "", fmt.Errorf("%w: unknown format", store.ErrInvalidCursor)
	}
	micros, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || strconv.FormatInt(micros, 10) != parts[1] || micros < minCursorMicros || micros > maxCursorMicros {
		return time.Time{}, "", fmt.Errorf("%w: bad time", store.ErrInvalidCursor)
	}
	id, err := uuid.Parse(parts[2])
	if err != nil || id.String() != parts[2] {
		return time.Time{}, "", fmt.Errorf("%w: bad id", store.ErrInvalidCursor)
	}
	return time.UnixMicro(micros).UTC(), parts[2], nil
}
