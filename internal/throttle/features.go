package throttle

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/ratepolicy"
)

// featureRules are the rules of the built-in policy that the features
// apply themselves, after they validated a request (so that a malformed
// request is answered as such and counts against nothing), by the prefix
// of the key they count: the guard leaves them alone.
var featureRules = map[string]string{
	"register:ip:":          "register-ip",
	"email:addr:":           "email-address",
	"email:ip:":             "email-ip",
	"magic:addr:":           "magic-link-address",
	"magic:ip:":             "magic-link-ip",
	"mfa:send:":             "mfa-send-user",
	"mfa:verify:":           "mfa-verify-user",
	"password-change:user:": "password-change-user",
}

// byAddress are the feature rules that count by client address: a bypass
// network skips them.
var byAddress = map[string]bool{"register-ip": true, "email-ip": true, "magic-link-ip": true}

// isFeatureRule reports whether a rule of this name is applied by a
// feature rather than by the guard.
func isFeatureRule(name string) bool {
	for _, n := range featureRules {
		if n == name {
			return true
		}
	}
	return false
}

// FeatureLimiter is the ratelimit.Limiter the features count with: a key
// of one of the policy's feature rules (register-ip, email-address, …) is
// counted under the rule of the policy in force (its limit and penalty,
// in the admin report and the metrics); a rule the policy lacks keeps the
// feature's built-in limit. Other keys (SMS, email changes) go to Inner
// as before.
type FeatureLimiter struct {
	// Bypass are the client networks never limited
	// (GATEHOUSE_RATE_LIMIT_BYPASS_CIDRS): the rules that count by client
	// address (register-ip, email-ip, magic-link-ip) do not count a
	// request from them. The rules that protect an account or an address
	// (email-address, mfa-verify-user …) still apply, like the login
	// lockout.
	Bypass  []netip.Prefix
	Inner   ratelimit.Limiter
	Multi   ratelimit.MultiLimiter
	Policy  func() *ratepolicy.Policy
	Stats   *Stats
	Metrics *Metrics
}

// AllowN implements ratelimit.Limiter.
func (f *FeatureLimiter) AllowN(ctx context.Context, key string, limit ratelimit.Limit, n int) (ratelimit.Result, error) {
	name, rest := featureOf(key)
	if name == "" || n != 1 {
		return f.Inner.AllowN(ctx, key, limit, n)
	}
	if byAddress[name] && bypassedKey(f.Bypass, rest) {
		f.Metrics.decision(name, "bypassed")
		return ratelimit.Result{Allowed: 1, Remaining: limit.Burst, RetryAfter: -1}, nil
	}
	check := ratelimit.Check{Key: name + ":" + rest, Limit: limit}
	if rule := f.Policy().Rule(name); rule != nil {
		check.Limit = rule.Limit
		if rule.Penalty {
			p := Penalty
			check.Penalty = &p
		}
	}
	start := time.Now()
	res, err := f.Multi.CheckAll(ctx, []ratelimit.Check{check})
	f.Metrics.observe(time.Since(start))
	if err != nil {
		return ratelimit.Result{}, err
	}
	r := res[0]
	switch {
	case r.Allowed:
		f.Metrics.decision(name, "allowed")
		return ratelimit.Result{Allowed: 1, Remaining: r.Remaining, RetryAfter: -1, ResetAfter: r.ResetAfter}, nil
	case r.Penalised:
		f.Metrics.decision(name, "penalised")
	default:
		f.Metrics.decision(name, "limited")
	}
	f.Stats.Refused(name, rest)
	return ratelimit.Result{Allowed: 0, Remaining: 0, RetryAfter: r.RetryAfter, ResetAfter: r.ResetAfter}, nil
}

// Reset implements ratelimit.Limiter.
func (f *FeatureLimiter) Reset(ctx context.Context, key string) error {
	if name, rest := featureOf(key); name != "" {
		return f.Multi.Lift(ctx, name+":"+rest)
	}
	return f.Inner.Reset(ctx, key)
}

// featureOf returns the feature rule of a key and the rest of the key.
func featureOf(key string) (name, rest string) {
	for prefix, n := range featureRules {
		if r, ok := strings.CutPrefix(key, prefix); ok {
			return n, r
		}
	}
	return "", ""
}

// bypassedKey reports whether the address part of a key counted by client
// address (httpapi.LimitKey: an IPv4 address, or an IPv6 /64) is in a
// bypass network; a /64 only when a network holds all of it.
func bypassedKey(nets []netip.Prefix, key string) bool {
	if a, err := netip.ParseAddr(key); err == nil {
		return inNetworks(nets, a.String())
	}
	p, err := netip.ParsePrefix(key)
	if err != nil {
		return false
	}
	for _, n := range nets {
		if n.Bits() <= p.Bits() && n.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
