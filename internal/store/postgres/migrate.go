package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse/gatehouse/internal/store/migrate"
)

// migrationLockKey is the pg_advisory_xact_lock key that serialises migration
// steps of every node. Advisory locks are per database, so databases sharing
// a server do not block each other.
const migrationLockKey int64 = 0x67617465686d6967 // "gatehmig" in ASCII

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    bigint      PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL
)`

// migrationDriver is migrate.Driver for PostgreSQL.
type migrationDriver struct {
	pool *pgxpool.Pool
}

// Locked takes the transaction-scoped advisory lock before anything else, so
// even creating schema_migrations cannot race with another node.
func (d migrationDriver) Locked(ctx context.Context, fn func(migrate.Tx) error) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, createSchemaMigrations); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		return fn(migrationTx{tx: tx})
	})
}

type migrationTx struct {
	tx pgx.Tx
}

// Exec runs script without arguments, which pgx sends over the simple query
// protocol, so a script may hold several statements.
func (t migrationTx) Exec(ctx context.Context, script string) error {
	_, err := t.tx.Exec(ctx, script)
	return err
}

func (t migrationTx) Applied(ctx context.Context) ([]migrate.Record, error) {
	rows, err := t.tx.Query(ctx, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (migrate.Record, error) {
		var r migrate.Record
		err := row.Scan(&r.Version, &r.Name, &r.AppliedAt)
		return r, err
	})
}

func (t migrationTx) Insert(ctx context.Context, r migrate.Record) error {
	_, err := t.tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", r.Version, r.Name, r.AppliedAt)
	return err
}

func (t migrationTx) Delete(ctx context.Context, version int) error {
	_, err := t.tx.Exec(ctx, "DELETE FROM schema_migrations WHERE version = $1", version)
	return err
}
