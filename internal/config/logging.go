package config

// LoggingConfig is what the logs say and how.
type LoggingConfig struct {
	Level  string `env:"LOG_LEVEL" default:"info" doc:"debug, info, warn or error."`
	Format string `env:"LOG_FORMAT" default:"json" doc:"json or text."`
	Debug  bool   `env:"DEBUG" default:"false" doc:"Debug mode (verbose errors in logs, debug logging); refused in production."`
}

func (l LoggingConfig) validate(env string) []string {
	var r report
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		r.bad("LOG_LEVEL", "%q is not a level (want debug, info, warn or error)", l.Level)
	}
	switch l.Format {
	case "json", "text":
	default:
		r.bad("LOG_FORMAT", "%q is not a format (want json or text)", l.Format)
	}
	if env == EnvProduction {
		if l.Debug {
			r.bad("DEBUG", "debug mode is refused in production")
		}
		if l.Level == "debug" {
			r.bad("LOG_LEVEL", "debug logging is refused in production")
		}
	}
	return r
}
