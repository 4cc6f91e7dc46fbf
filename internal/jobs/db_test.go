package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	_ "modernc.org/sqlite"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// database is one empty test database of one backend.
type database interface {
	name() string
	newQueue(workers *river.Workers, cfg Config) (*Queue, error)
	// reopen closes the connection pool and opens a new one on the same
	// database, as a restarted process would. Queues made before must be
	// stopped first.
	reopen(t *testing.T)
	exec(t *testing.T, query string)
	count(t *testing.T, query string) int64
	begin(t *testing.T) testTx
}

// testTx is a transaction for a domain write beside InsertTx.
type testTx interface {
	raw() any // what InsertTx takes
	exec(query string) error
	commit() error
	rollback() error
}

// sqliteDSN is how Gatehouse opens its SQLite writer pool.
const sqliteDSN = "file:%s?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_pragma=synchronous(NORMAL)&_txlock=immediate"

type sqliteDB struct {
	path string
	db   *sql.DB
}

func openSQLite(t *testing.T) database {
	d := &sqliteDB{path: filepath.Join(t.TempDir(), "gatehouse.db")}
	d.open(t)
	t.Cleanup(func() {
		if err := d.db.Close(); err != nil {
			t.Errorf("close sqlite: %v", err)
		}
	})
	return d
}

func (d *sqliteDB) open(t *testing.T) {
	t.Helper()
	db, err := sql.Open("sqlite", fmt.Sprintf(sqliteDSN, d.path))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	d.db = db
}

func (d *sqliteDB) name() string { return "sqlite" }

func (d *sqliteDB) newQueue(workers *river.Workers, cfg Config) (*Queue, error) {
	return NewSQLite(d.db, workers, cfg)
}

func (d *sqliteDB) reopen(t *testing.T) {
	t.Helper()
	if err := d.db.Close(); err != nil {
		t.Fatal(err)
	}
	d.open(t)
}

func (d *sqliteDB) exec(t *testing.T, query string) {
	t.Helper()
	if _, err := d.db.ExecContext(t.Context(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (d *sqliteDB) count(t *testing.T, query string) int64 {
	t.Helper()
	var n int64
	if err := d.db.QueryRowContext(t.Context(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (d *sqliteDB) begin(t *testing.T) testTx {
	t.Helper()
	tx, err := d.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return sqliteTx{tx}
}

type sqliteTx struct{ tx *sql.Tx }

func (x sqliteTx) raw() any { return x.tx }
func (x sqliteTx) exec(query string) error {
	_, err := x.tx.Exec(query)
	return err
}
func (x sqliteTx) commit() error   { return x.tx.Commit() }
func (x sqliteTx) rollback() error { return x.tx.Rollback() }

type postgresDB struct {
	url  string
	pool *pgxpool.Pool
}

func openPostgres(t *testing.T) database {
	d := &postgresDB{url: testenv.PostgresURL(t)}
	d.open(t)
	t.Cleanup(func() { d.pool.Close() })
	return d
}

func (d *postgresDB) open(t *testing.T) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), d.url)
	if err != nil {
		t.Fatal(err)
	}
	d.pool = pool
}

func (d *postgresDB) name() string { return "postgres" }

func (d *postgresDB) newQueue(workers *river.Workers, cfg Config) (*Queue, error) {
	return NewPostgres(d.pool, workers, cfg)
}

func (d *postgresDB) reopen(t *testing.T) {
	t.Helper()
	d.pool.Close()
	d.open(t)
}

func (d *postgresDB) exec(t *testing.T, query string) {
	t.Helper()
	if _, err := d.pool.Exec(t.Context(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (d *postgresDB) count(t *testing.T, query string) int64 {
	t.Helper()
	var n int64
	if err := d.pool.QueryRow(t.Context(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (d *postgresDB) begin(t *testing.T) testTx {
	t.Helper()
	tx, err := d.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return postgresTx{tx}
}

type postgresTx struct{ tx pgx.Tx }

func (x postgresTx) raw() any { return x.tx }
func (x postgresTx) exec(query string) error {
	_, err := x.tx.Exec(context.Background(), query)
	return err
}
func (x postgresTx) commit() error   { return x.tx.Commit(context.Background()) }
func (x postgresTx) rollback() error { return x.tx.Rollback(context.Background()) }

// waitTimeout bounds every wait in these tests; reaching it is a failure,
// not a performance measurement.
const waitTimeout = 30 * time.Second

func TestSQLite(t *testing.T) { runSuite(t, openSQLite) }

func TestPostgres(t *testing.T) { runSuite(t, openPostgres) }
