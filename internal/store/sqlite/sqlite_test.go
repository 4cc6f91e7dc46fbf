package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/jobs"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	})
}

// Several processes (here: several stores) on one file all run Up at once;
// BEGIN IMMEDIATE and busy_timeout serialise them.
func TestUpFromSeveralStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	var stores []store.Store
	for range 4 {
		stores = append(stores, open(t, path))
	}
	storetest.UpConcurrently(t, stores...)
}

func TestOpenCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "gatehouse.db")
	open(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not created: %v", err)
	}
}

func TestOpenInvalid(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "x.db?mode=ro")} {
		if s, err := sqlite.Open(context.Background(), sqlite.Config{Path: path}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

// Both dialects must ship the same migrations under the same numbers, so a
// version means the same schema change whichever database runs it.
func TestMigrationsMatchPostgres(t *testing.T) {
	names := func(fsys fs.FS) []string {
		t.Helper()
		files, err := fs.Glob(fsys, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(files)
		return files
	}
	pg := names(os.DirFS("../postgres/migrations"))
	lite := names(os.DirFS("migrations"))
	if len(pg) == 0 {
		t.Fatal("no postgres migrations found")
	}
	if diff := cmp.Diff(pg, lite); diff != "" {
		t.Errorf("migration files differ (-postgres +sqlite):\n%s", diff)
	}
}

type welcomeArgs struct {
	UserID string `json:"user_id"`
}

func (welcomeArgs) Kind() string { return "store_test_welcome" }

// DriverTx is what the job queue's InsertTx takes: a job enqueued in InTx
// exists exactly when the transaction's writes commit.
func TestEnqueueInTx(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	if _, err := s.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.NewSQLite(s.Writer(), nil, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{false, true} {
		email := fmt.Sprintf("commit-%v@example.com", commit)
		err := s.InTx(ctx, func(tx store.Store) error {
			u, err := tx.CreateUser(ctx, store.User{Email: email, EmailNormalized: email})
			if err != nil {
				return err
			}
			if _, err := q.InsertTx(ctx, tx.DriverTx(), welcomeArgs{UserID: u.ID}, nil); err != nil {
				return err
			}
			if !commit {
				return errors.New("roll back")
			}
			return nil
		})
		if commit != (err == nil) {
			t.Fatalf("InTx(commit %v): %v", commit, err)
		}
	}
	var n int
	if err := s.Writer().QueryRowContext(ctx, "SELECT count(*) FROM river_job WHERE kind = 'store_test_welcome'").Scan(&n); err != nil || n != 1 {
		t.Errorf("jobs after one committed and one rolled-back transaction: %d, %v; want 1", n, err)
	}
}
