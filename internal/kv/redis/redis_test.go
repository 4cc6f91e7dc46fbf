package rediskv_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/kvtest"
	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// newClient returns a client for the test Redis and a prefix of its own.
func newClient(t *testing.T) (redis.UniversalClient, string) {
	t.Helper()
	url, prefix := testenv.Redis(t)
	client, err := rediskv.NewClient(rediskv.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client, prefix
}

func newStore(t *testing.T) (kv.Store, func(time.Duration)) {
	client, prefix := newClient(t)
	s := rediskv.New(client, prefix)
	t.Cleanup(func() { _ = s.Close() })
	return s, time.Sleep
}

func TestConformance(t *testing.T) {
	testenv.Redis(t) // skip (or fail) here rather than in every subtest
	kvtest.Run(t, newStore)
}

// TestPrefix checks, from Redis's side, that keys and channels carry the
// prefix, and that two prefixes on one client do not meet.
func TestPrefix(t *testing.T) {
	client, prefix := newClient(t)
	ctx := t.Context()
	a := rediskv.New(client, prefix+"a:")
	b := rediskv.New(client, prefix+"b:")
	if a.Client() != client {
		t.Fatal("Client() is not the client given to New")
	}

	if err := a.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := client.Get(ctx, prefix+"a:k").Result(); err != nil || got != "v" {
		t.Fatalf("raw GET %sa:k = %q, %v; want \"v\"", prefix, got, err)
	}
	if n, err := client.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("unprefixed key exists (%d, %v)", n, err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("b.Get(k): %v, want ErrNotFound", err)
	}

	raw := client.Subscribe(ctx, prefix+"a:chan")
	defer raw.Close()
	if _, err := raw.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "chan", []byte("from b")); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "chan", []byte("from a")); err != nil {
		t.Fatal(err)
	}
	m, err := raw.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Channel != prefix+"a:chan" || m.Payload != "from a" {
		t.Fatalf("raw subscriber got %q on %q, want \"from a\" on %q", m.Payload, m.Channel, prefix+"a:chan")
	}
}

// TestIncrTTLInRedis checks the expiry the Incr script sets, in Redis's own
// terms: set on creation, never on later calls.
func TestIncrTTLInRedis(t *testing.T) {
	client, prefix := newClient(t)
	ctx := t.Context()
	s := rediskv.New(client, prefix)
	if _, err := s.Incr(ctx, "n", 1, 1500*time.Microsecond+time.Minute); err != nil {
		t.Fatal(err)
	}
	d, err := client.PTTL(ctx, prefix+"n").Result()
	if err != nil || d <= 59*time.Second || d > time.Minute+2*time.Millisecond {
		t.Fatalf("PTTL = %v, %v; want about a minute", d, err)
	}
	if err := client.Persist(ctx, prefix+"n").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "n", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if d, err := client.PTTL(ctx, prefix+"n").Result(); err != nil || d != -1 {
		t.Fatalf("PTTL after a later Incr = %v, %v; want -1 (no expiry added)", d, err)
	}
}

func TestClientFromURL(t *testing.T) {
	url, _ := testenv.Redis(t)
	client, err := rediskv.NewClient(rediskv.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := rediskv.New(client, "").Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestNewClient(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		c, err := rediskv.NewClient(rediskv.Options{URL: "rediss://u:secret@cache.example:6380/3?pool_size=7"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o := c.(*redis.Client).Options()
		if o.Addr != "cache.example:6380" || o.DB != 3 || o.Username != "u" || o.Password != "secret" ||
			o.PoolSize != 7 || o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example" {
			t.Fatalf("options %+v", o)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		c, err := rediskv.NewClient(rediskv.Options{
			URL:     "redis://:secret@node1:7000?dial_timeout=2s",
			Addrs:   []string{"node2:7000", "node3:7000"},
			Cluster: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o := c.(*redis.ClusterClient).Options()
		if strings.Join(o.Addrs, ",") != "node1:7000,node2:7000,node3:7000" || o.Password != "secret" || o.DialTimeout != 2*time.Second {
			t.Fatalf("options %+v", o)
		}
	})
	t.Run("cluster with one seed", func(t *testing.T) {
		c, err := rediskv.NewClient(rediskv.Options{URL: "redis://config.example:6379", Cluster: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, ok := c.(*redis.ClusterClient); !ok {
			t.Fatalf("got %T, want *redis.ClusterClient", c)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		c, err := rediskv.NewClient(rediskv.Options{
			URL:              "redis://:secret@sentinel1:26379/2",
			Addrs:            []string{"sentinel2:26379"},
			MasterName:       "mymaster",
			SentinelPassword: "sentinel-secret",
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o := c.(*redis.Client).Options()
		// A failover client reaches the master through the sentinels.
		if o.Addr != "FailoverClient" || o.DB != 2 || o.Password != "secret" {
			t.Fatalf("options %+v", o)
		}
	})

	for name, o := range map[string]rediskv.Options{
		"no URL":                 {},
		"bad scheme":             {URL: "http://u:secret@host"},
		"unparsable":             {URL: "redis://u:secret@host:port:x\x7f"},
		"cluster and sentinel":   {URL: "redis://host", Cluster: true, MasterName: "m"},
		"addrs without mode":     {URL: "redis://host", Addrs: []string{"other:6379"}},
		"cluster with database":  {URL: "redis://host/1", Cluster: true},
		"bad extra address":      {URL: "redis://host", Cluster: true, Addrs: []string{"nohostport"}},
		"unix socket in cluster": {URL: "unix:///tmp/redis.sock", Cluster: true},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := rediskv.NewClient(o)
			if err == nil {
				c.Close()
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error repeats the password: %v", err)
			}
		})
	}
}
