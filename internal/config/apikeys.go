package config

import "time"

// APIKeyConfig is the handling of API keys.
type APIKeyConfig struct {
	MaxTTL           time.Duration `env:"API_KEY_MAX_TTL" default:"8760h" doc:"The longest an API key may live; a key created without expires_at lives this long."`
	LeakReportSecret string        `env:"LEAK_REPORT_SECRET" secret:"true" doc:"Shared secret of POST /v1/api-keys/leaked: reports are signed with HMAC-SHA256 of the body in X-Hub-Signature-256, as GitHub secret scanning signs them. Empty: the endpoint refuses every report."`
}

func (a APIKeyConfig) validate(string) []string {
	var r report
	if a.MaxTTL < time.Hour || a.MaxTTL > 10*365*24*time.Hour {
		r.bad("API_KEY_MAX_TTL", "must be between 1h and 87600h")
	}
	if a.LeakReportSecret != "" && len(a.LeakReportSecret) < 16 {
		r.bad("LEAK_REPORT_SECRET", "must be at least 16 characters")
	}
	return r
}
