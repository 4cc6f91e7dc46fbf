package sqlite_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

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
