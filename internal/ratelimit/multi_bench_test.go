package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkCheckAll measures one CheckAll of three checks (an IP, an
// account, a route, as a login would apply), on memory and on Redis:
//
//   - allowed: every call is allowed and counted, over many keys, the
//     common case;
//   - refused: every call is refused by a blocked key (a flood from one
//     limited IP), which records the refusal in the penalty state;
//   - refused-parallel: the same from 8 goroutines per CPU at once.
//
// Run: go test ./internal/ratelimit/ -run '^$' -bench CheckAll -benchmem
func BenchmarkCheckAll(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		benchCheckAll(b, func(b *testing.B) MultiLimiter { return NewMemoryMulti(nil) })
	})
	b.Run("redis", func(b *testing.B) {
		benchCheckAll(b, func(b *testing.B) MultiLimiter {
			l, _, _ := newRedisMulti(b)
			return l
		})
	})
}

func benchCheckAll(b *testing.B, newMulti func(*testing.B) MultiLimiter) {
	pen := &Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}
	roomy := Limit{Rate: 1 << 30, Burst: 1 << 30, Period: time.Hour} // never runs out
	const keys = 4096
	ips, users := make([]string, keys), make([]string, keys)
	for i := range keys {
		ips[i] = "login-ip:192.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
		users[i] = "login-user:" + strconv.Itoa(i)
	}

	b.Run("allowed", func(b *testing.B) {
		l := newMulti(b)
		i := 0
		for b.Loop() {
			rs, err := l.CheckAll(b.Context(), []Check{
				{Key: ips[i%keys], Limit: roomy, Penalty: pen},
				{Key: users[i%keys], Limit: roomy, Penalty: pen},
				{Key: "route:login", Limit: roomy},
			})
			if err != nil || !rs[0].Allowed || !rs[1].Allowed || !rs[2].Allowed {
				b.Fatalf("call %d: %+v, %v; want allowed", i, rs, err)
			}
			i++
		}
	})

	blocked := func(b *testing.B) (MultiLimiter, []Check) {
		l := newMulti(b)
		checks := []Check{
			{Key: "login-ip:192.0.2.1", Limit: Limit{Rate: 1, Burst: 1, Period: time.Hour}, Penalty: pen},
			{Key: "login-user:alice", Limit: roomy, Penalty: pen},
			{Key: "route:login", Limit: roomy},
		}
		for range 3 { // allowed, refused, blocked
			if _, err := l.CheckAll(b.Context(), checks); err != nil {
				b.Fatal(err)
			}
		}
		return l, checks
	}
	b.Run("refused", func(b *testing.B) {
		l, checks := blocked(b)
		for b.Loop() {
			rs, err := l.CheckAll(b.Context(), checks)
			if err != nil || !rs[0].Penalised {
				b.Fatalf("%+v, %v; want blocked", rs, err)
			}
		}
	})
	// As a server sees a flood: many requests at once.
	b.Run("refused-parallel", func(b *testing.B) {
		l, checks := blocked(b)
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rs, err := l.CheckAll(b.Context(), checks)
				if err != nil || !rs[0].Penalised {
					b.Errorf("%+v, %v; want blocked", rs, err)
					return
				}
			}
		})
	})
}
