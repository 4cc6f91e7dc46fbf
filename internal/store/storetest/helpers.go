package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/store"
)

// migrated wraps open: the store it returns has every migration applied
// (open's own, if it returns a migrated store, and any Up adds).
func migrated(open func(t *testing.T) store.Store) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		if _, err := s.Migrator().Up(context.Background()); err != nil {
			t.Fatalf("Up: %v", err)
		}
		return s
	}
}

// driverQueryRow runs query (no arguments, SQL both dialects accept)
// through the driver transaction of the transaction-bound store tx and
// scans its single row into dest.
func driverQueryRow(ctx context.Context, tx store.Store, query string, dest ...any) error {
	switch dt := tx.DriverTx().(type) {
	case pgx.Tx:
		return dt.QueryRow(ctx, query).Scan(dest...)
	case *sql.Tx:
		return dt.QueryRowContext(ctx, query).Scan(dest...)
	default:
		return fmt.Errorf("DriverTx() = %T, want pgx.Tx or *sql.Tx", dt)
	}
}

// driverExec runs statement through the driver transaction of tx.
func driverExec(ctx context.Context, tx store.Store, statement string) error {
	switch dt := tx.DriverTx().(type) {
	case pgx.Tx:
		_, err := dt.Exec(ctx, statement)
		return err
	case *sql.Tx:
		_, err := dt.ExecContext(ctx, statement)
		return err
	default:
		return fmt.Errorf("DriverTx() = %T, want pgx.Tx or *sql.Tx", dt)
	}
}

// count returns the result of a SELECT count(*) … query, run in its own
// transaction. The suite uses it to look at rows the typed methods do not
// return (consumed tokens, deleted users, NULL columns).
func count(t *testing.T, s store.Store, query string) int64 {
	t.Helper()
	var n int64
	err := s.InTx(context.Background(), func(tx store.Store) error {
		return driverQueryRow(context.Background(), tx, query, &n)
	})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// micro is t as the store returns it: UTC, to the microsecond.
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// newUser returns a minimal valid user with a random (v4) ID, so IDs do not
// sort in creation order.
func newUser(email string) store.User {
	return store.User{ID: uuid.NewString(), Email: email, EmailNormalized: email}
}

func mustCreateUser(t *testing.T, s store.Store, u store.User) store.User {
	t.Helper()
	created, err := s.CreateUser(context.Background(), u)
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", u.EmailNormalized, err)
	}
	return created
}

// checkNow fails unless got is a UTC time to the microsecond within a
// minute of the test's clock (the backend's clock may be a little off).
func checkNow(t *testing.T, what string, got time.Time) {
	t.Helper()
	if got.Location() != time.UTC || got.Nanosecond()%1000 != 0 {
		t.Errorf("%s = %v, want UTC to the microsecond", what, got)
	}
	if d := time.Since(got); d < -time.Minute || d > time.Minute {
		t.Errorf("%s = %v, want about now", what, got)
	}
}
