package config

// RateLimitConfig caps registrations and account emails per hour.
type RateLimitConfig struct {
	RegisterPerIP   int `env:"REGISTER_LIMIT_PER_IP" default:"100" doc:"Registrations per client IP per hour (over it: 429)."`
	EmailPerAddress int `env:"EMAIL_LIMIT_PER_ADDRESS" default:"5" doc:"Verification and reset emails per address per hour (over it, requests are answered alike but nothing is sent)."`
	EmailPerIP      int `env:"EMAIL_LIMIT_PER_IP" default:"50" doc:"Verification and reset email requests per client IP per hour (answered alike; nothing is sent over it)."`
}

func (l RateLimitConfig) validate(string) []string {
	var r report
	r.inRange(1, 1000000,
		namedInt{"REGISTER_LIMIT_PER_IP", l.RegisterPerIP},
		namedInt{"EMAIL_LIMIT_PER_ADDRESS", l.EmailPerAddress},
		namedInt{"EMAIL_LIMIT_PER_IP", l.EmailPerIP})
	return r
}
