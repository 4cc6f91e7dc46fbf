package config

// RateLimitConfig is the rate-limit policy: its file, the networks it never
// limits, and the numbers of the built-in policy's rules for registrations
// and account emails.
type RateLimitConfig struct {
	File            string   `env:"RATE_LIMITS_FILE" doc:"YAML rate-limit policy replacing the built-in one (schema and example in the README); re-read on SIGHUP and when it changes. Empty: the built-in policy."`
	BypassCIDRs     []string `env:"RATE_LIMIT_BYPASS_CIDRS" doc:"Comma-separated CIDRs (or IPs) of trusted clients, such as a monitoring network, that no rate limit applies to (the per-account login lockout still does)."`
	RegisterPerIP   int      `env:"REGISTER_LIMIT_PER_IP" default:"100" doc:"Registrations per client IP per hour (over it: 429)."`
	EmailPerAddress int      `env:"EMAIL_LIMIT_PER_ADDRESS" default:"5" doc:"Verification and reset emails per address per hour (over it, requests are answered alike but nothing is sent)."`
	EmailPerIP      int      `env:"EMAIL_LIMIT_PER_IP" default:"50" doc:"Verification and reset email requests per client IP per hour (answered alike; nothing is sent over it)."`
}

func (l RateLimitConfig) validate(string) []string {
	var r report
	r.inRange(1, 1000000,
		namedInt{"REGISTER_LIMIT_PER_IP", l.RegisterPerIP},
		namedInt{"EMAIL_LIMIT_PER_ADDRESS", l.EmailPerAddress},
		namedInt{"EMAIL_LIMIT_PER_IP", l.EmailPerIP})
	for _, p := range l.BypassCIDRs {
		if _, err := parseCIDROrIP(p); err != nil {
			r.bad("RATE_LIMIT_BYPASS_CIDRS", "%q is not a CIDR or IP address", p)
		}
	}
	return r
}
