package rediskv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/kv"
)

// TestMapUnavailable classifies client errors: outages wrap
// kv.ErrUnavailable (keeping the client's error); replies that are the
// caller's problem, not-found and cancellation do not.
func TestMapUnavailable(t *testing.T) {
	outages := map[string]error{
		"refused":      &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED},
		"reset":        fmt.Errorf("read: %w", syscall.ECONNRESET),
		"EOF":          io.EOF,
		"timeout":      context.DeadlineExceeded,
		"closed":       redis.ErrClosed,
		"pool timeout": redis.ErrPoolTimeout,
		"LOADING":      errors.New("LOADING Redis is loading the dataset in memory"),
		"MASTERDOWN":   errors.New("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
		"TRYAGAIN":     errors.New("TRYAGAIN Multiple keys request during rehashing of slot"),
		"CLUSTERDOWN":  errors.New("CLUSTERDOWN The cluster is down"),
	}
	for name, err := range outages {
		got := wrap("get", err)
		if !errors.Is(got, kv.ErrUnavailable) || !errors.Is(got, err) || errors.Is(got, kv.ErrNotFound) {
			t.Errorf("%s: wrap = %v, want kv.ErrUnavailable wrapping it", name, got)
		}
	}
	others := map[string]error{
		"WRONGTYPE": errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"),
		"NOSCRIPT":  errors.New("NOSCRIPT No matching script"),
		"cancelled": context.Canceled,
		"nil":       redis.Nil,
	}
	for name, err := range others {
		if got := wrap("get", err); errors.Is(got, kv.ErrUnavailable) {
			t.Errorf("%s: wrap = %v, must not be kv.ErrUnavailable", name, got)
		}
	}
}
