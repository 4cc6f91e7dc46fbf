package sqlite

import (
	"context"
	"database/sql"

	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// dialect is SQLite's side of the SQL shared with PostgreSQL (sqldb). It
// needs no FOR UPDATE: a transaction holds the database's write lock from
// BEGIN IMMEDIATE. Text sorts by code point (BINARY) by default.
var dialect = &sqldb.Dialect{
	Name:      "sqlite",
	TimeValue: timeValue, TimeDest: timeDest, NullTimeDest: nullTimeDest,
	ListValue: listValue, ListDest: listDest,
	MapErr: mapErr, MapRefErr: mapRefErr, MapInUseErr: mapInUseErr,
}

// tables is the embedded shared half of Store, under an unexported name.
type tables = sqldb.Tables

// executor runs the shared statements for s: writes through write (the
// serialised writer connection, or the transaction inside InTx), reads
// through read (the reader pool, or the transaction). Every read route is
// the same: in WAL mode the readers see each commit at once.
type executor struct{ s *Store }

func (x executor) Row(ctx context.Context, on sqldb.Route, query string, args ...any) sqlrow.Scanner {
	if on == sqldb.Write {
		return writeRow{ctx: ctx, s: x.s, query: query, args: args}
	}
	return x.s.read().QueryRowContext(ctx, query, args...)
}

// writeRow is a single-row write that runs when it is scanned: the
// statement and the scan hold the writer connection together.
type writeRow struct {
	ctx   context.Context
	s     *Store
	query string
	args  []any
}

func (w writeRow) Scan(dest ...any) error {
	return w.s.write(w.ctx, func(q querier) error { return q.QueryRowContext(w.ctx, w.query, w.args...).Scan(dest...) })
}

func (x executor) Rows(ctx context.Context, on sqldb.Route, query string, args []any, each func(sqlrow.Scanner) error) error {
	if on == sqldb.Write {
		return x.s.write(ctx, func(q querier) error {
			rows, err := q.QueryContext(ctx, query, args...)
			return eachRow(rows, err, each)
		})
	}
	rows, err := x.s.read().QueryContext(ctx, query, args...)
	return eachRow(rows, err, each)
}

// eachRow calls each for every row of a query's result (err is the
// query's own) and closes the rows.
func eachRow(rows *sql.Rows, err error, each func(sqlrow.Scanner) error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (x executor) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return x.s.execRows(ctx, query, args...)
}
