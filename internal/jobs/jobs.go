// Package jobs runs Gatehouse's durable background jobs (emails, SMS,
// webhooks, cleanup) on River, on either PostgreSQL or the embedded SQLite
// database.
//
// A job is a row in River's river_job table, so it survives a restart: a
// job inserted by one process (the server, or a CLI command with an
// insert-only Queue) is worked by whichever Queue is started on the same
// database next. River's generic transaction type is hidden behind Queue, so
// the rest of Gatehouse does not care which database it runs on.
//
// Workers are registered by the caller with river.AddWorker on a
// river.Workers bundle. Job arguments are stored as JSON in the database;
// they are never logged by this package, but a worker's error message is,
// so errors must not carry secrets either.
//
// River's own tables are created by Queue.Migrate, which `gatehouse migrate
// up` runs after Gatehouse's own migrations.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Defaults applied by NewPostgres and NewSQLite to a zero Config.
const (
	DefaultMaxWorkers = 10

	// hardStopTimeout bounds how long Stop waits for cancelled jobs to return
	// once its own deadline has passed.
	hardStopTimeout = 10 * time.Second
)

var (
	// ErrInsertOnly is returned by Start on a Queue made without workers.
	ErrInsertOnly = errors.New("jobs: queue has no workers and can only insert")
	// ErrNotMigrated is returned by Start when River's schema is missing or
	// behind; run Migrate first.
	ErrNotMigrated = errors.New("jobs: river schema is not migrated")
	// ErrTxType is returned by InsertTx and InsertManyTx when tx is not the
	// transaction type of the Queue's database.
	ErrTxType = errors.New("jobs: wrong transaction type for this database")
)

// Config configures a Queue. The zero value is usable.
type Config struct {
	// MaxWorkers is the number of jobs of the default queue
	// (river.QueueDefault) worked at once. Default 10.
	MaxWorkers int
	// Queues optionally names further queues and how many of their jobs are
	// worked at once. The default queue is always worked; an entry for it
	// here overrides MaxWorkers.
	Queues map[string]int
	// Logger receives River's logs and one record per failed job attempt
	// (kind, id, attempt, error; never the job's arguments). Nil discards.
	Logger *slog.Logger
	// PeriodicJobs are enqueued by whichever started Queue on the database
	// is River's elected leader. Requires workers.
	PeriodicJobs []*river.PeriodicJob
	// JobTimeout cancels a job's context after this long. Zero means
	// River's default (1 minute); -1 means no timeout. A worker may
	// override it with its Timeout method.
	JobTimeout time.Duration
	// RescueStuckJobsAfter is how long a job may stay running before it is
	// considered abandoned (its process died) and retried. Must exceed
	// JobTimeout. Zero means River's default (1 hour, or JobTimeout + 1
	// hour if that is longer).
	RescueStuckJobsAfter time.Duration
	// FetchCooldown is the minimum time between two fetches of new jobs
	// (River's default 100 ms). FetchPollInterval is how often a queue
	// looks for jobs when it has not been notified of any (River's default
	// 1 s); a retry that is due within a few seconds is picked up on this
	// poll. Mostly knobs for tests.
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
}

// Queue enqueues jobs and, when made with workers, works them.
type Queue struct {
	dialect string
	eng     engine
	logger  *slog.Logger
	working bool
	// countStates returns the number of jobs per River state.
	countStates func(ctx context.Context) (map[string]int64, error)
	// withMigrationLock runs fn while holding a lock that keeps other
	// processes from migrating River's schema at the same time.
	withMigrationLock func(ctx context.Context, fn func() error) error
	// mapErr marks a database outage in an insert error (nil: none).
	mapErr func(error) error
}

