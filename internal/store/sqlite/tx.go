package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
)

// InTx implements store.Transactor. The transaction runs on the writer
// connection and begins IMMEDIATE, so it holds the database's write lock
// from start to end: keep it short, every other write of the process (and
// of other processes) waits for it. fn gets a Store whose every method,
// reads included, runs in the transaction. fn's error or panic rolls back
// (the panic then continues); nil commits. On a transaction-bound store
// InTx runs fn in the same transaction: that is not a savepoint, so an
// error fn swallows still leaves the outer transaction to decide.
//
// Inside fn use tx, never the Store InTx was called on: its reads do not
// see the transaction's writes, and its writes need the writer connection
// the transaction holds, so they fail after waiting BusyTimeout instead of
// running.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Store) error) error {
	return s.inTx(ctx, func(tx *Store) error { return fn(tx) })
}

func (s *Store) inTx(ctx context.Context, fn func(tx *Store) error) error {
	if s.tx != nil {
		return fn(s)
	}
	conn, err := s.writeConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", mapErr(err))
	}
	done := false
	defer func() {
		// fn failed, panicked or called runtime.Goexit (t.FailNow).
		if !done {
			_ = tx.Rollback()
		}
	}()
	if err := fn(s.bind(tx)); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", mapErr(err))
	}
	return nil
}

// bind returns a Store that runs every statement in tx.
func (s *Store) bind(tx *sql.Tx) *Store {
	b := &Store{
		writer:     s.writer,
		reader:     s.reader,
		migrator:   s.migrator,
		now:        s.now,
		writerWait: s.writerWait,
		tx:         tx,
	}
	b.tables = sqldb.New(dialect, executor{b}, b.now)
	return b
}

// DriverTx implements store.Transactor: the *sql.Tx inside InTx, nil
// outside.
func (s *Store) DriverTx() any {
	if s.tx == nil {
		return nil
	}
	return s.tx
}
