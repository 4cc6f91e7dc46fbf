package migrate_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/store/migrate"
)

func files(names ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for _, n := range names {
		fsys[n] = &fstest.MapFile{Data: []byte("-- " + n)}
	}
	return fsys
}

func TestLoad(t *testing.T) {
	fsys := files("0002_users.down.sql", "0001_init.up.sql", "0002_users.up.sql", "0001_init.down.sql", "README.md")
	fsys["sub"] = &fstest.MapFile{Mode: 0o755 | 1<<31} // a directory is ignored
	got, err := migrate.Load(fsys)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []migrate.Migration{
		{Version: 1, Name: "init", Up: "-- 0001_init.up.sql", Down: "-- 0001_init.down.sql"},
		{Version: 2, Name: "users", Up: "-- 0002_users.up.sql", Down: "-- 0002_users.down.sql"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}

	empty, err := migrate.Load(fstest.MapFS{})
	if err != nil || len(empty) != 0 {
		t.Errorf("Load of no files = %v, %v; want none, no error", empty, err)
	}
}

func TestLoadInvalid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fsys  fstest.MapFS
		want  string // in the error
		want2 string // a second problem reported in the same error, if any
	}{
		{"gap", files("0001_a.up.sql", "0001_a.down.sql", "0003_c.up.sql", "0003_c.down.sql"), "version 3 (c) follows version 1", ""},
		{"not starting at 1", files("0002_b.up.sql", "0002_b.down.sql"), "version 2 (b) follows version 0", ""},
		{"version 0", files("0000_z.up.sql", "0000_z.down.sql"), "versions start at 0001", ""},
		{"duplicate version", files("0001_a.up.sql", "0001_a.down.sql", "0001_b.up.sql", "0001_b.down.sql"), "version 1 is also used by", ""},
		{"up without down", files("0001_a.up.sql", "0001_a.down.sql", "0002_b.up.sql"), "version 2 (b) has no down migration", ""},
		{"down without up", files("0001_a.down.sql"), "version 1 (a) has no up migration", ""},
		{"bad name", files("1_a.up.sql", "1_a.down.sql"), "1_a.up.sql: name must look like", ""},
		{"upper case", files("0001_Init.up.sql", "0001_Init.down.sql"), "0001_Init.up.sql: name must look like", ""},
		{"neither up nor down", files("0001_a.sql"), "0001_a.sql: name must look like", ""},
		{"every problem at once", files("0001_a.up.sql", "0003_c.up.sql", "0003_c.down.sql"), "version 1 (a) has no down migration", "version 3 (c) follows version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := migrate.Load(tc.fsys)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range []string{tc.want, tc.want2} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error %q does not mention %q", err, w)
				}
			}
		})
	}
}
