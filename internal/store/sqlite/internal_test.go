package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
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
