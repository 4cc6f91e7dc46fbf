// Package postgres is the PostgreSQL backend of the store contract, built on
// pgxpool. Writes go to the primary; read-only queries that tolerate
// replication lag may go to a replica (see Config.ReplicaURLs).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
	"github.com/gatehouse/gatehouse/internal/store/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Config configures the connection pools. Zero numbers and durations keep
// pgxpool's defaults (or what the URL sets through pool_max_conns etc.).
type Config struct {
	// URL of the primary, e.g. postgres://user:pass@host:5432/gatehouse.
	URL string
	// ReplicaURLs are read replicas used round-robin for read-only queries.
	ReplicaURLs []string

	MaxConns        int32
	MinConns        int32
	MaxConnLifetime time.Duration
	MaxConnIdleTime time.Duration
}

// Replica health: a replica that answered a ping is used without another
// ping for replicaHealthyFor; one that failed is skipped for replicaDownFor.
const (
	replicaPingTimeout = time.Second
	replicaHealthyFor  = time.Second
	replicaDownFor     = 5 * time.Second
)

// Store is the PostgreSQL store. It is safe for concurrent use, except a
// transaction-bound Store (the one InTx hands to its function), which
// belongs to that function's goroutine.
type Store struct {
	primary  *pgxpool.Pool
	replicas []*replica
	next     *atomic.Uint64
	migrator *migrate.Runner
	now      func() time.Time

	// q runs every statement: the primary pool, or tx inside InTx.
	q  querier
	tx pgx.Tx // nil outside InTx

	// tables implements the methods whose SQL is shared with SQLite,
	// running them through executor{s}.
	tables
}

type replica struct {
	pool      *pgxpool.Pool
	okUntil   atomic.Int64 // unix nanoseconds
	downUntil atomic.Int64 // unix nanoseconds
}

var _ store.Store = (*Store)(nil)

// Open creates the pools and checks that the primary answers. It does not
// apply migrations; call Migrator().Up for that. Replicas are not contacted
// until the first read.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("postgres: URL is required")
	}
	primary, err := newPool(ctx, cfg, cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: primary: %w", err)
	}
	s := &Store{primary: primary, next: new(atomic.Uint64), now: time.Now, q: primary}
	s.tables = sqldb.New(dialect, executor{s}, s.now)
	for i, u := range cfg.ReplicaURLs {
		pool, err := newPool(ctx, cfg, u)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("postgres: replica %d: %w", i, err)
		}
		s.replicas = append(s.replicas, &replica{pool: pool})
	}
	if err := primary.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: ping primary: %w", err)
	}
	files, err := fs.Sub(migrationFiles, "migrations")
	if err == nil {
		s.migrator, err = s.MigratorFrom(files)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

func newPool(ctx context.Context, cfg Config, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can quote the URL, password included.
		return nil, errors.New("invalid connection URL")
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		pc.MinConns = cfg.MinConns
	}
	if cfg.MaxConnLifetime > 0 {
		pc.MaxConnLifetime = cfg.MaxConnLifetime
	}
	if cfg.MaxConnIdleTime > 0 {
		pc.MaxConnIdleTime = cfg.MaxConnIdleTime
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "gatehouse"
	}
	return pgxpool.NewWithConfig(ctx, pc)
}

// Pool returns the primary pool, for packages that bring their own SQL (the
// job queue).
func (s *Store) Pool() *pgxpool.Pool { return s.primary }

// Dialect returns store.DialectPostgres.
func (s *Store) Dialect() string { return store.DialectPostgres }

// Ping checks that the primary answers. It keeps no state between calls: once
// the server is back after a restart, the next Ping succeeds.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.primary.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", mapErr(err))
	}
	return nil
}

// MigrationFiles returns the embedded migrations (NNNN_name.up.sql and
// .down.sql), for tests that key a migrated template database on them.
func MigrationFiles() fs.FS {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // "migrations" is a valid path; fs.Sub cannot fail on it
	}
	return files
}

// Migrator returns the runner of the embedded migrations.
func (s *Store) Migrator() store.Migrator { return s.migrator }

// MigratorFrom returns a runner for the migrations in fsys against this
// database, sharing schema_migrations and the lock with Migrator. The
// conformance suite uses it to exercise the runner with its own migrations.
func (s *Store) MigratorFrom(fsys fs.FS) (*migrate.Runner, error) {
	return migrate.New(fsys, migrationDriver{pool: s.primary})
}

