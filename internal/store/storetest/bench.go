package storetest

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// BenchmarkRotation measures RotateRefreshToken, the write on every
// refresh: one goroutine following a chain of rotations, and eight at once
// (b.RunParallel), each on its own session as separate clients are (the
// session is started inside the timed part, once per goroutine). s must
// be migrated. dbCPU, when not nil, returns the CPU time the database
// server has used so far; its share per rotation is reported as
// db-cpu-µs/op (a figure far steadier than the time per operation on a
// shared machine).
func BenchmarkRotation(b *testing.B, s store.Store, dbCPU func() time.Duration) {
	ctx := context.Background()
	u, err := s.CreateUser(ctx, newUser("rotation-bench@example.com"))
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, parallel bool) {
		// newChain starts a session and returns its first token's hash. It
		// runs on RunParallel's goroutines too, so it reports rather than
		// calls b.Fatal.
		newChain := func() (string, error) {
			now := time.Now()
			first := store.RefreshToken{TokenHash: refreshHash()}
			_, err := s.CreateSession(ctx, store.Session{UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), IP: "192.0.2.1", AMR: []string{"pwd"}}, first)
			return first.TokenHash, err
		}
		rotate := func(hash string) (string, error) {
			r := rotateReq(hash, time.Now(), 10*time.Second)
			r.IdleTimeout = time.Hour
			r.LastSeenIP = "192.0.2.2"
			res, err := s.RotateRefreshToken(ctx, r)
			if err != nil {
				return "", err
			}
			if res.Outcome != store.Rotated {
				return "", fmt.Errorf("outcome %s, want Rotated", outcomeName(res.Outcome))
			}
			return r.Next.TokenHash, nil
		}
		var before time.Duration
		if dbCPU != nil {
			before = dbCPU()
		}
		b.ResetTimer()
		if parallel {
			const clients = 8
			b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				hash, err := newChain()
				if err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					if hash, err = rotate(hash); err != nil {
						b.Error(err)
						return
					}
				}
			})
		} else {
			hash, err := newChain()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if hash, err = rotate(hash); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		if dbCPU != nil {
			b.ReportMetric(float64((dbCPU()-before).Microseconds())/float64(b.N), "db-cpu-µs/op")
		}
	}
	b.Run("Sequential", func(b *testing.B) { run(b, false) })
	b.Run("Parallel", func(b *testing.B) { run(b, true) })
}
