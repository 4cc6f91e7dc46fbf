package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// Every pooled connection gets its pragmas, not just the first one.
func TestPragmasOnEveryConnection(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	check := func(t *testing.T, c *sql.Conn, want map[string]string) {
		t.Helper()
		for name, want := range want {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+name).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", name, err)
			}
			if got != want {
				t.Errorf("PRAGMA %s = %s, want %s", name, got, want)
			}
		}
	}

	w, err := s.writer.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check(t, w, map[string]string{"journal_mode": "wal", "busy_timeout": "10000", "foreign_keys": "1", "synchronous": "1", "query_only": "0"})
	w.Close()

	// Holding several reader connections at once forces distinct ones.
	for i := range 4 {
		c, err := s.reader.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		check(t, c, map[string]string{"journal_mode": "wal", "busy_timeout": "10000", "foreign_keys": "1", "query_only": "1"})
		if _, err := c.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err == nil {
			t.Errorf("reader connection %d accepted a write", i)
		}
	}
	if st := s.writer.Stats(); st.MaxOpenConnections != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", st.MaxOpenConnections)
	}
}

// Writer transactions take the write lock at BEGIN, so one never fails
// half-way when upgrading from a read to a write.
func TestWriterTransactionsBeginImmediate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Another process's view: no busy timeout, so a held lock fails at once.
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, "BEGIN IMMEDIATE; ROLLBACK"); err != nil {
		t.Fatalf("write lock not free before the transaction: %v", err)
	}

	tx, err := s.Writer().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := other.ExecContext(ctx, "BEGIN IMMEDIATE; ROLLBACK"); err == nil {
		t.Error("another connection took the write lock while a writer transaction was open, want SQLITE_BUSY")
	}
}

// Inside InTx the transaction holds the only writer connection. A write on
// the store InTx was called on (instead of the transaction's store) from
// the same goroutine can never get it; it must fail after writerWait rather
// than wait for ever.
func TestWriteOutsideTxFailsInsteadOfDeadlocking(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	s.writerWait = 50 * time.Millisecond

	done := make(chan error, 1)
	go func() {
		done <- s.InTx(ctx, func(tx store.Store) error {
			if _, err := s.CreateUser(ctx, store.User{Email: "a@example.com", EmailNormalized: "a@example.com"}); !errors.Is(err, errWriterBusy) {
				return fmt.Errorf("CreateUser on the outer store inside InTx: err = %v, want errWriterBusy", err)
			}
			if err := s.InTx(ctx, func(store.Store) error { return nil }); !errors.Is(err, errWriterBusy) {
				return fmt.Errorf("InTx on the outer store inside InTx: err = %v, want errWriterBusy", err)
			}
			// Reads do not need the writer.
			if _, _, err := s.ListUsers(ctx, store.UserFilter{}); err != nil {
				return fmt.Errorf("ListUsers on the outer store inside InTx: %w", err)
			}
			_, err := tx.CreateUser(ctx, store.User{Email: "b@example.com", EmailNormalized: "b@example.com"})
			return err
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("InTx deadlocked")
	}
	// The writer is free again.
	if _, err := s.CreateUser(ctx, store.User{Email: "c@example.com", EmailNormalized: "c@example.com"}); err != nil {
		t.Errorf("CreateUser after InTx: %v", err)
	}
	if _, err := s.GetUserByEmail(ctx, "b@example.com"); err != nil {
		t.Errorf("the transaction's user: %v", err)
	}
}

// The store's transaction is an ordinary *sql.Tx on the writer, so the job
// queue can enqueue in it, and it begins IMMEDIATE like every writer
// transaction.
func TestInTxTakesWriteLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = s.InTx(ctx, func(tx store.Store) error {
		if _, err := other.ExecContext(ctx, "BEGIN IMMEDIATE; ROLLBACK"); err == nil {
			return errors.New("another connection took the write lock while InTx ran, want SQLITE_BUSY")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "BEGIN IMMEDIATE; ROLLBACK"); err != nil {
		t.Errorf("write lock not released after InTx: %v", err)
	}
}
