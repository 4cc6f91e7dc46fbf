package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// dialect is PostgreSQL's side of the SQL shared with SQLite (sqldb).
var dialect = &sqldb.Dialect{
	Name:      "postgres",
	TimeValue: timeValue, TimeDest: timeDest, NullTimeDest: nullTimeDest,
	ListValue: listValue, ListDest: listDest,
	MapErr: mapErr, MapRefErr: mapRefErr, MapInUseErr: mapInUseErr,
	ForUpdate:   " FOR UPDATE",
	LockWrites:  func(table string) string { return "LOCK TABLE " + table + " IN SHARE ROW EXCLUSIVE MODE" },
	ByCodePoint: ` COLLATE "C"`,
}

func timeDest(t *time.Time) any { return t }

// nullTime scans a nullable timestamptz: NULL becomes the zero time.
type nullTime struct{ t *time.Time }

func (n nullTime) ScanTimestamptz(v pgtype.Timestamptz) error {
	switch {
	case !v.Valid:
		*n.t = time.Time{}
	case v.InfinityModifier != pgtype.Finite:
		return errors.New("postgres: infinite timestamp")
	default:
		*n.t = v.Time.UTC()
	}
	return nil
}

func nullTimeDest(t *time.Time) any { return nullTime{t: t} }

// timeValue binds t as a timestamptz to the microsecond, and the zero time
// as NULL.
func timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return sqlrow.Micro(t)
}

// tables is the embedded shared half of Store, under an unexported name.
type tables = sqldb.Tables

// executor runs the shared statements for s: writes and Primary reads on
// s.q (the primary pool, or the transaction inside InTx), Replica reads on
// s.reader.
type executor struct{ s *Store }

func (x executor) on(ctx context.Context, r sqldb.Route) querier {
	if r == sqldb.Replica {
		return x.s.reader(ctx)
	}
	return x.s.q
}

func (x executor) Row(ctx context.Context, on sqldb.Route, query string, args ...any) sqlrow.Scanner {
	return x.on(ctx, on).QueryRow(ctx, query, args...)
}

func (x executor) Rows(ctx context.Context, on sqldb.Route, query string, args []any, each func(sqlrow.Scanner) error) error {
	rows, err := x.on(ctx, on).Query(ctx, query, args...)
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
	tag, err := x.s.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}
