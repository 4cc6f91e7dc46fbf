package rbac

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/store"
)

// ExpireInterval is how often the role.expired job runs: a grant's expiry
// is recorded at most this long after it passes (it stops counting at
// once, whatever the job does).
const ExpireInterval = time.Minute

// ExpireLookback is how far back each run looks for expired grants: an
// expiry is recorded even when no node ran the job for this long (an
// outage). Each is recorded once: its audit event's ID derives from the
// grant.
const ExpireLookback = 24 * time.Hour

// ExpireArgs is the (empty) periodic job that records role.expired events.
type ExpireArgs struct{}

// Kind implements river.JobArgs.
func (ExpireArgs) Kind() string { return "rbac_role_expired" }

// InsertOpts implements river.JobArgsWithInsertOpts: the default queue,
// three tries, one job per half period however many nodes schedule it.
func (ExpireArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByPeriod: ExpireInterval / 2}}
}

// PeriodicExpire returns the schedule of the role.expired job, for
// jobs.Config.PeriodicJobs.
func PeriodicExpire() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(ExpireInterval), func() (river.JobArgs, *river.InsertOpts) {
		return ExpireArgs{}, nil
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

// ExpireStore is what the role.expired job reads and writes.
type ExpireStore interface {
	ListExpiredGrants(ctx context.Context, after, before time.Time) ([]store.RoleGrant, error)
	GetRole(ctx context.Context, id string) (store.Role, error)
	AppendAuditEvent(ctx context.Context, e store.AuditEvent) error
}

// ExpireWorker records a role.expired audit event for every grant whose
// ValidUntil passed within ExpireLookback, once per grant.
type ExpireWorker struct {
	river.WorkerDefaults[ExpireArgs]
	Store ExpireStore
	Now   func() time.Time
}

// expiredNamespace derives the IDs of role.expired events from their
// grants, so that a grant's expiry is recorded once whichever node and
// run sees it.
var expiredNamespace = uuid.MustParse("0192f000-0000-7000-8000-0000000000e1")

// Work implements river.Worker.
func (w *ExpireWorker) Work(ctx context.Context, _ *river.Job[ExpireArgs]) error {
	_, err := w.Run(ctx)
	return err
}

// Run records the expiries not yet recorded and returns how many it
// recorded.
func (w *ExpireWorker) Run(ctx context.Context) (int, error) {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	at := now().UTC()
	grants, err := w.Store.ListExpiredGrants(ctx, at.Add(-ExpireLookback), at)
	if err != nil {
		return 0, fmt.Errorf("role.expired: %w", err)
	}
	names := map[string]string{}
	n := 0
	for _, g := range grants {
		name, ok := names[g.RoleID]
		if !ok {
			r, err := w.Store.GetRole(ctx, g.RoleID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return n, fmt.Errorf("role.expired: %w", err)
			}
			name, names[g.RoleID] = r.Name, r.Name
		}
		data := map[string]any{
			"grant_id": g.ID, "role_id": g.RoleID, "role": name,
			"valid_until": g.ValidUntil.UTC().Format(time.RFC3339Nano),
		}
		if g.OrganizationID != "" {
			data["organization_id"] = g.OrganizationID
		}
		err := w.Store.AppendAuditEvent(ctx, store.AuditEvent{
			ID:         uuid.NewSHA1(expiredNamespace, []byte(g.ID+"|"+g.ValidUntil.UTC().Format(time.RFC3339Nano))).String(),
			OccurredAt: g.ValidUntil, SubjectID: g.UserID, Action: "role.expired", Data: data,
		})
		switch {
		case errors.Is(err, store.ErrConflict): // recorded by an earlier run
		case err != nil:
			return n, fmt.Errorf("role.expired: %w", err)
		default:
			n++
		}
	}
	return n, nil
}