// engine is a river.Client and rivermigrate.Migrator of one transaction
// type, seen without that type.
type engine interface {
	start(ctx context.Context) error
	stop(ctx context.Context) error
	stopAndCancel(ctx context.Context) error
	insertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	insertManyTx(ctx context.Context, tx any, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	jobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	migrateUp(ctx context.Context) ([]int, error)
	migrationVersions(ctx context.Context) (applied, all []int, err error)
}

// riverConfig turns cfg into River's configuration. workers nil gives an
// insert-only client.
func riverConfig(cfg Config, workers *river.Workers) (*river.Config, *slog.Logger, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rc := &river.Config{
		FetchCooldown:        cfg.FetchCooldown,
		FetchPollInterval:    cfg.FetchPollInterval,
		JobTimeout:           cfg.JobTimeout,
		Logger:               logger,
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
	}
	if workers == nil {
		if len(cfg.PeriodicJobs) > 0 {
			return nil, nil, errors.New("jobs: periodic jobs need workers")
		}
		return rc, logger, nil
	}
	maxWorkers := cfg.MaxWorkers
	if maxWorkers == 0 {
		maxWorkers = DefaultMaxWorkers
	}
	rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: maxWorkers}}
	for name, n := range cfg.Queues {
		rc.Queues[name] = river.QueueConfig{MaxWorkers: n}
	}
	rc.Workers = workers
	rc.PeriodicJobs = cfg.PeriodicJobs
	rc.ErrorHandler = failureLogger{logger}
	return rc, logger, nil
}

// Start begins working jobs in the background and returns. ctx bounds the
// start-up checks and its values reach every job, but cancelling it does
// not stop the Queue: call Stop. Start fails with ErrInsertOnly on a Queue
// without workers and with ErrNotMigrated before Migrate has run.
func (q *Queue) Start(ctx context.Context) error {
	if !q.working {
		return ErrInsertOnly
	}
	st, err := q.MigrateStatus(ctx)
	if err != nil {
		return fmt.Errorf("jobs: check river schema: %w", err)
	}
	if len(st.Pending) > 0 {
		return fmt.Errorf("%w: %s database at version %d of %d", ErrNotMigrated, q.dialect, st.Current, st.Latest)
	}
	if err := q.eng.start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	return nil
}

// Stop stops fetching new jobs at once and waits for running jobs to
// finish. If ctx ends first, the running jobs' contexts are cancelled and
// Stop waits (at most 10 s more) for them to return; a job that returns
// its context's error is put back to be run again later, without using up
// an attempt. Stop then returns an error wrapping ctx's error. Stop on a
// Queue that is not running does nothing.
func (q *Queue) Stop(ctx context.Context) error {
	err := q.eng.stop(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	q.logger.WarnContext(ctx, "jobs: stop deadline passed, cancelling running jobs")
	hardCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hardStopTimeout)
	defer cancel()
	if err := q.eng.stopAndCancel(hardCtx); err != nil {
		return fmt.Errorf("jobs: cancelled jobs did not return within %s: %w", hardStopTimeout, err)
	}
	return fmt.Errorf("jobs: running jobs cancelled at stop deadline: %w", err)
}

// Insert enqueues a job in its own transaction and returns its id. opts may
// be nil. For a unique job (opts.UniqueOpts) that already exists, the
// existing job's id is returned.
//
// With SQLite, whose connection pool has a single connection, never call
// Insert while holding an open transaction on the same database: it would
// wait for that connection forever. Use InsertTx.
func (q *Queue) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error) {
	ids, err := q.InsertMany(ctx, []river.InsertManyParams{{Args: args, InsertOpts: opts}})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// InsertTx enqueues a job inside the caller's transaction, so the job
// exists exactly when the caller's other writes in tx commit: a rolled-back
// transaction leaves no job, and a committed job is not worked before the
// commit. tx must be a pgx.Tx (for example from pgxpool.Pool.Begin) on a
// Queue from NewPostgres and a *sql.Tx on a Queue from NewSQLite, opened on
// the same database the Queue uses; any other value fails with ErrTxType.
func (q *Queue) InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error) {
	ids, err := q.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: args, InsertOpts: opts}})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// InsertMany enqueues several jobs in one transaction and returns their ids
