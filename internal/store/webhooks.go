package store

import (
	"context"
	"time"
)

// Webhook delivery statuses.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt
	DeliveryDelivered = "delivered" // a 2xx answered an attempt
	DeliveryFailed    = "failed"    // its schedule is exhausted, or its endpoint is gone (the dead-letter queue)
)

// Why an endpoint was disabled (WebhookEndpoint.DisabledReason).
const (
	EndpointDisabledByAdmin = "admin"   // enabled: false through the admin API
	EndpointGone            = "gone"    // it answered 410 Gone
	EndpointFailing         = "failing" // every delivery failed for too long
)

// WebhookEndpoint is a customer URL that receives signed events.
type WebhookEndpoint struct {
	ID          string   // "whep_…", chosen by the caller
	URL         string   // absolute http(s) URL
	Events      []string // event types ("user.created") or patterns ("user.*", "*")
	Description string
	// OrganizationID, when set, scopes the endpoint: it receives only
	// events about that organisation's members (WebhookEvent.OrganizationIDs).
	// The organisation must exist (ErrNotFound otherwise); deleting it
	// deletes the endpoint.
	OrganizationID string
	Enabled        bool
	// DisabledReason is one of the EndpointDisabled… reasons exactly when
	// the endpoint is disabled, "" while enabled; anything else is refused.
	DisabledReason string
	// Secret is the signing secret sealed with the server's encryption
	// keys (internal/secret): the store never sees it in clear.
	Secret string
	// PreviousSecret, sealed, still signs alongside Secret until
	// PreviousSecretExpiresAt (a rotation's overlap); "" (and a zero
	// PreviousSecretExpiresAt) when none.
	PreviousSecret          string
	PreviousSecretExpiresAt time.Time
	// FailingSince is the time of the first failed attempt since the last
	// successful one (zero when the last attempt succeeded or none failed).
	FailingSince time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// WebhookEvent is one event recorded for delivery: the transactional
// outbox. It is written in the transaction of the change it describes.
type WebhookEvent struct {
	ID         string    // "msg_…": the webhook-id receivers deduplicate on
	Type       string    // "user.created"
	OccurredAt time.Time // the envelope's timestamp, to the microsecond, UTC (CreatedAt when zero)
	// Data is the envelope's data, a JSON object (nil is {}), kept byte
	// for byte so that every attempt signs the same body.
	Data []byte
	// UserID is the user the event is about ("" for none); OrganizationIDs
	// the organisations that user belongs to when the event happened, which
	// decide which organisation-scoped endpoints get it.
	UserID          string
	OrganizationIDs []string
	CreatedAt       time.Time // now when zero
}

// WebhookAttempt is one try of a delivery.
type WebhookAttempt struct {
	At         time.Time
	StatusCode int           // 0: no HTTP answer (network error, timeout, refused destination)
	Latency    time.Duration // stored to the millisecond (truncated)
	// Error ("" on success; never carries a secret) and Response are
	// stored as text: invalid UTF-8 becomes U+FFFD and NUL bytes are
	// dropped, so a receiver's answer never fails the recording.
	Error string
	// Response is the start of the response body, cut to
	// WebhookResponseLimit bytes (on a character boundary) by the store.
	Response string
}

// WebhookResponseLimit is how much of a response body an attempt keeps.
const WebhookResponseLimit = 4 << 10

// WebhookDelivery is one event to one endpoint, and its attempts.
type WebhookDelivery struct {
	ID         string // "whdl_…", chosen by the caller
	EndpointID string
	EventID    string
	// EventType is the event's type, which the store copies from the event
	// (what the caller sets is ignored).
	EventType string
	Status    string // DeliveryPending, DeliveryDelivered or DeliveryFailed
	// Attempts, oldest first (GetWebhookDelivery and
	// ListWebhookDeliveries fill it).
	Attempts []WebhookAttempt
	// NextAttemptAt is when a pending delivery is tried next (zero when
	// not pending). The store keeps it zero unless pending, and makes a
	// zero one of a pending delivery "now" (CreatedAt on creation).
	NextAttemptAt time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Delivery listing page sizes.
const (
	DefaultDeliveryLimit = 50
	MaxDeliveryLimit     = 200
)

// WebhookDeliveryFilter selects deliveries of one endpoint. Empty fields
// do not filter.
type WebhookDeliveryFilter struct {
	EndpointID string // required
	Status     string
	EventType  string
	Since      time.Time // CreatedAt >= Since
	Until      time.Time // CreatedAt < Until
	// Cursor is the next-page cursor of a previous call with the same
	// filter; a foreign one is ErrInvalidCursor.
	Cursor string
	// Limit is the page size: DefaultDeliveryLimit when <= 0, at most
	// MaxDeliveryLimit.
	Limit int
}

// WebhookStats summarises the attempts of one endpoint since a time.
type WebhookStats struct {
	Deliveries int // deliveries created since
	Delivered  int // of those, delivered
	Failed     int // of those, failed (dead letters)
	Attempts   int
	Succeeded  int // attempts answered 2xx
	// ByStatus counts the failed attempts by HTTP status code; 0 is "no
	// answer" (network error, timeout, refused destination).
	ByStatus map[int]int
	// LatencyBuckets counts attempts by latency: LatencyBuckets[i] is the
	// number of attempts with latency <= WebhookLatencyBounds[i] (and above
	// the previous bound); the last entry counts those above every bound.
	// Percentiles are read from it.
	LatencyBuckets []int
}

// WebhookLatencyBounds are the upper bounds of WebhookStats.LatencyBuckets.
var WebhookLatencyBounds = []time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// WebhookStore keeps webhook endpoints, the events recorded for them and
// their deliveries. Times are kept to the microsecond in UTC.
type WebhookStore interface {
	// CreateWebhookEndpoint stores e (CreatedAt and UpdatedAt set to now
	// when zero); ErrConflict on a duplicate ID.
	CreateWebhookEndpoint(ctx context.Context, e WebhookEndpoint) (WebhookEndpoint, error)
	// GetWebhookEndpoint returns the endpoint with this ID, or ErrNotFound.
	GetWebhookEndpoint(ctx context.Context, id string) (WebhookEndpoint, error)
	// GetWebhookEndpointForUpdate is GetWebhookEndpoint that also locks
	// the row until the end of the transaction (inside InTx), so that a
	// read-modify-write of the endpoint cannot lose a concurrent change
	// (the delivery worker disabling it, another rotation).
	GetWebhookEndpointForUpdate(ctx context.Context, id string) (WebhookEndpoint, error)
	// ListWebhookEndpoints returns every endpoint, oldest first.
	ListWebhookEndpoints(ctx context.Context) ([]WebhookEndpoint, error)
	// ListEnabledWebhookEndpoints returns the enabled endpoints, oldest
	// first: those an event is matched against. Never from a replica.
	ListEnabledWebhookEndpoints(ctx context.Context) ([]WebhookEndpoint, error)
	// UpdateWebhookEndpoint replaces every field of the endpoint with e.ID
	// but CreatedAt, and sets UpdatedAt (now when zero); ErrNotFound if
	// absent.
	UpdateWebhookEndpoint(ctx context.Context, e WebhookEndpoint) (WebhookEndpoint, error)
	// DeleteWebhookEndpoint removes the endpoint and its deliveries;
	// ErrNotFound if absent.
	DeleteWebhookEndpoint(ctx context.Context, id string) error
	// MarkWebhookEndpointResult records the outcome of an attempt on the
	// endpoint: ok clears FailingSince; a failure sets it to at unless it is
	// already set. It returns the endpoint as updated; ErrNotFound if
	// absent.
	MarkWebhookEndpointResult(ctx context.Context, id string, ok bool, at time.Time) (WebhookEndpoint, error)

	// CreateWebhookEvent stores ev; ErrConflict on a duplicate ID.
	CreateWebhookEvent(ctx context.Context, ev WebhookEvent) error
	// GetWebhookEvent returns the event with this ID, or ErrNotFound.
	GetWebhookEvent(ctx context.Context, id string) (WebhookEvent, error)

	// CreateWebhookDeliveries stores ds (their Attempts ignored; Status
	// pending, CreatedAt now and UpdatedAt CreatedAt when zero) in one
	// multi-row statement (several in one transaction when there are very
	// many); ErrConflict on a duplicate ID and ErrNotFound for an endpoint
	// or event that does not exist, and then none is stored.
	CreateWebhookDeliveries(ctx context.Context, ds []WebhookDelivery) error
	// GetWebhookDelivery returns the delivery with its attempts, or
	// ErrNotFound.
	GetWebhookDelivery(ctx context.Context, id string) (WebhookDelivery, error)
	// RecordWebhookAttempt appends a to the delivery's attempts and sets its
	// Status and NextAttemptAt (zero unless pending; now when pending and
	// zero) in one transaction (the caller's, inside InTx); it returns the
	// delivery as updated (with every attempt), or ErrNotFound. Concurrent
	// calls on one delivery run one after the other: none is lost.
	RecordWebhookAttempt(ctx context.Context, id string, a WebhookAttempt, status string, next time.Time) (WebhookDelivery, error)
	// RequeueWebhookDelivery sets the delivery pending with NextAttemptAt
	// next, now when zero (a retry or replay by an operator), keeping its
	// attempts, and returns it with them; ErrNotFound if absent.
	RequeueWebhookDelivery(ctx context.Context, id string, next time.Time) (WebhookDelivery, error)
	// ListWebhookDeliveries returns the deliveries matching f with their
	// attempts, newest first (ties by descending ID), and the cursor of the
	// next page ("" on the last). An endpoint that does not exist has no
	// deliveries.
	ListWebhookDeliveries(ctx context.Context, f WebhookDeliveryFilter) ([]WebhookDelivery, string, error)
	// WebhookDeliveryStats summarises the deliveries of the endpoint created
	// at or after since and the attempts made at or after since, aggregated
	// by the database (it never loads every row); a zero since counts
	// everything. The figures may come from a read replica.
	WebhookDeliveryStats(ctx context.Context, endpointID string, since time.Time) (WebhookStats, error)
	// PendingWebhookDeliveries counts the pending deliveries and returns the
	// CreatedAt of the oldest (zero when none), for metrics. It may read a
	// replica.
	PendingWebhookDeliveries(ctx context.Context) (count int, oldest time.Time, err error)
	// PurgeWebhookDeliveries removes the deliveries (and attempts) created
	// before before that are no longer pending, then the events no delivery
	// refers to any more that were created before before; it returns how
	// many deliveries it removed.
	PurgeWebhookDeliveries(ctx context.Context, before time.Time) (int, error)
}
