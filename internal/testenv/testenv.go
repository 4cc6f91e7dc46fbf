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
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
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

// PostgresURL creates a fresh database on the server named by
// GATEHOUSE_TEST_DATABASE_URL and returns a URL pointing at it. The database
// is dropped when the test ends.
func PostgresURL(t testing.TB) string {
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
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
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