// in order.
func (q *Queue) InsertMany(ctx context.Context, params []river.InsertManyParams) ([]int64, error) {
	if len(params) == 0 {
		return nil, nil
	}
	res, err := q.eng.insertMany(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("jobs: insert: %w", q.mapInsertErr(err))
	}
	return resultIDs(res), nil
}

// InsertManyTx is InsertMany inside the caller's transaction; see InsertTx.
func (q *Queue) InsertManyTx(ctx context.Context, tx any, params []river.InsertManyParams) ([]int64, error) {
	if len(params) == 0 {
		return nil, nil
	}
	res, err := q.eng.insertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("jobs: insert: %w", q.mapInsertErr(err))
	}
	return resultIDs(res), nil
}

// mapInsertErr marks a database outage during an insert as
// store.ErrUnavailable (a retryable 503), like the store's own errors.
func (q *Queue) mapInsertErr(err error) error {
	if q.mapErr == nil {
		return err
	}
	return q.mapErr(err)
}

func resultIDs(res []*rivertype.JobInsertResult) []int64 {
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids
}

// Stats counts jobs by River state.
type Stats struct {
	Pending   int64 // waiting on something outside River (River Pro workflows)
	Available int64 // ready to run
	Scheduled int64 // to run at a later time
	Running   int64
	Retryable int64 // failed, to be retried later
	Completed int64 // done, kept for CompletedJobRetentionPeriod (24 h)
	Discarded int64 // failed for the last time
	Cancelled int64
}

// ByState returns the counts keyed by River's state names ("available",
// "running", …), for a gauge with a state label.
func (s Stats) ByState() map[string]int64 {
	return map[string]int64{
		string(rivertype.JobStatePending):   s.Pending,
		string(rivertype.JobStateAvailable): s.Available,
		string(rivertype.JobStateScheduled): s.Scheduled,
		string(rivertype.JobStateRunning):   s.Running,
		string(rivertype.JobStateRetryable): s.Retryable,
		string(rivertype.JobStateCompleted): s.Completed,
		string(rivertype.JobStateDiscarded): s.Discarded,
		string(rivertype.JobStateCancelled): s.Cancelled,
	}
}

// Stats counts the jobs in the database by state with one query.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	counts, err := q.countStates(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("jobs: stats: %w", err)
	}
	return Stats{
		Pending:   counts[string(rivertype.JobStatePending)],
		Available: counts[string(rivertype.JobStateAvailable)],
		Scheduled: counts[string(rivertype.JobStateScheduled)],
		Running:   counts[string(rivertype.JobStateRunning)],
		Retryable: counts[string(rivertype.JobStateRetryable)],
		Completed: counts[string(rivertype.JobStateCompleted)],
		Discarded: counts[string(rivertype.JobStateDiscarded)],
		Cancelled: counts[string(rivertype.JobStateCancelled)],
	}, nil
}

// failureLogger logs every failed job attempt. It is River's ErrorHandler
// rather than an event subscription because handlers are called for every
// failure, while subscriptions drop events when their reader falls behind.
type failureLogger struct{ logger *slog.Logger }

func (l failureLogger) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	level, msg := slog.LevelWarn, "jobs: job failed, will retry"
	if job.Attempt >= job.MaxAttempts {
		level, msg = slog.LevelError, "jobs: job failed for the last time, discarded"
	}
	l.logger.Log(ctx, level, msg, jobAttrs(job, slog.String("error", err.Error()))...)
	return nil
}

func (l failureLogger) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	l.logger.ErrorContext(ctx, "jobs: job panicked",
		jobAttrs(job, slog.String("panic", fmt.Sprint(panicVal)), slog.String("stack", trace))...)
	return nil
}

func jobAttrs(job *rivertype.JobRow, extra ...slog.Attr) []any {
	attrs := []any{
		slog.String("job_kind", job.Kind),
		slog.Int64("job_id", job.ID),
		slog.String("queue", job.Queue),
		slog.Int("attempt", job.Attempt),
		slog.Int("max_attempts", job.MaxAttempts),
	}
	for _, a := range extra {
		attrs = append(attrs, a)
	}
	return attrs
}
