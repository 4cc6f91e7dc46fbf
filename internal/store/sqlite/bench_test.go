package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
)

// go test -run '^$' -bench Rotation -benchtime 5s ./internal/store/sqlite
func BenchmarkRotation(b *testing.B) {
	s, err := sqlite.Open(b.Context(), sqlite.Config{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.Migrator().Up(b.Context()); err != nil {
		b.Fatal(err)
	}
	storetest.BenchmarkRotation(b, s, nil) // the database runs in this process
}
