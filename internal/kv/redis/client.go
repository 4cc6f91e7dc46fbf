package rediskv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/redis/go-redis/v9"
)

// Options describe how to reach Redis.
//
// URL is a redis:// or rediss:// (TLS) URL in go-redis's format:
//
//	redis://[user:password@]host[:port][/db][?dial_timeout=3s&pool_size=20…]
//
// With neither MasterName nor Cluster it names a single server (a unix://
// socket URL is accepted in that mode too). Its credentials, TLS setting
// and query options apply to every connection in the other modes as well.
type Options struct {
	URL string

	// Addrs are further host:port seeds, beside the URL's host: cluster
	// nodes with Cluster, sentinels with MasterName. Not allowed for a
	// single server.
	Addrs []string

	// Cluster selects Redis Cluster; the URL's host and Addrs are seed
	// nodes. A database other than 0 is rejected, since Cluster has only 0.
	Cluster bool

	// MasterName selects Sentinel: the URL's host and Addrs are sentinels,
	// which are asked for the current master of this name. The URL's
	// credentials are for the Redis servers; SentinelUsername and
	// SentinelPassword, if the sentinels require them, for the sentinels.
	MasterName       string
	SentinelUsername string
	SentinelPassword string
}

// NewClient builds a go-redis client for a single server, a cluster or a
// sentinel-managed deployment. It does not connect; the first command does.
// Errors never repeat the URL, which may hold a password.
func NewClient(o Options) (redis.UniversalClient, error) {
	if o.URL == "" {
		return nil, errors.New("rediskv: URL is required")
	}
	if o.Cluster && o.MasterName != "" {
		return nil, errors.New("rediskv: Cluster and MasterName (sentinel) are mutually exclusive")
	}
	base, err := redis.ParseURL(o.URL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("rediskv: invalid URL: %w", err)
	}
	if !o.Cluster && o.MasterName == "" {
		if len(o.Addrs) > 0 {
			return nil, errors.New("rediskv: Addrs needs Cluster or MasterName")
		}
		return redis.NewClient(base), nil
	}

	if base.Network != "tcp" {
		return nil, errors.New("rediskv: cluster and sentinel need a redis:// or rediss:// URL")
	}
	for _, a := range o.Addrs {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			return nil, fmt.Errorf("rediskv: address %q is not host:port", a)
		}
	}
	u := universal(base)
	u.Addrs = append([]string{base.Addr}, o.Addrs...)
	if o.Cluster {
		if base.DB != 0 {
			return nil, fmt.Errorf("rediskv: Redis Cluster has only database 0, not %d", base.DB)
		}
		u.IsClusterMode = true // also with a single seed address
		return redis.NewClusterClient(u.Cluster()), nil
	}
	u.MasterName = o.MasterName
	u.SentinelUsername = o.SentinelUsername
	u.SentinelPassword = o.SentinelPassword
	return redis.NewFailoverClient(u.Failover()), nil
}

// universal carries the settings ParseURL understood over to the options
// for cluster and failover clients.
func universal(b *redis.Options) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		ClientName: b.ClientName,
		DB:         b.DB,
		Protocol:   b.Protocol,
		Username:   b.Username,
		Password:   b.Password,

		MaxRetries:      b.MaxRetries,
		MinRetryBackoff: b.MinRetryBackoff,
		MaxRetryBackoff: b.MaxRetryBackoff,

		DialTimeout:           b.DialTimeout,
		DialerRetries:         b.DialerRetries,
		DialerRetryTimeout:    b.DialerRetryTimeout,
		ReadTimeout:           b.ReadTimeout,
		WriteTimeout:          b.WriteTimeout,
		ContextTimeoutEnabled: b.ContextTimeoutEnabled,

		PoolFIFO:              b.PoolFIFO,
		PoolSize:              b.PoolSize,
		MaxConcurrentDials:    b.MaxConcurrentDials,
		PoolTimeout:           b.PoolTimeout,
		MinIdleConns:          b.MinIdleConns,
		MaxIdleConns:          b.MaxIdleConns,
		MaxActiveConns:        b.MaxActiveConns,
		ConnMaxIdleTime:       b.ConnMaxIdleTime,
		ConnMaxLifetime:       b.ConnMaxLifetime,
		ConnMaxLifetimeJitter: b.ConnMaxLifetimeJitter,

		TLSConfig: b.TLSConfig,

		DisableIdentity: b.DisableIdentity,
		IdentitySuffix:  b.IdentitySuffix,
	}
}

// RequiredEvictionPolicy is the maxmemory-policy Gatehouse needs: under
// memory pressure Redis must refuse writes rather than evict keys, since
// an evicted deny-list entry would let a revoked token through and an
// evicted counter would reset a lockout.
const RequiredEvictionPolicy = "noeviction"

// EvictionPolicy reads the server's maxmemory-policy (CONFIG GET). Managed
// services that disable CONFIG answer an error; on a cluster, the node
// asked answers.
func EvictionPolicy(ctx context.Context, client redis.UniversalClient) (string, error) {
	res, err := client.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return "", fmt.Errorf("rediskv: CONFIG GET maxmemory-policy: %w", err)
	}
	policy, ok := res["maxmemory-policy"]
	if !ok {
		return "", fmt.Errorf("rediskv: CONFIG GET maxmemory-policy: no value in the reply")
	}
	return policy, nil
}