// Stats reports the primary pool's figures.
func (s *Store) Stats() store.PoolStats {
	st := s.primary.Stat()
	return store.PoolStats{
		MaxOpen:      int(st.MaxConns()),
		Open:         int(st.TotalConns()),
		InUse:        int(st.AcquiredConns()),
		Idle:         int(st.IdleConns()),
		WaitCount:    st.EmptyAcquireCount(),
		WaitDuration: st.EmptyAcquireWaitTime(),
	}
}

// Close closes every pool. It is safe to call more than once. On a
// transaction-bound store it does nothing but return an error: the pools
// belong to the store InTx was called on.
func (s *Store) Close() error {
	if s.tx != nil {
		return errors.New("postgres: Close called on a transaction-bound store")
	}
	for _, r := range s.replicas {
		r.pool.Close()
	}
	s.primary.Close()
	return nil
}

// RawExec runs sql on the primary (inside InTx: in the transaction) with no
// arguments. It exists for tests (the conformance suite proves
// database-level guarantees with it) and operational tooling; application
// code uses the typed methods.
func (s *Store) RawExec(ctx context.Context, sql string) error {
	_, err := s.q.Exec(ctx, sql)
	return mapErr(err)
}

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// reader returns the pool for a read-only query that tolerates replication
// lag: the next healthy replica round-robin, or the primary when no replica
// is configured or none is healthy. A replica is healthy when it answered a
// ping within replicaHealthyFor; one that fails a ping is skipped for
// replicaDownFor. Inside InTx it returns the transaction.
func (s *Store) reader(ctx context.Context) querier {
	n := len(s.replicas)
	if s.tx != nil || n == 0 {
		return s.q
	}
	start := s.next.Add(1) - 1
	for i := range n {
		r := s.replicas[(start+uint64(i))%uint64(n)]
		if r.healthy(ctx, s.now()) {
			return r.pool
		}
		if ctx.Err() != nil {
			break
		}
	}
	return s.primary
}

func (r *replica) healthy(ctx context.Context, now time.Time) bool {
	t := now.UnixNano()
	if t < r.okUntil.Load() {
		return true
	}
	if t < r.downUntil.Load() {
		return false
	}
	pingCtx, cancel := context.WithTimeout(ctx, replicaPingTimeout)
	defer cancel()
	if err := r.pool.Ping(pingCtx); err != nil {
		if ctx.Err() == nil { // our caller giving up says nothing about the replica
			r.downUntil.Store(t + int64(replicaDownFor))
		}
		return false
	}
	r.okUntil.Store(t + int64(replicaHealthyFor))
	return true
}

// mapErr maps driver errors to the store sentinels, keeping the original
// error in the chain. An outage is checked first: a lost connection must
// never read as "not found".
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return MapUnavailable(err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case "22021", "22P05": // character_not_in_repertoire (NUL, invalid UTF-8), untranslatable_character (\u0000 in jsonb)
			return fmt.Errorf("%w: %w", store.ErrInvalidText, err)
		}
	}
	return err
}

// MapUnavailable wraps err in store.ErrUnavailable when it is an outage
// (see unavailable) and not wrapped already (a pipelined or nested call),
// and returns any other error as it is. mapErr uses it, and so do packages
// that run their own SQL on Pool, such as the job queue.
func MapUnavailable(err error) error {
	if err == nil || !unavailable(err) || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// unavailableStates are the SQLSTATEs of a server that cannot serve now,
// besides class 08 (connection exception): admin_shutdown,
// crash_shutdown, cannot_connect_now (starting up or in recovery) and
// too_many_connections.
var unavailableStates = map[string]bool{"57P01": true, "57P02": true, "57P03": true, "53300": true}

// unavailable reports whether err is an outage rather than a failed
// statement: the server could not be reached, the connection broke, the
// pool timed out, or the server refuses service for now. A cancellation by
// the caller (the client went away) is not one.
func unavailable(err error) bool {
	if errors.Is(err, store.ErrUnavailable) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || unavailableStates[pgErr.Code]
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr),
		pgconn.Timeout(err),                      // pgconn's own timeout wrapper
		errors.Is(err, context.DeadlineExceeded), // e.g. waiting for a pooled connection
		errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	// A statement on a connection that broke earlier (later in the same
	// transaction) fails with pgconn's unexported "conn closed" error; it
	// was never sent, so pgconn marks it safe to retry.
	return pgconn.SafeToRetry(err) && strings.Contains(err.Error(), "conn closed")
}

// collect reads every row of a query with scan (err is the query's own).
func collect[T any](rows pgx.Rows, err error, scan func(sqlrow.Scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, mapErr(err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
	if err != nil {
		return nil, mapErr(err)
	}
	return list, nil
}
