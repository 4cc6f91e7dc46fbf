package security

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// EscalateInterval is how often the escalation job runs: an incident is
// escalated at most this long after it is due.
const EscalateInterval = 5 * time.Minute

// EscalateArgs is the (empty) periodic job that escalates the incidents
// left open (Responder.Escalate).
type EscalateArgs struct{}

// Kind implements river.JobArgs.
func (EscalateArgs) Kind() string { return "security_escalate" }

// InsertOpts implements river.JobArgsWithInsertOpts: the default queue,
// three tries, one job per half period however many nodes schedule it.
func (EscalateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByPeriod: EscalateInterval / 2}}
}

// PeriodicEscalate returns the schedule of the escalation job, for
// jobs.Config.PeriodicJobs.
func PeriodicEscalate() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(EscalateInterval), func() (river.JobArgs, *river.InsertOpts) {
		return EscalateArgs{}, nil
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

// EscalateWorker runs Responder.Escalate until nothing is due.
type EscalateWorker struct {
	river.WorkerDefaults[EscalateArgs]
	Responder *Responder
}

// Work implements river.Worker.
func (w *EscalateWorker) Work(ctx context.Context, _ *river.Job[EscalateArgs]) error {
	for {
		n, err := w.Responder.Escalate(ctx, 100)
		if err != nil || n < 100 {
			return err
		}
	}
}
