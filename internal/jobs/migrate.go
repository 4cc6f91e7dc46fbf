package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
)

// MigrationStatus describes River's schema in the database.
type MigrationStatus struct {
	Current int   // highest applied River migration, 0 when none
	Latest  int   // highest migration this build of River knows
	Pending []int // known migrations not applied yet, in order
}

// Migrate creates or upgrades River's tables (river_job, river_leader, …)
// to the version this build of River needs. Migrations already applied are
// skipped, so running it again is harmless. On PostgreSQL a transaction
// advisory lock, held on a separate connection, keeps two processes
// migrating at once from colliding. Each River migration runs in its own
// transaction.
func (q *Queue) Migrate(ctx context.Context) error {
	return q.withMigrationLock(ctx, func() error {
		applied, err := q.eng.migrateUp(ctx)
		if err != nil {
			return fmt.Errorf("jobs: migrate river schema: %w", err)
		}
		if len(applied) > 0 {
			q.logger.InfoContext(ctx, "jobs: applied river migrations",
				slog.String("database", q.dialect), slog.Any("versions", applied))
		}
		return nil
	})
}

// MigrateStatus reports which River migrations the database has.
func (q *Queue) MigrateStatus(ctx context.Context) (MigrationStatus, error) {
	applied, all, err := q.eng.migrationVersions(ctx)
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("jobs: river migration status: %w", err)
	}
	var st MigrationStatus
	for _, v := range applied {
		st.Current = max(st.Current, v)
	}
	for _, v := range all {
		st.Latest = max(st.Latest, v)
		if !slices.Contains(applied, v) {
			st.Pending = append(st.Pending, v)
		}
	}
	return st, nil
}
