// Package sqlite is the SQLite backend of the store contract, built on the
// pure-Go modernc.org/sqlite driver, for single-node deployments.
//
// SQLite allows one writer at a time, so the store keeps two pools on the same
// file: a writer with a single connection whose transactions begin with
// BEGIN IMMEDIATE (taking the write lock up front, so a transaction never
// fails half-way on a lock upgrade), and a reader with several query-only
// connections that, in WAL mode, read alongside the writer. Every connection
// gets its pragmas from the DSN, so none is ever missing them.
//
// InTx runs its transaction on the writer connection, so it holds the write
// lock until it ends; every method of the transaction's store, reads
// included, runs in it. Outside a transaction a write waits at most
// BusyTimeout for the writer connection, like a write from another process
// waits for the lock, and then fails: a goroutine that writes through the
// plain store while its own transaction holds the writer gets an error, not
// a silent deadlock.
//
// Times are stored as INTEGER microseconds since the Unix epoch, UTC.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
	"github.com/gatehouse/gatehouse/internal/store/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Config configures the database file.
type Config struct {
	// Path of the database file. Its directory is created if missing.
	Path string
}

// BusyTimeout is how long a connection waits for another connection's (or
// another process's) lock before failing with SQLITE_BUSY.
const BusyTimeout = 10 * time.Second

// Pragmas every connection gets. busy_timeout comes first so the others
// cannot fail on a lock held by a concurrent opener.
var (
	writerPragmas = []string{
		fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()),
		"journal_mode(WAL)",
		"foreign_keys(1)",
		"synchronous(NORMAL)",
	}
	readerPragmas = []string{
		fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()),
		"foreign_keys(1)",
		"query_only(1)",
	}
)

// Store is the SQLite store. It is safe for concurrent use, except a
// transaction-bound Store (the one InTx hands to its function), which
// belongs to that function's goroutine.
type Store struct {
	writer   *sql.DB
	reader   *sql.DB
	migrator *migrate.Runner
	now      func() time.Time
	// writerWait bounds how long a write waits for the writer connection
	// (see write).
	writerWait time.Duration

	// tx runs every statement of a transaction-bound store, reads
	// included. Outside InTx (tx nil) writes take the writer connection
	// (write) and reads use the reader pool (read).
	tx *sql.Tx

	// tables implements the methods whose SQL is shared with PostgreSQL,
	// running them through executor{s}.
	tables
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx all offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file and checks that it can
// be written. It does not apply migrations; call Migrator().Up for that.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: path is required")
	}
	if cfg.Path == ":memory:" || strings.HasPrefix(cfg.Path, "file:") || strings.Contains(cfg.Path, "?") {
		// The writer and reader pools must share one file; a memory database
		// or a URI with its own parameters would defeat that.
		return nil, fmt.Errorf("sqlite: path %q must be a plain file path", cfg.Path)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create directory: %w", err)
	}

	writer, err := sql.Open("sqlite", dsn(cfg.Path, writerPragmas, "_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// The writer connects first: it creates the file and switches it to WAL
	// (a persistent setting), which the query-only readers cannot do.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}

	reader, err := sql.Open("sqlite", dsn(cfg.Path, readerPragmas))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open reader: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)

	s := &Store{writer: writer, reader: reader, now: time.Now, writerWait: BusyTimeout}
	s.tables = sqldb.New(dialect, executor{s}, s.now)
	files, err := fs.Sub(migrationFiles, "migrations")
	if err == nil {
		s.migrator, err = s.MigratorFrom(files)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return s, nil
}

func dsn(path string, pragmas []string, extra ...string) string {
	params := make([]string, 0, len(pragmas)+len(extra))
	for _, p := range pragmas {
		params = append(params, "_pragma="+p)
	}
	params = append(params, extra...)
	return path + "?" + strings.Join(params, "&")
}

// Writer returns the single-connection writer pool, for packages that bring
// their own SQL (the job queue). Its transactions begin IMMEDIATE. Holding a
// transaction on it blocks every other write of the process.
func (s *Store) Writer() *sql.DB { return s.writer }

// Dialect returns store.DialectSQLite.
func (s *Store) Dialect() string { return store.DialectSQLite }

// Ping checks that the database file can be read. It uses a reader
// connection, so it does not queue behind a long write.
func (s *Store) Ping(ctx context.Context) error {
	var v int
	if err := s.reader.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&v); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Migrator returns the runner of the embedded migrations.
func (s *Store) Migrator() store.Migrator { return s.migrator }

// MigratorFrom returns a runner for the migrations in fsys against this
// database, sharing schema_migrations with Migrator. The conformance suite
// uses it to exercise the runner with its own migrations.
func (s *Store) MigratorFrom(fsys fs.FS) (*migrate.Runner, error) {
	return migrate.New(fsys, migrationDriver{db: s.writer})
}

// Stats adds up the writer and reader pools.
func (s *Store) Stats() store.PoolStats {
	w, r := s.writer.Stats(), s.reader.Stats()
	return store.PoolStats{
		MaxOpen:      w.MaxOpenConnections + r.MaxOpenConnections,
		Open:         w.OpenConnections + r.OpenConnections,
		InUse:        w.InUse + r.InUse,
		Idle:         w.Idle + r.Idle,
		WaitCount:    w.WaitCount + r.WaitCount,
		WaitDuration: w.WaitDuration + r.WaitDuration,
	}
}

// Close closes both pools. It is safe to call more than once. On a
// transaction-bound store it does nothing but return an error: the pools
// belong to the store InTx was called on.
func (s *Store) Close() error {
	if s.tx != nil {
		return errors.New("sqlite: Close called on a transaction-bound store")
	}
	return errors.Join(s.reader.Close(), s.writer.Close())
}

// RawExec runs sql on the writer (inside InTx: in the transaction) with no
// arguments. It exists for tests (the conformance suite proves
// database-level guarantees with it) and operational tooling; application
// code uses the typed methods.
func (s *Store) RawExec(ctx context.Context, sql string) error {
	return s.write(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, sql)
		return mapErr(err)
	})
}

