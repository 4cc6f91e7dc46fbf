// Package testenv gives tests their own isolated PostgreSQL database and
// Redis key prefix, taken from GATEHOUSE_TEST_DATABASE_URL and
// GATEHOUSE_TEST_REDIS_URL, and removes them again when the test ends.
//
// Without those variables the helpers skip the test, unless
// GATEHOUSE_TEST_REQUIRE_SERVICES=1 is set (as CI does), in which case a
// missing service fails the test instead of silently skipping it.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/store/postgres"
)

const (
	DatabaseURLVar     = "GATEHOUSE_TEST_DATABASE_URL"
	RedisURLVar        = "GATEHOUSE_TEST_REDIS_URL"
	RequireServicesVar = "GATEHOUSE_TEST_REQUIRE_SERVICES"
)

func missing(t testing.TB, name string) {
	t.Helper()
	if os.Getenv(RequireServicesVar) == "1" {
		t.Fatalf("%s is not set but %s=1", name, RequireServicesVar)
	}
	t.Skipf("%s not set; skipping test against the real service", name)
}

// RandomName returns prefix followed by 12 random hex characters.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// PostgresURL creates a fresh, empty database on the server named by
// GATEHOUSE_TEST_DATABASE_URL and returns a URL pointing at it. The database
// is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "")
}

// PostgresMigratedURL is PostgresURL, except that the new database already
// has every migration of the PostgreSQL store applied (and nothing else:
// no rows, no River tables). It is a clone (CREATE DATABASE … TEMPLATE) of
// a template database migrated once, which is much faster than running the
// migrations in every test. Use it only where the test would run
// Migrator().Up on an empty database right away; tests of the migrations
// themselves need PostgresURL.
//
// The template is named after a hash of the migration files
// (gatehouse_tmpl_<hash>) and left on the server for later runs: a changed
// migration set gets a new template, so a stale one is never used. Old
// templates are harmless; to remove one:
//
//	ALTER DATABASE gatehouse_tmpl_… IS_TEMPLATE false; DROP DATABASE gatehouse_tmpl_…;
func PostgresMigratedURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(DatabaseURLVar)
	if base == "" {
		missing(t, DatabaseURLVar)
	}
	tmpl.once.Do(func() { tmpl.name, tmpl.err = ensureTemplate(base, postgres.MigrationFiles()) })
	if tmpl.err != nil {
		t.Fatalf("testenv: migrated template database: %v", tmpl.err)
	}
	dbURL := newDatabase(t, tmpl.name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("testenv: connect to the new database: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, cloneFixups); err != nil {
		t.Fatalf("testenv: fix up the new database: %v", err)
	}
	return dbURL
}

// cloneFixups is run on every clone of the template: it redoes what the
// migrations make different in every database they run on, so that a
// clone is what migrating an empty database would have made, and not a
// copy of the template's values. TestCloneIsFreshlyMigrated fails when a
// migration adds such a value that is not redone here.
const cloneFixups = `
-- 0008: the revocation epoch is random per database.
UPDATE revocation_state SET epoch = md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text);
-- The runner records when each migration was applied: now, keeping their order.
UPDATE schema_migrations SET applied_at = applied_at + (clock_timestamp() - (SELECT max(applied_at) FROM schema_migrations));
`

// tmpl is this process's migrated template database, made or found once.
var tmpl struct {
	once sync.Once
	name string
	err  error
}

// templateVersion is part of the template's hash: bump it when the way the
// template is built changes (say, the migration runner's own tables), so
// that templates built the old way are no longer used.
const templateVersion = "gatehouse testenv template v1\n"

// templateLockKey is the session-level advisory lock under which test
// processes (go test runs packages in parallel) build templates.
const templateLockKey int64 = 0x67617465746d706c // "gatetmpl" in ASCII

