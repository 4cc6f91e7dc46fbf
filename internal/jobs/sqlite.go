package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// NewSQLite returns a Queue on the SQLite database db, opened with
// modernc.org/sqlite (driver name "sqlite").
//
// db should be Gatehouse's writer pool: WAL journal, a busy timeout and
// SetMaxOpenConns(1). River's SQLite driver asks for a single connection,
// because River's many concurrent statements otherwise fail with
// SQLITE_BUSY; it serialises everything River does with Gatehouse's own
// writes, which SQLite serialises anyway. A consequence: never call Insert
// (or anything else that needs a connection of db) while holding a
// transaction on db; use InsertTx with that *sql.Tx.
//
// With workers nil the Queue can only insert jobs (for CLI commands);
// otherwise every job kind inserted must have a worker in workers.
func NewSQLite(db *sql.DB, workers *river.Workers, cfg Config) (*Queue, error) {
	if db == nil {
		return nil, errors.New("jobs: nil sql.DB")
	}
	rc, logger, err := riverConfig(cfg, workers)
	if err != nil {
		return nil, err
	}
	if n := db.Stats().MaxOpenConnections; n != 1 {
		logger.Warn("jobs: SQLite pool should have exactly one connection (SetMaxOpenConns(1)); River may hit SQLITE_BUSY",
			"max_open_conns", n)
	}
	eng, err := newEngine(riversqlite.New(db), rc, logger, func(tx any) (*sql.Tx, error) {
		t, ok := tx.(*sql.Tx)
		if !ok || t == nil {
			return nil, fmt.Errorf("%w: got %T, SQLite needs a non-nil *sql.Tx", ErrTxType, tx)
		}
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	return &Queue{
		dialect: "sqlite",
		eng:     eng,
		logger:  logger,
		working: workers != nil,
		countStates: func(ctx context.Context) (map[string]int64, error) {
			rows, err := db.QueryContext(ctx, `SELECT state, count(*) FROM river_job GROUP BY state`)
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
		// SQLite is embedded in one Gatehouse process; River's migrator
		// skips applied versions, and each version runs in one BEGIN
		// IMMEDIATE transaction (the DSN's _txlock=immediate).
		withMigrationLock: func(_ context.Context, fn func() error) error { return fn() },
	}, nil
}
