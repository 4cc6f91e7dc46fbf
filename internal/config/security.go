package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/security"
)

// SecurityConfig tunes the security events' correlation into incidents,
// the alerts to administrators and the automated responses (package
// security).
type SecurityConfig struct {
	AlertSeverity        string        `env:"SECURITY_ALERT_SEVERITY" default:"high" doc:"Security incidents and events at or above this severity (low, medium, high, critical) email the administrators and send security.incident_opened / security.alert webhook events."`
	EscalateAfter        time.Duration `env:"SECURITY_ESCALATE_AFTER" default:"4h" doc:"A notified incident still open this long after is notified again (security.incident_escalated), and again every period while it stays open; 0 never."`
	BlockIPs             bool          `env:"SECURITY_BLOCK_IPS" default:"true" doc:"Block the address of a credential-stuffing incident from every sign-in route for a growing period (1 min, 2, 4 … up to a day; rule security-block-ip), again at each failure once a block ended."`
	EndSessions          bool          `env:"SECURITY_END_SESSIONS" default:"true" doc:"End every session of the account of a high-severity incident (an account in use from too many countries)."`
	CredentialStuffing   string        `env:"SECURITY_CREDENTIAL_STUFFING" default:"20/1h" doc:"Distinct accounts (existing or not) one address must fail against within the window to open a credential_stuffing incident, as count/window; 0 turns the rule off."`
	AccountUnderAttack   string        `env:"SECURITY_ACCOUNT_UNDER_ATTACK" default:"10/1h" doc:"Distinct addresses failing against one account within the window for an account_under_attack incident, as count/window; 0 off."`
	SharedDevice         string        `env:"SECURITY_SHARED_DEVICE" default:"5/24h" doc:"Distinct accounts seen on one device fingerprint within the window for a shared_device incident, as count/window; 0 off."`
	AccountManyCountries string        `env:"SECURITY_ACCOUNT_MANY_COUNTRIES" default:"3/24h" doc:"Distinct countries one account is in use from (risk step-ups and blocks of its correct password, session anomalies, refresh token reuse) within the window for an account_many_countries incident, as count/window; 0 off."`
}

func (c SecurityConfig) validate(string) []string {
	var r report
	if !security.ValidSeverity(c.AlertSeverity) {
		r.bad("SECURITY_ALERT_SEVERITY", "%q is not a severity (want low, medium, high or critical)", c.AlertSeverity)
	}
	if c.EscalateAfter < 0 {
		r.bad("SECURITY_ESCALATE_AFTER", "must not be negative")
	}
	for _, f := range []struct{ name, v string }{
		{"SECURITY_CREDENTIAL_STUFFING", c.CredentialStuffing}, {"SECURITY_ACCOUNT_UNDER_ATTACK", c.AccountUnderAttack},
		{"SECURITY_SHARED_DEVICE", c.SharedDevice}, {"SECURITY_ACCOUNT_MANY_COUNTRIES", c.AccountManyCountries},
	} {
		if _, err := parseSecurityRule(f.v); err != nil {
			r.bad(f.name, "%v", err)
		}
	}
	return r
}

// parseSecurityRule reads count/window ("20/1h"), or "0" for a rule
// turned off.
func parseSecurityRule(s string) (security.Rule, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return security.Rule{}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 || count > security.MaxListed {
		return security.Rule{}, fmt.Errorf("%q: want count/window with a count from 1 to %d (such as 20/1h), or 0", s, security.MaxListed)
	}
	window, err := time.ParseDuration(w)
	if err != nil || window <= 0 {
		return security.Rule{}, fmt.Errorf("%q: the window must be a positive duration (such as 1h)", s)
	}
	return security.Rule{Threshold: count, Window: window}, nil
}

// Rules returns the correlation rules. Call it on a loaded (validated)
// Config.
func (c SecurityConfig) Rules() security.Rules {
	rule := func(s string) security.Rule { r, _ := parseSecurityRule(s); return r }
	return security.Rules{
		CredentialStuffing: rule(c.CredentialStuffing), AccountUnderAttack: rule(c.AccountUnderAttack),
		SharedDevice: rule(c.SharedDevice), AccountManyCountries: rule(c.AccountManyCountries),
	}
}

// Responses returns the alerting and automated response settings.
func (c SecurityConfig) Responses() security.ResponseSettings {
	return security.ResponseSettings{AlertSeverity: c.AlertSeverity, EscalateAfter: c.EscalateAfter, BlockIPs: c.BlockIPs, EndSessions: c.EndSessions}
}
