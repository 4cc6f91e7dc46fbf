package config

import "time"

// DatabaseConfig is the primary store: PostgreSQL, or SQLite in the data dir.
type DatabaseConfig struct {
	URL             string        `env:"DATABASE_URL" secret:"true" doc:"PostgreSQL URL (postgres://…). Empty: an SQLite file inside the data dir."`
	ReplicaURLs     []string      `env:"DATABASE_REPLICA_URLS" secret:"true" doc:"Comma-separated PostgreSQL read replica URLs for read-only queries."`
	MaxConns        int           `env:"DATABASE_MAX_CONNS" default:"20" doc:"Maximum PostgreSQL connections per pool."`
	MinConns        int           `env:"DATABASE_MIN_CONNS" default:"2" doc:"Connections the PostgreSQL pool keeps open when idle."`
	MaxConnLifetime time.Duration `env:"DATABASE_MAX_CONN_LIFETIME" default:"1h" doc:"Maximum lifetime of a PostgreSQL connection."`
	AutoMigrate     string        `env:"AUTO_MIGRATE" default:"" doc:"Apply migrations when serve starts: true or false. Empty: true in development and test, false in production."`
}

func (d DatabaseConfig) validate(string) []string {
	var r report
	if d.URL != "" {
		if err := checkPostgresURL(d.URL); err != nil {
			r.bad("DATABASE_URL", "%v", err)
		}
	}
	for i, u := range d.ReplicaURLs {
		if err := checkPostgresURL(u); err != nil {
			r.bad("DATABASE_REPLICA_URLS", "entry %d: %v", i+1, err)
		}
	}
	if len(d.ReplicaURLs) > 0 && d.URL == "" {
		r.bad("DATABASE_REPLICA_URLS", "replicas need GATEHOUSE_DATABASE_URL to point at the PostgreSQL primary")
	}
	r.inRange(1, 10000, namedInt{"DATABASE_MAX_CONNS", d.MaxConns})
	if d.MinConns < 0 || d.MinConns > d.MaxConns {
		r.bad("DATABASE_MIN_CONNS", "%d must be between 0 and GATEHOUSE_DATABASE_MAX_CONNS (%d)", d.MinConns, d.MaxConns)
	}
	if d.MaxConnLifetime < time.Second {
		r.bad("DATABASE_MAX_CONN_LIFETIME", "must be at least 1s")
	}
	switch d.AutoMigrate {
	case "", "true", "false":
	default:
		r.bad("AUTO_MIGRATE", "%q is not a boolean (want true, false or empty)", d.AutoMigrate)
	}
	return r
}
