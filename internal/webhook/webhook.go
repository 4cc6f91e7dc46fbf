// Package webhook is the webhook domain: the endpoints administrators
// register and their subscriptions, the transactional outbox that records
// the webhook events of every change in the change's own transaction, and
// the admin API over both (delivery logs, retry, replay and statistics).
//
// The attempts themselves (signing, safe destinations, the River worker,
// dead letters, retention) are package delivery's; this package enqueues
// one delivery.DeliverArgs job per delivery it creates or requeues, in the
// transaction that writes the delivery, so a delivery exists exactly when
// its job does.
package webhook

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

// Errors mapped to problems by the HTTP layer (see Errors).
var (
	// ErrEndpointNotFound is an unknown endpoint ID.
	ErrEndpointNotFound = errors.New("webhook: no such endpoint")
	// ErrDeliveryNotFound is an unknown delivery ID.
	ErrDeliveryNotFound = errors.New("webhook: no such delivery")
	// ErrEndpointDisabled is a test, retry or replay asked of a disabled
	// endpoint: nothing would be sent to it. Enable it first (PATCH
	// enabled: true).
	ErrEndpointDisabled = errors.New("webhook: the endpoint is disabled")
	// ErrDeliveryPending is a retry of a delivery that is pending already:
	// its job will make the next attempt, and a second job would send it
	// twice at once.
	ErrDeliveryPending = errors.New("webhook: the delivery is pending already")
	// ErrReplayTooLarge is a replay matching more than MaxReplay
	// deliveries.
	ErrReplayTooLarge = errors.New("webhook: too many deliveries to replay at once")
)

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrEndpointNotFound, http.StatusNotFound, "not_found", "No webhook endpoint has this ID."),
		httpapi.MapError(ErrDeliveryNotFound, http.StatusNotFound, "not_found", "No webhook delivery has this ID."),
		httpapi.MapError(ErrEndpointDisabled, http.StatusConflict, "endpoint_disabled", "The webhook endpoint is disabled; enable it first."),
		httpapi.MapError(ErrDeliveryPending, http.StatusConflict, "delivery_pending", "The delivery is pending already: its next attempt is scheduled."),
		httpapi.MapError(ErrReplayTooLarge, http.StatusUnprocessableEntity, "replay_too_large",
			"More than 1000 deliveries match; replay a narrower window (since and until)."),
	}
}

// Tables are the tables the webhook use cases read and write: endpoints,
// events and deliveries, the memberships that decide what an
// organisation-scoped endpoint receives, and the audit log.
type Tables interface {
	store.WebhookStore
	store.AuditLog
	// UserOrganizations returns the organisations the user belongs to.
	UserOrganizations(ctx context.Context, userID string) ([]store.Organization, error)
}

// Tx is the store inside one of the webhook use cases' transactions, and
// the transaction of a change whose events Record writes to the outbox.
type Tx interface {
	Tables
	// DriverTx is the driver's transaction, for jobs enqueued with it.
	DriverTx() any
}

// Store is the storage the webhook use cases need (see store.Narrow).
type Store interface {
	Tables
	InTx(ctx context.Context, fn func(Tx) error) error
}

// JobInserter enqueues jobs in the caller's database transaction
// (jobs.Queue).
type JobInserter interface {
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
	InsertManyTx(ctx context.Context, tx any, params []river.InsertManyParams) ([]int64, error)
}

// Deps are what the webhook service is built from (see New).
type Deps struct {
	Store Store
	Jobs  JobInserter
	// Keyring seals the signing secrets (*secret.Keyring).
	Keyring delivery.Sealer
	// NewSecret makes an endpoint's signing secret ("whsec_" and the
	// base64 of 24 or more random bytes): delivery.NewSecret.
	NewSecret func() (string, error)
	// CheckDestination returns nil when rawURL may receive deliveries
	// (delivery.Destinations.Check: the scheme allowed, and every address
	// the host resolves to). The 422 answer of a refusal shows the
	// administrator the Reason of a *delivery.DestinationError, or else
	// the error's message.
	CheckDestination func(ctx context.Context, rawURL string) error
	// SecretOverlap is how long an endpoint's old secret keeps signing
	// alongside the new one after RotateSecret
	// (GATEHOUSE_WEBHOOK_SECRET_OVERLAP, 24 h by default there). Zero or
	// less: none, the old secret stops at once.
	SecretOverlap time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// Log defaults to a logger that discards.
	Log *slog.Logger
	// NewID returns a new ID with the given prefix ("whep_", "msg_",
	// "whdl_"); by default the prefix and the 32 hex digits of a UUIDv7,
	// so that IDs sort by creation time.
	NewID func(prefix string) (string, error)
}

// Service implements the webhook use cases. Build it with New; it is not
// changed afterwards.
type Service struct{ d Deps }

// New checks d and builds the service.
func New(d Deps) (*Service, error) {
	if err := require.Deps("webhook", map[string]bool{
		"Store": d.Store != nil, "Jobs": d.Jobs != nil, "Keyring": d.Keyring != nil,
		"NewSecret": d.NewSecret != nil, "CheckDestination": d.CheckDestination != nil,
	}); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.NewID == nil {
		d.NewID = newID
	}
	return &Service{d: d}, nil
}

func (s *Service) now() time.Time { return s.d.Now().UTC() }

// ID prefixes.
const (
	endpointPrefix = "whep_"
	eventPrefix    = "msg_"
	deliveryPrefix = "whdl_"
)

// newID is prefix followed by the hex digits of a new UUIDv7.
func newID(prefix string) (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(u[:]), nil
}

// auditEvent is an audit entry for an action of the administrator m
// describes on the endpoint subject.
func (s *Service) auditEvent(m httpapi.Meta, subject, action string, data map[string]any) store.AuditEvent {
	return store.AuditEvent{
		OccurredAt: s.now(), ActorID: m.ActorID, SubjectID: subject, Action: action,
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: data,
	}
}
