// Package sqldb is the SQL both backends (postgres, sqlite) share: the store
// methods whose statements are the same on both engines, written once over
// a Dialect (what differs in the SQL and its values) and an Executor (where
// a statement runs). Each backend embeds a *Tables in its Store and keeps
// hand-written code only where the engines really differ and speed comes
// from it: the refresh rotation, StartSession's guarded insert, the TOTP
// step, one-time code and token consumption, revocation, pools,
// transactions and migrations.
//
// Statements are written once with PostgreSQL's numbered placeholders ($1,
// $2, …), which SQLite accepts too: it parses $NNN as a parameter and the
// modernc driver binds it to the NNNth argument, so a statement may reuse an
// argument ($1 twice) or name them out of order on both engines. Nothing is
// rewritten at run time.
//
// Row conversion (column lists, scanners, input normalisation) lives in
// sqlrow; this package adds the statements and the error wording.
package sqldb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// Dialect is what the shared statements need to know about an engine. Its
// fields are functions and fixed SQL fragments rather than an interface so
// that the per-row codecs are plain function calls.
type Dialect struct {
	// Name prefixes every error ("postgres: …", "sqlite: …"), as logs and
	// operators know them.
	Name string

	// TimeValue binds a time (to the microsecond); the zero time binds as
	// NULL.
	TimeValue sqlrow.TimeValue
	// TimeDest and NullTimeDest adapt a *time.Time to what the driver
	// scans a NOT NULL and a nullable time column into (NULL becomes the
	// zero time).
	TimeDest, NullTimeDest sqlrow.TimeDest
	// ListValue binds and ListDest scans a list of strings (text[] on
	// PostgreSQL, a JSON array on SQLite).
	ListValue sqlrow.ListValue
	ListDest  sqlrow.ListDest

	// MapErr maps a driver error to the store sentinels (ErrNotFound for
	// no rows, ErrConflict, ErrUnavailable, ErrInvalidText), keeping it in
	// the chain. MapRefErr does the same and also maps a foreign key
	// violation (the referenced row does not exist) to ErrNotFound.
	MapErr, MapRefErr func(error) error
	// MapInUseErr maps the foreign key violation of a DELETE whose row
	// other rows still refer to (without ON DELETE) to ErrConflict, and
	// anything else as MapErr.
	MapInUseErr func(error) error

	// ForUpdate is appended to a SELECT that locks the rows it reads until
	// the transaction ends (" FOR UPDATE"), or "" where the transaction
	// already holds the database's only write lock (SQLite).
	ForUpdate string
	// LockWrites returns a statement that makes the writers of table
	// inside transactions wait for one another until commit ("LOCK TABLE
	// … IN SHARE ROW EXCLUSIVE MODE"; readers do not wait), or is nil
	// where a transaction already holds the database's only write lock
	// (SQLite).
	LockWrites func(table string) string
	// ByCodePoint follows a text column in ORDER BY so that it sorts by
	// code point whatever the database's locale (` COLLATE "C"`), or ""
	// where that is the default (SQLite's BINARY).
	ByCodePoint string
}

// Route says where a read runs. Writes always run on the primary (or the
// transaction); on SQLite, on the one serialised writer connection.
type Route uint8

const (
	// Primary is a read that must see the latest commit: PostgreSQL's
	// primary (or the transaction), SQLite's reader pool (or the
	// transaction), which in WAL mode sees every commit at once.
	Primary Route = iota
	// Replica is a read that tolerates replication lag: a healthy
	// PostgreSQL read replica when one is configured, otherwise as
	// Primary.
	Replica
	// Write is a statement that changes rows and returns some (INSERT,
	// UPDATE or DELETE … RETURNING).
	Write
)

// Executor runs statements for a backend's Store, or for its transaction
// inside InTx (then every route is the transaction). Errors come back as
// the driver returned them; Tables maps them with the Dialect.
type Executor interface {
	// Row runs a statement that returns at most one row. Its Scan reports
	// no row with the driver's no-rows error. Call Scan exactly once: a
	// write may run only then (SQLite takes its writer connection for the
	// statement and the scan).
	Row(ctx context.Context, on Route, query string, args ...any) sqlrow.Scanner
	// Rows runs a statement and calls each for every row, in order,
	// stopping at the first error.
	Rows(ctx context.Context, on Route, query string, args []any, each func(sqlrow.Scanner) error) error
	// Exec runs a statement that returns no rows and reports how many it
	// changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
}

// Tables implements the store methods whose SQL the engines share. A
// backend embeds it in its Store, and the transaction-bound Store that InTx
// hands out embeds its own, whose Executor runs in the transaction.
type Tables struct {
	d   *Dialect
	x   Executor
	now func() time.Time
}

// New returns the shared methods over d and x; now is the store's clock.
// A backend embeds the value, so a transaction-bound store costs no
// allocation for it.
func New(d *Dialect, x Executor, now func() time.Time) Tables {
	return Tables{d: d, x: x, now: now}
}

// errorf formats an error with the dialect's prefix.
func (t *Tables) errorf(format string, args ...any) error {
	return fmt.Errorf(t.d.Name+": "+format, args...)
}

// row runs a single-row statement and scans it.
func row[T any](ctx context.Context, t *Tables, on Route, scan func(sqlrow.Scanner) (T, error), query string, args ...any) (T, error) {
	return scan(t.x.Row(ctx, on, query, args...))
}

// rows runs a statement and scans every row; errors are mapped.
func rows[T any](ctx context.Context, t *Tables, on Route, scan func(sqlrow.Scanner) (T, error), query string, args ...any) ([]T, error) {
	var list []T
	err := t.x.Rows(ctx, on, query, args, func(r sqlrow.Scanner) error {
		v, err := scan(r)
		if err != nil {
			return err
		}
		list = append(list, v)
		return nil
	})
	if err != nil {
		return nil, t.d.MapErr(err)
	}
	return list, nil
}

// deleteOne runs a DELETE (or soft delete) of one row; no row is
// ErrNotFound. what names the row in the error.
func (t *Tables) deleteOne(ctx context.Context, what, query string, args ...any) error {
	n, err := t.x.Exec(ctx, query, args...)
	if err != nil {
		return t.errorf("%s: %w", what, t.d.MapErr(err))
	}
	if n == 0 {
		return t.errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// quote quotes an identifier from the caller for an error message, as %q
// does.
func quote(s string) string { return strconv.Quote(s) }

// notFound reports whether a mapped error is "no row" (and not an outage,
// which MapErr never maps to ErrNotFound).
func notFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
