// Package maintenance runs Gatehouse's periodic housekeeping as a durable
// job: it purges expired sessions, refresh tokens, one-time tokens and
// retired signing keys, and rotates the signing key when it is due.
// Deny-list entries need no sweep: they carry their own TTL in the
// ephemeral store.
package maintenance

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
)

// Interval is how often the cleanup job runs.
const Interval = time.Hour

// Retention is how long ended sessions and used tokens are kept before
// they are deleted (for investigation of recent incidents).
const Retention = 7 * 24 * time.Hour

// Args are the (empty) arguments of the cleanup job.
type Args struct{}

// Kind implements river.JobArgs.
func (Args) Kind() string { return "maintenance.cleanup" }

// InsertOpts makes concurrent schedules collapse into one job per period.
func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByPeriod: Interval / 2}}
}

// Store is what the cleanup needs from storage.
type Store interface {
	PurgeSessions(ctx context.Context, before time.Time) (int64, error)
	PurgeOneTimeTokens(ctx context.Context, before time.Time) (int64, error)
	PurgeDenials(ctx context.Context, before time.Time) (int64, error)
}

// Keys is what the cleanup needs from the signing key manager.
type Keys interface {
	PurgeExpiredKeys(ctx context.Context) (int64, error)
	RotateIfOlder(ctx context.Context, maxAge time.Duration) (kid string, rotated bool, err error)
}

// Worker performs the cleanup.
type Worker struct {
	river.WorkerDefaults[Args]
	Store Store
	Keys  Keys
	// RotateAfter rotates the signing key when it is older (0: never).
	RotateAfter time.Duration
	Now         func() time.Time
	Log         *slog.Logger
}

// Work implements river.Worker. Each step runs even if an earlier one
// failed; the job fails (and is retried) if any did.
func (w *Worker) Work(ctx context.Context, _ *river.Job[Args]) error {
	cutoff := w.Now().UTC().Add(-Retention)
	var errs []error
	sessions, err := w.Store.PurgeSessions(ctx, cutoff)
	errs = append(errs, err)
	tokens, err := w.Store.PurgeOneTimeTokens(ctx, cutoff)
	errs = append(errs, err)
	keys, err := w.Keys.PurgeExpiredKeys(ctx)
	errs = append(errs, err)
	// A denial outlives the last token it refuses; once ended it is dead
	// weight in every deny-list rebuild.
	denials, err := w.Store.PurgeDenials(ctx, w.Now().UTC())
	errs = append(errs, err)
	var rotated bool
	if w.RotateAfter > 0 {
		var kid string
		kid, rotated, err = w.Keys.RotateIfOlder(ctx, w.RotateAfter)
		errs = append(errs, err)
		if rotated {
			w.Log.InfoContext(ctx, "rotated the signing key on schedule", "kid", kid)
		}
	}
	w.Log.InfoContext(ctx, "cleanup done", "sessions_purged", sessions, "one_time_tokens_purged", tokens, "signing_keys_purged", keys, "denials_purged", denials)
	return errors.Join(errs...)
}

// Periodic returns the schedule of the cleanup job.
func Periodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(Interval), func() (river.JobArgs, *river.InsertOpts) {
		return Args{}, nil
	}, &river.PeriodicJobOpts{RunOnStart: true})
}
