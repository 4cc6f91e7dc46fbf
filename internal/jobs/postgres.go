package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/gatehouse/gatehouse/internal/store/postgres"
)

// pgMigrationLockKey is the pg_advisory_xact_lock key held while River's
// schema is migrated ("gatehriv" in ASCII).
const pgMigrationLockKey int64 = 0x6761746568726976

// NewPostgres returns a Queue on the PostgreSQL database behind pool, with
// River's tables in the pool's search_path. With workers nil the Queue can
// only insert jobs (for CLI commands); otherwise every job kind inserted
// must have a worker in workers. InsertTx takes a pgx.Tx.
func NewPostgres(pool *pgxpool.Pool, workers *river.Workers, cfg Config) (*Queue, error) {
	if pool == nil {
		return nil, errors.New("jobs: nil pgxpool.Pool")
	}
	rc, logger, err := riverConfig(cfg, workers)
	if err != nil {
		return nil, err
	}
	eng, err := newEngine(riverpgxv5.New(pool), rc, logger, func(tx any) (pgx.Tx, error) {
		t, ok := tx.(pgx.Tx)
		if !ok {
			return nil, fmt.Errorf("%w: got %T, PostgreSQL needs a pgx.Tx", ErrTxType, tx)
		}
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	return &Queue{
		dialect: "postgres",
		eng:     eng,
		mapErr:  postgres.MapUnavailable,
		logger:  logger,
		working: workers != nil,
		countStates: func(ctx context.Context) (map[string]int64, error) {
			rows, err := pool.Query(ctx, `SELECT state::text, count(*) FROM river_job GROUP BY state`)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			counts := make(map[string]int64)
			for rows.Next() {
				var state string
				var n int64
				if err := rows.Scan(&state, &n); err != nil {
					return nil, err
				}
				counts[state] = n
			}
			return counts, rows.Err()
		},
		withMigrationLock: func(ctx context.Context, fn func() error) error {
			return withPGAdvisoryLock(ctx, pool, fn)
		},
	}, nil
}

// withPGAdvisoryLock runs fn while holding a transaction advisory lock on a
// connection of its own, outside pool, so fn can use every connection of
// pool (even a pool of one) and a transaction-pooling proxy keeps the lock
// and its release on one server connection.
func withPGAdvisoryLock(ctx context.Context, pool *pgxpool.Pool, fn func() error) error {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("jobs: connect for migration lock: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("jobs: migration lock: %w", err)
	}
	// Ending the transaction releases the lock; fn's work is on other
	// connections, so there is nothing here to commit. Closing conn would
	// release it as well, so a failed rollback does not matter.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgMigrationLockKey); err != nil {
		return fmt.Errorf("jobs: migration lock: %w", err)
	}
	return fn()
}