// TemplateName returns the name of the template database for the migration
// files in fsys: gatehouse_tmpl_ and a hash of templateVersion, every file's
// name and every file's contents.
func TemplateName(fsys fs.FS) (string, error) {
	h := sha256.New()
	io.WriteString(h, templateVersion)
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		// Length-prefixed, so no two file sets hash the same bytes.
		fmt.Fprintf(h, "%d:%s%d:", len(path), path, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "gatehouse_tmpl_" + hex.EncodeToString(h.Sum(nil))[:24], nil
}

// ensureTemplate returns the name of the template database for the
// migrations in fsys, building it if the server does not have it yet.
func ensureTemplate(base string, fsys fs.FS) (string, error) {
	name, err := TemplateName(fsys)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", DatabaseURLVar, err)
	}
	defer admin.Close(context.Background())
	// Another process may be building the same template: wait for it.
	// Closing the connection releases the lock too.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return "", fmt.Errorf("take template lock: %w", err)
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", templateLockKey)
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}

	// Migrate under a temporary name and rename only when complete, so a
	// process that dies halfway never leaves a half-migrated template
	// under the real name.
	building := RandomName("gatehouse_test_")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	done := false
	defer func() {
		if !done {
			admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
		}
	}()
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", DatabaseURLVar, err)
	}
	u.Path = "/" + building
	s, err := postgres.Open(ctx, postgres.Config{URL: u.String(), MaxConns: 1})
	if err != nil {
		return "", err
	}
	m, err := s.MigratorFrom(fsys)
	if err == nil {
		_, err = m.Up(ctx)
	}
	s.Close()
	if err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	// A closed connection's server process may linger a moment; until it
	// is gone the database cannot be renamed.
	if err := retryInUse(ctx, func() error {
		_, err := admin.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name)
		return err
	}); err != nil {
		return "", fmt.Errorf("rename the template: %w", err)
	}
	done = true
	// Nobody may connect to the template (a connection would make cloning
	// fail), and it takes an ALTER to drop it.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return "", fmt.Errorf("mark the template: %w", err)
	}
	return name, nil
}

// retryInUse calls fn until it does not fail with "database is being
// accessed by other users" (SQLSTATE 55006), for up to 10 seconds.
func retryInUse(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// newDatabase creates a database (a copy of template unless template is
// "") that is dropped when the test ends, and returns its URL.
func newDatabase(t testing.TB, template string) string {
	t.Helper()
	base := os.Getenv(DatabaseURLVar)
	if base == "" {
		missing(t, DatabaseURLVar)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", DatabaseURLVar, err)
	}
	defer admin.Close(context.Background())
	name := RandomName("gatehouse_test_")
	create := "CREATE DATABASE " + name
	if template != "" {
		create += " TEMPLATE " + template
	}
	if err := retryInUse(ctx, func() error {
		_, err := admin.Exec(ctx, create)
		return err
	}); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: parse %s: %v", DatabaseURLVar, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Redis returns the URL of the test Redis server and a key prefix unique to
// this test. Every key under the prefix is deleted when the test ends.
func Redis(t testing.TB) (redisURL, prefix string) {
	t.Helper()
	redisURL = os.Getenv(RedisURLVar)
	if redisURL == "" {
		missing(t, RedisURLVar)
	}
	if _, err := redis.ParseURL(redisURL); err != nil {
		t.Fatalf("testenv: parse %s: %v", RedisURLVar, err)
	}
	prefix = RandomName("gatehouse_test_") + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := FlushRedisPrefix(ctx, redisURL, prefix); err != nil {
			t.Errorf("testenv: clean redis prefix %s: %v", prefix, err)
		}
	})
	return redisURL, prefix
}

// FlushRedisPrefix deletes every key under prefix (and the rate limiter's
// "rate:"+prefix) from the Redis at redisURL: what a restart without
// persistence, or a FLUSHALL, does to one installation's keys.
func FlushRedisPrefix(ctx context.Context, redisURL, prefix string) error {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	c := redis.NewClient(opts)
	defer c.Close()
	// redis_rate puts its own "rate:" in front of every key it writes.
	for _, pattern := range []string{escapeGlob(prefix) + "*", "rate:" + escapeGlob(prefix) + "*"} {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, 500).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				if err := c.Del(ctx, keys...).Err(); err != nil {
					return err
				}
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	return nil
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// Describe is used in failure messages.
func Describe() string {
	return fmt.Sprintf("%s=%q %s=%q", DatabaseURLVar, os.Getenv(DatabaseURLVar), RedisURLVar, os.Getenv(RedisURLVar))
}
