package rediskv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv"
	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// TestStoppedRedisIsUnavailable runs the real client against a private
// Redis that is then stopped: its errors must be kv.ErrUnavailable.
func TestStoppedRedisIsUnavailable(t *testing.T) {
	rs := testenv.PrivateRedis(t)
	client, err := rediskv.NewClient(rediskv.Options{URL: rs.URL + "?max_retries=0&dial_timeout=1s"})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s := rediskv.New(client, "t:")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	rs.Stop()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, kv.ErrUnavailable) {
		t.Errorf("Get with Redis stopped = %v, want kv.ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, kv.ErrUnavailable) {
		t.Errorf("Ping with Redis stopped = %v, want kv.ErrUnavailable", err)
	}
}
