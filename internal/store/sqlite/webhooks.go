package sqlite

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
)

// The webhook methods are shared with the other backend (sqldb); these two
// only add the transaction their statements need.

// CreateWebhookDeliveries implements store.WebhookStore: one multi-row
// INSERT, or, for more than sqldb.WebhookDeliveryChunk deliveries, one per
// chunk in a transaction (the caller's, inside InTx), so that none is
// stored when one fails.
func (s *Store) CreateWebhookDeliveries(ctx context.Context, ds []store.WebhookDelivery) error {
	if len(ds) <= sqldb.WebhookDeliveryChunk {
		return s.tables.InsertWebhookDeliveries(ctx, ds)
	}
	return s.inTx(ctx, func(tx *Store) error { return tx.tables.InsertWebhookDeliveries(ctx, ds) })
}

// RecordWebhookAttempt implements store.WebhookStore: the attempt and the
// delivery's new status are written in one transaction (the caller's,
// inside InTx). The transaction holds SQLite's write lock from BEGIN IMMEDIATE, so
// concurrent attempts run one after the other.
func (s *Store) RecordWebhookAttempt(ctx context.Context, id string, a store.WebhookAttempt, status string, next time.Time) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	err := s.inTx(ctx, func(tx *Store) error {
		var err error
		d, err = tx.tables.RecordWebhookAttemptTx(ctx, id, a, status, next)
		return err
	})
	return d, err
}
