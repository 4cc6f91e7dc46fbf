package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/store"
)

// TestMapErrUnavailable classifies driver errors: outages wrap
// store.ErrUnavailable (and keep the driver's error), everything else does
// not, and an outage never reads as not found.
func TestMapErrUnavailable(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	outages := map[string]error{
		"connection refused":             opErr,
		"connection reset":               fmt.Errorf("read: %w", syscall.ECONNRESET),
		"broken pipe":                    fmt.Errorf("write: %w", syscall.EPIPE),
		"unexpected EOF":                 fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF),
		"EOF":                            io.EOF,
		"pool acquire timeout":           fmt.Errorf("acquire: %w", context.DeadlineExceeded),
		"connection exception":           &pgconn.PgError{Code: "08006"},
		"admin shutdown":                 &pgconn.PgError{Code: "57P01"},
		"crash shutdown":                 &pgconn.PgError{Code: "57P02"},
		"cannot connect now":             &pgconn.PgError{Code: "57P03"},
		"too many connections":           &pgconn.PgError{Code: "53300"},
		"no rows on a broken connection": fmt.Errorf("%w: %w", pgx.ErrNoRows, io.ErrUnexpectedEOF),
	}
	for name, err := range outages {
		got := mapErr(err)
		if !errors.Is(got, store.ErrUnavailable) || !errors.Is(got, err) || errors.Is(got, store.ErrNotFound) {
			t.Errorf("%s: mapErr = %v, want store.ErrUnavailable wrapping it, not ErrNotFound", name, got)
		}
		if again := mapErr(fmt.Errorf("postgres: x: %w", got)); !errors.Is(again, store.ErrUnavailable) {
			t.Errorf("%s: mapping twice lost the sentinel: %v", name, again)
		}
	}
	others := map[string]error{
		"no rows":          pgx.ErrNoRows,
		"unique violation": &pgconn.PgError{Code: "23505"},
		"syntax error":     &pgconn.PgError{Code: "42601"},
		"serialization":    &pgconn.PgError{Code: "40001"},
		"client went away": fmt.Errorf("query: %w", context.Canceled),
		"plain error":      errors.New("postgres: something else"),
	}
	for name, err := range others {
		if got := mapErr(err); errors.Is(got, store.ErrUnavailable) {
			t.Errorf("%s: mapErr = %v, must not be store.ErrUnavailable", name, got)
		}
		if got := MapUnavailable(err); got != err {
			t.Errorf("%s: MapUnavailable changed a non-outage error: %v", name, got)
		}
	}
	if got := MapUnavailable(opErr); !errors.Is(got, store.ErrUnavailable) {
		t.Errorf("MapUnavailable(refused) = %v", got)
	}
}

// TestUnreachableServerIsUnavailable opens a store on a port nothing
// listens on: the real driver's error must classify as an outage.
func TestUnreachableServerIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Open(context.Background(), Config{URL: "postgres://gatehouse@" + addr + "/gatehouse?sslmode=disable&connect_timeout=2"})
	if err == nil || !errors.Is(mapErr(err), store.ErrUnavailable) {
		t.Fatalf("Open on a closed port: %v, want an outage", err)
	}
}
