package jobs

import (
	"context"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

type lateArgs struct{}

func (lateArgs) Kind() string { return "jobs_test_late" }

type lateWorker struct {
	river.WorkerDefaults[lateArgs]
	done chan struct{}
}

func (w *lateWorker) Work(context.Context, *river.Job[lateArgs]) error {
	close(w.done)
	return nil
}

// TestWorkerAddedBeforeStart checks what the server's wiring relies on: a
// worker added to the bundle after the Queue is made (its services need
// the Queue to enqueue) but before Start works its jobs. River's client
// reads the bundle when it works a job, not only when it is made; this
// test catches an upgrade that changes that.
func TestWorkerAddedBeforeStart(t *testing.T) {
	for name, open := range map[string]func(*testing.T) database{"sqlite": openSQLite, "postgres": openPostgres} {
		t.Run(name, func(t *testing.T) {
			d := open(t)
			workers := workersFor(succeed)
			q, _ := newQueue(t, d, workers, Config{})
			w := &lateWorker{done: make(chan struct{})}
			if err := river.AddWorkerSafely(workers, w); err != nil {
				t.Fatal(err)
			}
			if err := q.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := q.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			id, err := q.Insert(t.Context(), lateArgs{}, nil)
			if err != nil {
				t.Fatalf("insert: %v", err)
			}
			receive(t, w.done, "the late worker's job")
			waitForState(t, q, id, rivertype.JobStateCompleted)
		})
	}
}
