package config

import (
	"fmt"
	"strings"
	"time"
)

// WebhookConfig is how events are delivered to customer endpoints.
type WebhookConfig struct {
	AllowPrivate  bool          `env:"WEBHOOK_ALLOW_PRIVATE" default:"false" doc:"Let webhook endpoints be on loopback, private, link-local and other internal addresses (development and tests only: it opens the server to request forgery)."`
	RetrySchedule string        `env:"WEBHOOK_RETRY_SCHEDULE" default:"5s,5m,30m,2h,5h,10h,10h" doc:"Waits between the attempts of a failing delivery, comma-separated (about 20% jitter; a longer Retry-After wins); after the last, the delivery is failed (the dead-letter queue)."`
	Timeout       time.Duration `env:"WEBHOOK_TIMEOUT" default:"10s" doc:"Time allowed for one delivery attempt (connection, request and response)."`
	SecretOverlap time.Duration `env:"WEBHOOK_SECRET_OVERLAP" default:"24h" doc:"After rotate-secret, how long the old secret keeps signing alongside the new one."`
	DisableAfter  time.Duration `env:"WEBHOOK_DISABLE_AFTER" default:"120h" doc:"An endpoint whose deliveries all failed for this long is disabled and the administrators are emailed."`
	Retention     time.Duration `env:"WEBHOOK_RETENTION" default:"720h" doc:"How long delivery records (attempts and responses) are kept."`
	Workers       int           `env:"WEBHOOK_WORKERS" default:"20" doc:"Webhook deliveries attempted at once on this node (their own queue, apart from emails)."`
}

func (c WebhookConfig) validate(env string) []string {
	var r report
	if c.AllowPrivate && env == EnvProduction {
		r.bad("WEBHOOK_ALLOW_PRIVATE", "is refused in production")
	}
	if _, err := ParseRetrySchedule(c.RetrySchedule); err != nil {
		r.bad("WEBHOOK_RETRY_SCHEDULE", "%v", err)
	}
	for _, d := range []struct {
		name   string
		v, min time.Duration
	}{
		{"WEBHOOK_TIMEOUT", c.Timeout, 100 * time.Millisecond},
		{"WEBHOOK_SECRET_OVERLAP", c.SecretOverlap, 0},
		{"WEBHOOK_DISABLE_AFTER", c.DisableAfter, time.Second},
		{"WEBHOOK_RETENTION", c.Retention, time.Hour},
	} {
		if d.v < d.min {
			r.bad(d.name, "%v is below %v", d.v, d.min)
		}
	}
	if c.Timeout > 5*time.Minute {
		r.bad("WEBHOOK_TIMEOUT", "%v is above 5m", c.Timeout)
	}
	r.inRange(1, 1000, namedInt{"WEBHOOK_WORKERS", c.Workers})
	return r
}

// ParseRetrySchedule reads a comma-separated list of positive durations
// (at least one, at most 50, each at most a week).
func ParseRetrySchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		d, err := time.ParseDuration(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration", part)
		}
		if d <= 0 || d > 7*24*time.Hour {
			return nil, fmt.Errorf("%q is not between 0 and 168h", part)
		}
		out = append(out, d)
	}
	if len(out) > 50 {
		return nil, fmt.Errorf("%d waits: at most 50", len(out))
	}
	return out, nil
}
