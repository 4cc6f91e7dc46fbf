package postgres_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// go test -run '^$' -bench Rotation -benchtime 5s ./internal/store/postgres
func BenchmarkRotation(b *testing.B) {
	s, err := postgres.Open(b.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(b), MaxConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.Migrator().Up(b.Context()); err != nil {
		b.Fatal(err)
	}
	var cpu func() time.Duration
	if _, ok := postgresCPU(); ok {
		cpu = func() time.Duration { d, _ := postgresCPU(); return d }
	}
	storetest.BenchmarkRotation(b, s, cpu)
}

// postgresCPU sums the CPU time of this machine's postgres processes (false
// when there are none to read: the server runs elsewhere).
func postgresCPU() (time.Duration, bool) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	found := false
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "postgres" {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 13 {
			continue
		}
		// Fields 14 and 15 of stat (utime, stime), in clock ticks of 10 ms.
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
		found = true
	}
	return time.Duration(ticks) * 10 * time.Millisecond, found
}
