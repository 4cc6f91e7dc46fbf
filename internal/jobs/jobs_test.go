package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

type testArgs struct {
	Name       string `json:"name"`
	Secret     string `json:"secret,omitempty"`
	RetryLater bool   `json:"retry_later,omitempty"`
}

func (testArgs) Kind() string { return "jobs_test" }

// testWorker retries a failed job after 10 ms, or after an hour when the
// job asks for RetryLater.
type testWorker struct {
	river.WorkerDefaults[testArgs]
	work func(context.Context, *river.Job[testArgs]) error
}

func (w *testWorker) Work(ctx context.Context, job *river.Job[testArgs]) error {
	return w.work(ctx, job)
}

func (w *testWorker) NextRetry(job *river.Job[testArgs]) time.Time {
	if job.Args.RetryLater {
		return time.Now().Add(time.Hour)
	}
	return time.Now().Add(10 * time.Millisecond)
}

func workersFor(work func(context.Context, *river.Job[testArgs]) error) *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, &testWorker{work: work})
	return w
}

// runCounter counts worker runs by job name.
type runCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *runCounter) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[string]int)
	}
	c.n[name]++
}

func (c *runCounter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// logBuffer collects log output written from River's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newQueue makes a Queue with fast polling that is stopped when the test
// ends, logging into a buffer shown if the test fails.
func newQueue(t *testing.T, d database, workers *river.Workers, cfg Config) (*Queue, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of %s queue:\n%s", d.name(), logs)
		}
	})
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if cfg.FetchCooldown == 0 {
		cfg.FetchCooldown = 10 * time.Millisecond
	}
	if cfg.FetchPollInterval == 0 {
		cfg.FetchPollInterval = 50 * time.Millisecond
	}
	q, err := d.newQueue(workers, cfg)
	if err != nil {
		t.Fatalf("new queue: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return q, logs
}

// startedQueue makes a Queue on a migrated database and starts it.
func startedQueue(t *testing.T, d database, workers *river.Workers, cfg Config) (*Queue, *logBuffer) {
	t.Helper()
	q, logs := newQueue(t, d, workers, cfg)
	if err := q.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return q, logs
}

func mustInsert(t *testing.T, q *Queue, args testArgs, opts *river.InsertOpts) int64 {
	t.Helper()
	id, err := q.Insert(t.Context(), args, opts)
	if err != nil {
		t.Fatalf("insert %q: %v", args.Name, err)
	}
	return id
}

func jobRow(t *testing.T, q *Queue, id int64) *rivertype.JobRow {
	t.Helper()
	row, err := q.eng.jobGet(t.Context(), id)
	if err != nil {
		t.Fatalf("get job %d: %v", id, err)
	}
	return row
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitForState(t *testing.T, q *Queue, id int64, state rivertype.JobState) *rivertype.JobRow {
	t.Helper()
	var row *rivertype.JobRow
	waitFor(t, "job "+string(state), func() bool {
		row = jobRow(t, q, id)
		return row.State == state
	})
	return row
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func succeed(context.Context, *river.Job[testArgs]) error { return nil }

// runSuite runs every behaviour test against databases made by open.
func runSuite(t *testing.T, open func(*testing.T) database) {
	t.Run("Migrate", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		q, _ := newQueue(t, d, workersFor(succeed), Config{})
		ctx := t.Context()

		st, err := q.MigrateStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Current != 0 || st.Latest == 0 || len(st.Pending) != st.Latest {
			t.Fatalf("fresh database: status %+v, want nothing applied", st)
		}
		if err := q.Start(ctx); !errors.Is(err, ErrNotMigrated) {
			t.Fatalf("Start before Migrate = %v, want ErrNotMigrated", err)
		}

		for range 2 {
			if err := q.Migrate(ctx); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			got, err := q.MigrateStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := MigrationStatus{Current: st.Latest, Latest: st.Latest}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("status after Migrate (-want +got):\n%s", diff)
			}
		}
		if err := q.Start(ctx); err != nil {
			t.Fatalf("Start after Migrate: %v", err)
		}
	})

	t.Run("ConcurrentMigrate", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		if d.name() == "sqlite" {
			t.Skip("SQLite is embedded in one process; Migrate takes no cross-process lock there")
		}
		const n = 4
		queues := make([]*Queue, n)
		for i := range queues {
			queues[i], _ = newQueue(t, d, nil, Config{})
		}
		errs := make(chan error, n)
		for _, q := range queues {
			go func() { errs <- q.Migrate(t.Context()) }()
		}
		for range n {
			if err := receive(t, errs, "Migrate"); err != nil {
				t.Errorf("concurrent Migrate: %v", err)
			}
		}
	})

	t.Run("InsertOnly", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		q, _ := newQueue(t, d, nil, Config{})
		if err := q.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := q.Start(t.Context()); !errors.Is(err, ErrInsertOnly) {
			t.Fatalf("Start = %v, want ErrInsertOnly", err)
		}
		id := mustInsert(t, q, testArgs{Name: "queued"}, nil)
		if row := jobRow(t, q, id); row.State != rivertype.JobStateAvailable || row.Kind != "jobs_test" {
			t.Fatalf("job %d is %s %s, want available jobs_test", id, row.State, row.Kind)
		}
		periodic := river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return testArgs{}, nil }, nil)
		if _, err := d.newQueue(nil, Config{PeriodicJobs: []*river.PeriodicJob{periodic}}); err == nil {
			t.Fatal("periodic jobs without workers were accepted")
		}
	})

	t.Run("RetriesThenCompletes", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		var attempts atomic.Int32
		q, logs := startedQueue(t, d, workersFor(func(_ context.Context, job *river.Job[testArgs]) error {
			attempts.Add(1)
			if job.Attempt == 1 {
				return errors.New("smtp: 451 try again later")
			}
			return nil
		}), Config{})

		const secret = "hunter2-must-not-be-logged"
		id := mustInsert(t, q, testArgs{Name: "flaky", Secret: secret}, nil)
		row := waitForState(t, q, id, rivertype.JobStateCompleted)
		if row.Attempt != 2 || attempts.Load() != 2 {
			t.Fatalf("completed on attempt %d after %d runs, want 2 and 2", row.Attempt, attempts.Load())
		}
		if len(row.Errors) != 1 || !strings.Contains(row.Errors[0].Error, "451") {
			t.Fatalf("recorded errors %+v, want the first attempt's", row.Errors)
		}
		out := logs.String()
		for _, want := range []string{"job failed, will retry", "job_kind=jobs_test", "attempt=1", "451"} {
			if !strings.Contains(out, want) {
				t.Errorf("logs lack %q", want)
			}
		}
		if strings.Contains(out, secret) {
			t.Error("logs contain the job's arguments")
		}
	})

	t.Run("SurvivesRestart", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		var runs runCounter
		workers := workersFor(func(_ context.Context, job *river.Job[testArgs]) error {
			runs.add(job.Args.Name)
			return nil
		})

		first, _ := startedQueue(t, d, workers, Config{})
		if err := first.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		afterStop := mustInsert(t, first, testArgs{Name: "after-stop"}, nil)
		cli, _ := newQueue(t, d, nil, Config{})
		fromCLI := mustInsert(t, cli, testArgs{Name: "from-cli"}, nil)
		if n := runs.get("from-cli") + runs.get("after-stop"); n != 0 {
			t.Fatalf("%d jobs ran on a queue that was not working", n)
		}

		d.reopen(t)
		second, _ := startedQueue(t, d, workers, Config{})
		waitForState(t, second, fromCLI, rivertype.JobStateCompleted)
		waitForState(t, second, afterStop, rivertype.JobStateCompleted)
		if err := second.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"from-cli", "after-stop"} {
			if n := runs.get(name); n != 1 {
				t.Errorf("job %s ran %d times, want once", name, n)
			}
		}
	})

	t.Run("GracefulStop", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		var runs runCounter
		started := make(chan struct{})
		proceed := make(chan struct{})
		q, _ := startedQueue(t, d, workersFor(func(ctx context.Context, job *river.Job[testArgs]) error {
			runs.add(job.Args.Name)
			if job.Args.Name != "slow" {
				return nil
			}
			close(started)
			<-proceed
			select {
			case <-time.After(300 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}), Config{MaxWorkers: 1})

		slow := mustInsert(t, q, testArgs{Name: "slow"}, nil)
		receive(t, started, "slow job to start")
		// The only worker is busy, so this job waits and must still be
		// waiting once Stop has returned.
		next := mustInsert(t, q, testArgs{Name: "next"}, nil)
		close(proceed)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if row := jobRow(t, q, slow); row.State != rivertype.JobStateCompleted {
			t.Errorf("running job is %s after Stop, want completed", row.State)
		}
		if row := jobRow(t, q, next); row.State != rivertype.JobStateAvailable || row.Attempt != 0 {
			t.Errorf("waiting job is %s (attempt %d) after Stop, want available, never tried", row.State, row.Attempt)
		}
		if n := runs.get("next"); n != 0 {
			t.Errorf("job inserted before Stop ran %d times after Stop began", n)
		}
	})

	t.Run("StopDeadlineCancelsJobs", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		var block atomic.Bool
		block.Store(true)
		started := make(chan struct{}, 1)
		workers := workersFor(func(ctx context.Context, _ *river.Job[testArgs]) error {
			if !block.Load() {
				return nil
			}
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		q, _ := startedQueue(t, d, workers, Config{})
		id := mustInsert(t, q, testArgs{Name: "stubborn"}, nil)
		receive(t, started, "job to start")

		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := q.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop = %v, want one wrapping context.DeadlineExceeded", err)
		}
		row := jobRow(t, q, id)
		if row.State != rivertype.JobStateAvailable || row.Attempt != 0 {
			t.Fatalf("cancelled job is %s (attempt %d), want available again, attempt not counted", row.State, row.Attempt)
		}

		block.Store(false)
		next, _ := startedQueue(t, d, workers, Config{})
		waitForState(t, next, id, rivertype.JobStateCompleted)
	})

	t.Run("InsertTx", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		d.exec(t, "CREATE TABLE thing (name TEXT PRIMARY KEY)")
		var runs runCounter
		q, _ := startedQueue(t, d, workersFor(func(_ context.Context, job *river.Job[testArgs]) error {
			runs.add(job.Args.Name)
			return nil
		}), Config{})
		// A Queue that ignored tx would wait for SQLite's only connection,
		// which tx holds; fail instead of hanging.
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()

		tx := d.begin(t)
		if err := tx.exec("INSERT INTO thing (name) VALUES ('rolled-back')"); err != nil {
			t.Fatal(err)
		}
		if _, err := q.InsertTx(ctx, tx.raw(), testArgs{Name: "rolled-back"}, nil); err != nil {
			t.Fatalf("InsertTx: %v", err)
		}
		if err := tx.rollback(); err != nil {
			t.Fatal(err)
		}

		tx = d.begin(t)
		if err := tx.exec("INSERT INTO thing (name) VALUES ('committed')"); err != nil {
			t.Fatal(err)
		}
		ids, err := q.InsertManyTx(ctx, tx.raw(), []river.InsertManyParams{
			{Args: testArgs{Name: "committed-1"}},
			{Args: testArgs{Name: "committed-2"}},
		})
		if err != nil {
			t.Fatalf("InsertManyTx: %v", err)
		}
		if err := tx.commit(); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			waitForState(t, q, id, rivertype.JobStateCompleted)
		}

		if n := d.count(t, "SELECT count(*) FROM river_job"); n != 2 {
			t.Errorf("%d jobs in river_job, want the 2 committed", n)
		}
		if n := d.count(t, "SELECT count(*) FROM thing"); n != 1 {
			t.Errorf("%d rows in thing, want 1", n)
		}
		for name, want := range map[string]int{"rolled-back": 0, "committed-1": 1, "committed-2": 1} {
			if n := runs.get(name); n != want {
				t.Errorf("job %s ran %d times, want %d", name, n, want)
			}
		}

		for _, bad := range []any{nil, "tx", (*sql.Tx)(nil)} {
			if _, err := q.InsertTx(ctx, bad, testArgs{Name: "bad"}, nil); !errors.Is(err, ErrTxType) {
				t.Errorf("InsertTx with %T = %v, want ErrTxType", bad, err)
			}
		}
	})

	t.Run("Stats", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		release := make(chan struct{})
		q, _ := newQueue(t, d, workersFor(func(ctx context.Context, job *river.Job[testArgs]) error {
			switch job.Args.Name {
			case "fail":
				return errors.New("boom")
			case "cancel":
				return river.JobCancel(errors.New("no longer wanted"))
			case "block":
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}), Config{})
		ctx := t.Context()
		if err := q.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := q.Stats(ctx); err != nil || got != (Stats{}) {
			t.Fatalf("Stats on empty database = %+v, %v", got, err)
		}

		ids, err := q.InsertMany(ctx, []river.InsertManyParams{
			{Args: testArgs{Name: "ok"}},
			{Args: testArgs{Name: "ok"}},
			{Args: testArgs{Name: "fail"}, InsertOpts: &river.InsertOpts{MaxAttempts: 1}},
			{Args: testArgs{Name: "fail", RetryLater: true}, InsertOpts: &river.InsertOpts{MaxAttempts: 5}},
			{Args: testArgs{Name: "cancel"}},
			{Args: testArgs{Name: "block"}},
			{Args: testArgs{Name: "later"}, InsertOpts: &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}},
			{Args: testArgs{Name: "elsewhere"}, InsertOpts: &river.InsertOpts{Queue: "not_worked_here"}},
		})
		if err != nil {
			t.Fatalf("InsertMany: %v", err)
		}
		if len(ids) != 8 {
			t.Fatalf("InsertMany returned %d ids, want 8", len(ids))
		}
		if row := jobRow(t, q, ids[7]); row.Queue != "not_worked_here" {
			t.Fatalf("last id is a job of queue %q; ids are not in insert order", row.Queue)
		}
		if err := q.Start(ctx); err != nil {
			t.Fatal(err)
		}

		want := Stats{Available: 1, Scheduled: 1, Running: 1, Retryable: 1, Completed: 2, Discarded: 1, Cancelled: 1}
		var got Stats
		waitFor(t, "stats to settle", func() bool {
			got, err = q.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return got == want
		})
		close(release)
		waitFor(t, "blocked job to complete", func() bool {
			got, err = q.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return got.Running == 0 && got.Completed == 3
		})
		if n := got.ByState()["completed"]; n != 3 {
			t.Errorf(`ByState()["completed"] = %d, want 3`, n)
		}
	})

	t.Run("PeriodicJob", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		ran := make(chan string, 10)
		periodic := river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return testArgs{Name: "sweep"}, nil },
			&river.PeriodicJobOpts{RunOnStart: true})
		startedQueue(t, d, workersFor(func(_ context.Context, job *river.Job[testArgs]) error {
			select {
			case ran <- job.Args.Name:
			default:
			}
			return nil
		}), Config{PeriodicJobs: []*river.PeriodicJob{periodic}})
		if name := receive(t, ran, "periodic job"); name != "sweep" {
			t.Fatalf("ran job %q, want the periodic one", name)
		}
	})
}
