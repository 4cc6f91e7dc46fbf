package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
)

// InTx implements store.Transactor. The transaction is READ COMMITTED on
// the primary; fn gets a Store whose every method, reads included, runs in
// it. fn's error or panic rolls back (the panic then continues); nil
// commits. On a transaction-bound store InTx runs fn in the same
// transaction: that is not a savepoint, so an error fn swallows still
// leaves the outer transaction to decide.
//
// Inside fn use tx, never the Store InTx was called on: that one runs on
// other connections, outside the transaction, so it neither sees the
// transaction's writes nor is undone with it, and waits for any row the
// transaction has locked.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Store) error) error {
	return s.inTx(ctx, func(tx *Store) error { return fn(tx) })
}

func (s *Store) inTx(ctx context.Context, fn func(tx *Store) error) error {
	if s.tx != nil {
		return fn(s)
	}
	tx, err := s.primary.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", mapErr(err))
	}
	done := false
	defer func() {
		// fn failed, panicked or called runtime.Goexit (t.FailNow). Roll
		// back even if ctx is done; pgx closes the connection when that
		// fails.
		if !done {
			rctx, cancel := rollbackContext(ctx)
			defer cancel()
			_ = tx.Rollback(rctx)
		}
	}()
	if err := fn(s.bind(tx)); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", mapErr(err))
	}
	return nil
}

// bind returns a Store that runs every statement in tx.
func (s *Store) bind(tx pgx.Tx) *Store {
	b := &Store{
		primary:  s.primary,
		replicas: s.replicas,
		next:     s.next,
		migrator: s.migrator,
		now:      s.now,
		q:        tx,
		tx:       tx,
	}
	b.tables = sqldb.New(dialect, executor{b}, b.now)
	return b
}

// DriverTx implements store.Transactor: the pgx.Tx inside InTx, nil
// outside.
func (s *Store) DriverTx() any {
	if s.tx == nil {
		return nil
	}
	return s.tx
}

// rollbackTimeout bounds a rollback. It runs even when the request's
// context is done, but must not hang on a database that stopped
// answering; pgx closes a connection whose rollback failed.
const rollbackTimeout = 5 * time.Second

func rollbackContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
}
