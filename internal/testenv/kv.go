package testenv

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
)

// EachKV runs fn as two subtests: on the in-process kv store, on a clock
// that stands still, and on Redis under a key prefix of its own (skipped
// or failed as Redis says).
func EachKV(t *testing.T, fn func(t *testing.T, s kv.Store)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		s := memory.New(func() time.Time { return at })
		defer s.Close()
		fn(t, s)
	})
	t.Run("redis", func(t *testing.T) {
		url, prefix := Redis(t)
		client, err := rediskv.NewClient(rediskv.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		fn(t, rediskv.New(client, prefix))
	})
}
