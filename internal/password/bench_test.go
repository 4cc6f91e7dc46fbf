package password

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHashArgon2idDefault is one login's hashing cost with the
// default parameters, run serially.
func BenchmarkHashArgon2idDefault(b *testing.B) {
	h := NewHasher(DefaultParams, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashParallel2 is hashing throughput under 2 concurrent logins:
// exactly two goroutines share b.N hashes on a Hasher with 2 slots.
func BenchmarkHashParallel2(b *testing.B) {
	h := NewHasher(DefaultParams, 2)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 2 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkVerify is one login's verification cost against a current hash.
func BenchmarkVerify(b *testing.B) {
	h := NewHasher(DefaultParams, 1)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, "correct horse battery staple", enc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkBurst32MaxConcurrent2 fires 32 concurrent hashes at a Hasher
// with 2 slots and reports the limiter's memory bound next to the peak Go
// heap seen during the burst (sampled every millisecond). The heap can
// exceed the bound by work areas that finished but are not yet collected.
// The stored-hash memory limit is pinned to the hashing parameters, so the
// bound is that of the slots alone: 2 × 19 MiB.
func BenchmarkBurst32MaxConcurrent2(b *testing.B) {
	h := NewHasher(DefaultParams, 2, WithLimits(Limits{MaxArgon2Memory: DefaultParams.Memory}))
	ctx := context.Background()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	}()
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	close(stop)
	<-sampled
	b.ReportMetric(float64(h.MemoryBound())/(1<<20), "MiB-bound")
	b.ReportMetric(float64(peak-min(peak, base.HeapAlloc))/(1<<20), "MiB-peak-heap")
}
