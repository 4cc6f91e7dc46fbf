package config

// SessionConfig is who may sign in and how many sessions a user may hold.
type SessionConfig struct {
	RequireVerifiedEmail bool   `env:"REQUIRE_VERIFIED_EMAIL" default:"true" doc:"Refuse sign-in until the email address is verified."`
	MaxPerUser           int    `env:"MAX_SESSIONS_PER_USER" default:"0" doc:"Concurrent sessions per user (0: no limit)."`
	LimitPolicy          string `env:"SESSION_LIMIT_POLICY" default:"end_oldest" doc:"Over the session limit: end_oldest (end the oldest session) or refuse (refuse the new login)."`
}

func (s SessionConfig) validate(string) []string {
	var r report
	if s.MaxPerUser < 0 {
		r.bad("MAX_SESSIONS_PER_USER", "must not be negative")
	}
	switch s.LimitPolicy {
	case "end_oldest", "refuse":
	default:
		r.bad("SESSION_LIMIT_POLICY", "%q is not a policy (want end_oldest or refuse)", s.LimitPolicy)
	}
	return r
}
