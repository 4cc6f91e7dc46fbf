package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/gatehouse/gatehouse/internal/store/migrate"
)

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
) STRICT`

// migrationDriver is migrate.Driver for SQLite. Transactions on the writer
// begin IMMEDIATE, which takes the database's write lock before the first
// statement; that serialises migration steps across processes, and the
// writer's single connection serialises them within one.
type migrationDriver struct {
	db *sql.DB
}

func (d migrationDriver) Locked(ctx context.Context, fn func(migrate.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	if _, err := tx.ExecContext(ctx, createSchemaMigrations); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := fn(migrationTx{tx: tx}); err != nil {
		return err
	}
	return tx.Commit()
}

type migrationTx struct {
	tx *sql.Tx
}

// Exec runs script without arguments; the driver executes every statement in
// it.
func (t migrationTx) Exec(ctx context.Context, script string) error {
	_, err := t.tx.ExecContext(ctx, script)
	return err
}

func (t migrationTx) Applied(ctx context.Context) ([]migrate.Record, error) {
	rows, err := t.tx.QueryContext(ctx, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []migrate.Record
	for rows.Next() {
		var r migrate.Record
		if err := rows.Scan(&r.Version, &r.Name, timeDest(&r.AppliedAt)); err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

func (t migrationTx) Insert(ctx context.Context, r migrate.Record) error {
	_, err := t.tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", r.Version, r.Name, r.AppliedAt.UnixMicro())
	return err
}

func (t migrationTx) Delete(ctx context.Context, version int) error {
	_, err := t.tx.ExecContext(ctx, "DELETE FROM schema_migrations WHERE version = ?", version)
	return err
}
