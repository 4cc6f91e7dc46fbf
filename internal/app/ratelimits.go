package app

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/ratepolicy"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/throttle"
)

// rateDefaults are the numbers of the built-in rate-limit policy: the
// built-in ones, with those that have a setting taken from it.
func rateDefaults(cfg *config.Config) ratepolicy.Defaults {
	d := ratepolicy.Builtin()
	d.RegisterPerIP = ratepolicy.PerHour(cfg.RateLimits.RegisterPerIP)
	d.EmailPerAddress = ratepolicy.PerHour(cfg.RateLimits.EmailPerAddress)
	d.EmailPerIP = ratepolicy.PerHour(cfg.RateLimits.EmailPerIP)
	return d
}

// bypassNetworks parses GATEHOUSE_RATE_LIMIT_BYPASS_CIDRS (checked by
// config): a bare IP is its own /32 or /128.
func bypassNetworks(cfg *config.Config) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range cfg.RateLimits.BypassCIDRs {
		s = strings.TrimSpace(s)
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("GATEHOUSE_RATE_LIMIT_BYPASS_CIDRS: %q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// newThrottle builds the rate limiter of the public routes from the
// policy in force.
func newThrottle(d *deps, clients throttle.Clients) (*throttle.Throttle, error) {
	bypass, err := bypassNetworks(d.cfg)
	if err != nil {
		return nil, err
	}
	if d.limits == nil {
		// Without the serve loop (a test building the router alone):
		// the policy of no file.
		if d.limits, err = ratepolicy.NewWatcher("", rateDefaults(d.cfg), d.log, 0); err != nil {
			return nil, err
		}
	}
	return throttle.New(throttle.Deps{
		Policy: d.limits.Policy, Limiter: d.state.multi, Bypass: bypass,
		Users: d.keyAuthenticator(), Clients: clients, KeyRefused: d.keyRefused,
		Pseudonym: func(email string) string { return d.keys.Pseudonym(secret.RateLimitPurpose, email) },
		Stats:     d.rateStats, Metrics: d.rateMetrics, Log: d.log,
	})
}
