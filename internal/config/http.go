package config

import "time"

// HTTPConfig is how the public listener treats requests: browsers, proxies,
// sizes, timeouts and TLS.
type HTTPConfig struct {
	CORSAllowedOrigins []string      `env:"CORS_ALLOWED_ORIGINS" doc:"Comma-separated origins allowed to call the API from a browser (e.g. https://app.example.com); https only in production, except localhost. Empty: none."`
	TrustedProxies     []string      `env:"TRUSTED_PROXIES" doc:"Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is trusted for the client IP."`
	MaxBodyBytes       int64         `env:"MAX_BODY_BYTES" default:"1048576" doc:"Largest request body accepted, in bytes."`
	MaxInflight        int           `env:"MAX_INFLIGHT" default:"0" doc:"Requests the public listener handles at once; beyond it a request is refused at once with 503 overloaded and Retry-After rather than queued (health checks and the admin listener never are). 0: 512 per CPU (GOMAXPROCS): at 1–5 ms a request a CPU works through 512 in 0.5–2.5 s, so bursts it can answer pass and only a pile-up headed for the timeouts is shed."`
	ReadHeaderTimeout  time.Duration `env:"READ_HEADER_TIMEOUT" default:"5s" doc:"Time allowed to read request headers."`
	ReadTimeout        time.Duration `env:"READ_TIMEOUT" default:"15s" doc:"Time allowed to read a whole request."`
	WriteTimeout       time.Duration `env:"WRITE_TIMEOUT" default:"30s" doc:"Time allowed to write a response."`
	IdleTimeout        time.Duration `env:"IDLE_TIMEOUT" default:"120s" doc:"Keep-alive idle timeout."`
	ShutdownTimeout    time.Duration `env:"SHUTDOWN_TIMEOUT" default:"15s" doc:"How long a graceful shutdown waits for in-flight requests and running jobs."`
	TLSCertFile        string        `env:"TLS_CERT_FILE" doc:"PEM certificate; with TLS_KEY_FILE the public listener serves HTTPS."`
	TLSKeyFile         string        `env:"TLS_KEY_FILE" doc:"PEM private key for TLS_CERT_FILE."`
}

func (h HTTPConfig) validate(env string) []string {
	r := h.corsProblems(env)
	for _, p := range h.TrustedProxies {
		if _, err := parseCIDROrIP(p); err != nil {
			r.bad("TRUSTED_PROXIES", "%q is not a CIDR or IP address", p)
		}
	}
	if h.MaxBodyBytes < 1024 || h.MaxBodyBytes > 100<<20 {
		r.bad("MAX_BODY_BYTES", "%d is out of range (1024–104857600)", h.MaxBodyBytes)
	}
	r.inRange(0, 1_000_000, namedInt{"MAX_INFLIGHT", h.MaxInflight})
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"READ_HEADER_TIMEOUT", h.ReadHeaderTimeout}, {"READ_TIMEOUT", h.ReadTimeout},
		{"WRITE_TIMEOUT", h.WriteTimeout}, {"IDLE_TIMEOUT", h.IdleTimeout}, {"SHUTDOWN_TIMEOUT", h.ShutdownTimeout},
	} {
		if d.d <= 0 {
			r.bad(d.name, "must be a positive duration")
		}
	}
	if (h.TLSCertFile == "") != (h.TLSKeyFile == "") {
		r.bad("TLS_CERT_FILE", "GATEHOUSE_TLS_CERT_FILE and GATEHOUSE_TLS_KEY_FILE must be set together")
	}
	return r
}

func (h HTTPConfig) corsProblems(env string) report {
	var r report
	for _, o := range h.CORSAllowedOrigins {
		if err := checkOrigin(o); err != nil {
			r.bad("CORS_ALLOWED_ORIGINS", "%v", err)
		}
	}
	if env != EnvProduction {
		return r
	}
	// A credentialed CORS origin served over http could be tampered with
	// on the way and then call the API as the user.
	for _, o := range h.CORSAllowedOrigins {
		if plainHTTP(o) {
			r.bad("CORS_ALLOWED_ORIGINS", "%q must use https:// in production", o)
		}
	}
	return r
}
