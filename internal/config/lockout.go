package config

import "time"

// LockoutConfig is how failed sign-ins lock an account and block an IP.
type LockoutConfig struct {
	Threshold      int           `env:"LOCKOUT_THRESHOLD" default:"5" doc:"Consecutive failed sign-ins that lock an account."`
	Base           time.Duration `env:"LOCKOUT_BASE" default:"1m" doc:"First lock; each further lock doubles it."`
	Max            time.Duration `env:"LOCKOUT_MAX" default:"1h" doc:"Longest lock."`
	IPFailureLimit int           `env:"LOGIN_IP_FAILURE_LIMIT" default:"100" doc:"Failed sign-ins from one IP, across accounts, that block the IP for the window (0: off)."`
	IPWindow       time.Duration `env:"LOGIN_IP_WINDOW" default:"15m" doc:"Window of GATEHOUSE_LOGIN_IP_FAILURE_LIMIT."`
}

func (l LockoutConfig) validate(string) []string {
	var r report
	r.inRange(1, 100, namedInt{"LOCKOUT_THRESHOLD", l.Threshold})
	if l.Base < time.Second {
		r.bad("LOCKOUT_BASE", "must be at least 1s")
	}
	if l.Max < l.Base {
		r.bad("LOCKOUT_MAX", "must be at least GATEHOUSE_LOCKOUT_BASE")
	}
	if l.IPFailureLimit < 0 {
		r.bad("LOGIN_IP_FAILURE_LIMIT", "must not be negative")
	}
	if l.IPWindow < time.Second {
		r.bad("LOGIN_IP_WINDOW", "must be at least 1s")
	}
	return r
}
