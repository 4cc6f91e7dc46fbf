package config

import (
	"net"
	"net/url"
)

// RedisConfig is the shared ephemeral state; without it state stays in process.
type RedisConfig struct {
	URL        string   `env:"REDIS_URL" secret:"true" doc:"Redis URL (redis:// or rediss://). Empty: ephemeral state is kept in process (single node only)."`
	Addrs      []string `env:"REDIS_ADDRS" doc:"Extra Redis host:port addresses, for cluster or sentinel deployments."`
	MasterName string   `env:"REDIS_MASTER_NAME" doc:"Sentinel master name; set it to talk to Redis through Sentinel."`
	Cluster    bool     `env:"REDIS_CLUSTER" default:"false" doc:"Talk to a Redis Cluster."`
	KeyPrefix  string   `env:"REDIS_KEY_PREFIX" default:"gatehouse:" doc:"Prefix of every Redis key and channel Gatehouse uses."`
}

func (rc RedisConfig) validate(string) []string {
	var r report
	if rc.URL != "" {
		u, err := url.Parse(rc.URL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			r.bad("REDIS_URL", "not a redis:// or rediss:// URL with a host")
		}
	}
	for _, a := range rc.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			r.bad("REDIS_ADDRS", "%q is not host:port", a)
		}
	}
	if (len(rc.Addrs) > 0 || rc.MasterName != "" || rc.Cluster) && rc.URL == "" {
		r.bad("REDIS_URL", "required when GATEHOUSE_REDIS_ADDRS, GATEHOUSE_REDIS_MASTER_NAME or GATEHOUSE_REDIS_CLUSTER is set")
	}
	if rc.Cluster && rc.MasterName != "" {
		r.bad("REDIS_CLUSTER", "cannot be combined with GATEHOUSE_REDIS_MASTER_NAME (sentinel)")
	}
	return r
}
