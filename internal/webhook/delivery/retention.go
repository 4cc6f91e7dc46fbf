package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/require"
)

// DefaultRetention is how long delivery records are kept.
const DefaultRetention = 30 * 24 * time.Hour

// PurgeInterval is how often the retention job runs.
const PurgeInterval = time.Hour

// PurgeArgs is the (empty) periodic job that removes old delivery
// records.
type PurgeArgs struct{}

// Kind implements river.JobArgs.
func (PurgeArgs) Kind() string { return "webhook_purge" }

// InsertOpts implements river.JobArgsWithInsertOpts: the default queue,
// three tries, one job per half period however many nodes schedule it.
func (PurgeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByPeriod: PurgeInterval / 2}}
}

// PeriodicPurge returns the schedule of the retention job, for
// jobs.Config.PeriodicJobs: every PurgeInterval, and once at start.
func PeriodicPurge() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(PurgeInterval), func() (river.JobArgs, *river.InsertOpts) {
		return PurgeArgs{}, nil
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

// Purger removes old deliveries, as store.WebhookStore does.
type Purger interface {
	PurgeWebhookDeliveries(ctx context.Context, before time.Time) (int, error)
}

// PurgeDeps are what a PurgeWorker is built from.
type PurgeDeps struct {
	Store Purger
	// Retention is how long deliveries are kept after they were created
	// (DefaultRetention when 0). Pending ones are kept whatever their age.
	Retention time.Duration
	Now       func() time.Time
	Log       *slog.Logger
}

// PurgeWorker removes the deliveries (with their attempts) older than the
// retention that are no longer pending, and the events no delivery needs
// any more.
type PurgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	d PurgeDeps
}

// NewPurgeWorker checks d and builds the worker.
func NewPurgeWorker(d PurgeDeps) (*PurgeWorker, error) {
	if err := require.Deps("webhook retention", map[string]bool{"Store": d.Store != nil}); err != nil {
		return nil, err
	}
	if d.Retention < 0 {
		return nil, errors.New("webhook retention: negative retention")
	}
	if d.Retention == 0 {
		d.Retention = DefaultRetention
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &PurgeWorker{d: d}, nil
}

// Work implements river.Worker.
func (w *PurgeWorker) Work(ctx context.Context, _ *river.Job[PurgeArgs]) error {
	before := w.d.Now().UTC().Add(-w.d.Retention)
	n, err := w.d.Store.PurgeWebhookDeliveries(ctx, before)
	if err != nil {
		return fmt.Errorf("webhook retention: %w", err)
	}
	w.d.Log.InfoContext(ctx, "webhook deliveries purged", slog.Int("deliveries", n), slog.Time("before", before))
	return nil
}
