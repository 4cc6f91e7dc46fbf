package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/store/postgres"
)

// perDatabase lists the columns the migrations fill with a value of their
// own in every database (random or the time): cloneFixups must redo each.
var perDatabase = map[string][]string{
	"revocation_state":  {"epoch"},
	"schema_migrations": {"applied_at"},
}

// tableContents returns, per table of the public schema, its rows as JSON
// without the perDatabase columns, and those columns' values per table.
func tableContents(t *testing.T, dbURL string) (rows map[string]string, values map[string]string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tables, err := pgx.CollectRows(must(conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	rows, values = map[string]string{}, map[string]string{}
	for _, table := range tables {
		ident := pgx.Identifier{table}.Sanitize()
		masked := perDatabase[table]
		var got string
		if err := conn.QueryRow(ctx, `SELECT coalesce(jsonb_agg(to_jsonb(t) - $1::text[] ORDER BY (to_jsonb(t) - $1::text[])::text), '[]')::text FROM `+ident+` t`, masked).Scan(&got); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		rows[table] = got
		for _, col := range masked {
			var v string
			if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(`+pgx.Identifier{col}.Sanitize()+`::text, ',' ORDER BY 1), '') FROM `+ident).Scan(&v); err != nil {
				t.Fatalf("%s.%s: %v", table, col, err)
			}
			values[table+"."+col] = v
		}
	}
	return rows, values
}

func must(rows pgx.Rows, err error) pgx.Rows {
	if err != nil {
		panic(err)
	}
	return rows
}

func migrateEmpty(t *testing.T) string {
	t.Helper()
	dbURL := PostgresURL(t)
	s, err := postgres.Open(context.Background(), postgres.Config{URL: dbURL, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrator().Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dbURL
}

// A clone of the migrated template holds what migrating an empty database
// holds: the same tables and rows, and its own value of every column the
// migrations make different per database.
func TestCloneIsFreshlyMigrated(t *testing.T) {
	fresh1, fresh2 := migrateEmpty(t), migrateEmpty(t)
	clone1, clone2 := PostgresMigratedURL(t), PostgresMigratedURL(t)
	start := time.Now()

	want, wantValues := tableContents(t, fresh1)
	_, otherValues := tableContents(t, fresh2)
	for key := range perDatabase {
		if _, ok := want[key]; !ok {
			t.Errorf("perDatabase names table %s, which the migrations do not create", key)
		}
	}
	for key, v := range wantValues {
		if otherValues[key] == v {
			t.Errorf("%s = %q in two freshly migrated databases; it is not per database, drop it from perDatabase", key, v)
		}
	}
	cloneValues := make([]map[string]string, 2)
	for i, dbURL := range []string{clone1, clone2} {
		got, values := tableContents(t, dbURL)
		for table, rows := range want {
			// A value the migrations make per database that cloneFixups
			// does not know shows up here as a difference.
			if got[table] != rows {
				t.Errorf("clone %d: table %s holds %s, a freshly migrated database %s", i+1, table, got[table], rows)
			}
		}
		for table := range got {
			if _, ok := want[table]; !ok {
				t.Errorf("clone %d has table %s, a freshly migrated database does not", i+1, table)
			}
		}
		cloneValues[i] = values
	}
	for key, v := range cloneValues[0] {
		if v == cloneValues[1][key] || v == wantValues[key] {
			t.Errorf("%s = %q in a clone, the same as in another database; want a value of its own", key, v)
		}
	}

	// The migrations were applied, as far as the clone can tell, just now.
	conn, err := pgx.Connect(context.Background(), clone1)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var last time.Time
	if err := conn.QueryRow(context.Background(), `SELECT max(applied_at) FROM schema_migrations`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if d := last.Sub(start); d < -time.Minute || d > time.Minute {
		t.Errorf("last migration applied at %v in a clone made at %v; want about then", last, start)
	}
}