// read returns what a read-only query runs on: the transaction inside
// InTx, otherwise the reader pool. In WAL mode the readers see every
// committed write at once, so reads outside a transaction never miss the
// caller's own writes.
func (s *Store) read() querier {
	if s.tx != nil {
		return s.tx
	}
	return s.reader
}

// errWriterBusy is returned when a write waited writerWait for the writer
// connection in vain.
var errWriterBusy = errors.New("sqlite: timed out waiting for the writer connection")

// write runs fn on the transaction inside InTx, otherwise on the writer
// connection, waiting at most writerWait for it. The wait is bounded like
// SQLite's own busy timeout between processes: the writer pool has one
// connection, so a write issued on this (non-transaction) store by the
// goroutine that holds an InTx transaction would otherwise wait for its
// own transaction forever. Inside InTx, use the transaction's store.
func (s *Store) write(ctx context.Context, fn func(q querier) error) error {
	if s.tx != nil {
		return fn(s.tx)
	}
	conn, err := s.writeConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(conn)
}

// writeConn takes the writer pool's connection, waiting at most writerWait.
// The caller closes it (returning it to the pool).
func (s *Store) writeConn(ctx context.Context) (*sql.Conn, error) {
	waitCtx, cancel := context.WithTimeout(ctx, s.writerWait)
	defer cancel()
	conn, err := s.writer.Conn(waitCtx)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w after %s (is this goroutine inside InTx? use the transaction's store there)", errWriterBusy, s.writerWait)
		}
		return nil, fmt.Errorf("sqlite: writer connection: %w", err)
	}
	return conn, nil
}

// mapErr maps driver errors to the store sentinels, keeping the original
// error in the chain.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		}
		// The database stayed locked by another writer for the whole busy
		// timeout: contention that passes, so a retry shortly succeeds.
		// SQLITE_FULL, SQLITE_IOERR and the like stay unmapped (500): they
		// need an operator, a retry in seconds fails the same way, and a
		// single-node embedded database has no "elsewhere" to retry on.
		switch se.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
	}
	return err
}

// unixMicro scans an INTEGER column of microseconds since the Unix epoch into
// a time.Time in UTC.
type unixMicro struct{ t *time.Time }

func (u unixMicro) Scan(src any) error {
	v, ok := src.(int64)
	if !ok {
		return fmt.Errorf("sqlite: time column holds %T, want INTEGER microseconds", src)
	}
	*u.t = time.UnixMicro(v).UTC()
	return nil
}

func timeDest(t *time.Time) any { return unixMicro{t: t} }

// nullUnixMicro is unixMicro for a nullable column: NULL becomes the zero
// time.
type nullUnixMicro struct{ t *time.Time }

func (u nullUnixMicro) Scan(src any) error {
	if src == nil {
		*u.t = time.Time{}
		return nil
	}
	return unixMicro(u).Scan(src)
}

func nullTimeDest(t *time.Time) any { return nullUnixMicro{t: t} }

// timeValue binds t as INTEGER microseconds since the Unix epoch, and the
// zero time as NULL.
func timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return sqlrow.Micro(t).UnixMicro()
}
