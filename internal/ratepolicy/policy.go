// Package ratepolicy is the rate-limit policy of the server (issue 15):
// named rules, each covering some routes, counting requests by a key and
// allowing a number of them per period. A request is checked against
// every rule that covers it (RulesFor).
//
// The built-in policy (Default) reproduces the limits the features
// applied on their own before; an operator replaces it with a YAML file
// (GATEHOUSE_RATE_LIMITS_FILE, read by Parse and kept current by a
// Watcher):
//
//	tiers: [free, enterprise]        # optional: the tier names rules may use
//	rules:
//	  - name: login-ip               # letters, digits, '.', '_', '-'; unique
//	    routes: [login]              # route groups and/or "METHOD /path" patterns
//	    key: ip                      # ip, user, email, client, api_key, or a combination: ip+email
//	    limit: 60/1m                 # N/period
//	    burst: 20                    # optional, default N
//	    penalty: true                # optional, default true
//	    tiers: {enterprise: 600/1m}  # optional: the limit of clients of a tier
//
// # Limits
//
// A limit is written N/period: at most N requests per period on average.
// The period is a unit, s (second), m (minute), h (hour) or d (day),
// optionally preceded by a count: 10/1m, 5/h, 100/15m, 1000/1d. Requests
// are counted with GCRA (see package ratelimit): one comes back every
// period/N, and up to burst (default N) may come at once.
//
// # Routes
//
// A route is a group name (Groups, described by GroupDoc) or a pattern: an
// optional method and a path, as in net/http, "POST /v1/auth/login". A
// path segment {name} matches any one segment, and a last segment * (or
// {name...}) matches anything below, so "/v1/admin/*" covers every admin
// call. A GET pattern also covers HEAD; a pattern without a method covers
// every method.
//
// # Keys
//
// A rule counts requests per value of its key (KeyPart): the client
// address (IPv6 by /64), the user, the normalised email address of the
// body, the OAuth client, the API key, or several joined with '+'. A
// request that has no value for a part of a rule's key (no user, no
// email) is not counted by that rule.
package ratepolicy

import (
	"strings"

	"github.com/gatehouse/gatehouse/internal/ratelimit"
)

// Groups are the named route groups a rule may cover (issue 15 item 1);
// GroupDoc describes each.
var Groups = []string{
	"login", "register", "email_request", "mfa_verify", "token", "introspect",
	"oauth_start", "magic_link", "api", "admin",
}

var groupDocs = map[string]string{
	"login":         "`POST /v1/auth/login` and `POST /v1/auth/passkey/finish`: sign-in with a password or a passkey.",
	"register":      "`POST /v1/auth/register`: sign-up.",
	"email_request": "`POST /v1/auth/password/forgot` and `POST /v1/auth/verify-email/resend`: requests that email an address. They are answered alike whatever the address, so rules covering them are silent.",
	"mfa_verify":    "`POST /v1/auth/mfa/verify`, `POST /v1/auth/reauthenticate`, `POST /v1/me/mfa/devices/{id}/confirm` and `POST /v1/me/passkeys/register/finish`: checks of a second factor (or of the password or a passkey, to reauthenticate) and registrations of one.",
	"token":         "`POST /oauth2/token` and `POST /oauth2/revoke`: the OAuth endpoints clients authenticate to, introspection aside.",
	"introspect":    "`POST /oauth2/introspect`: token introspection by resource servers.",
	"oauth_start":   "`GET /v1/auth/oauth/{provider}/start` and `POST /v1/me/identities/{provider}/link`: the start of a social sign-in or link.",
	"magic_link":    "`POST /v1/auth/magic-link`: asking for a sign-in link by email. It is answered alike whatever the address, so rules covering it are silent.",
	"api":           "Every other call to `/v1/*` authenticated with an access token, the admin API aside.",
	"admin":         "`/v1/admin/*`: the admin API.",
}

// GroupDoc describes the requests of a route group (Markdown, for the
// README), or returns "" for a name that is not a group.
func GroupDoc(group string) string { return groupDocs[group] }

// silentGroups answer alike whatever the address in the request, and
// silentEndpoints are their requests: a rule covering one must not show
// in headers, or its count would tell addresses apart.
var (
	silentGroups    = []string{"email_request", "magic_link"}
	silentEndpoints = []struct{ method, path string }{
		{"POST", "/v1/auth/password/forgot"}, {"POST", "/v1/auth/verify-email/resend"}, {"POST", "/v1/auth/magic-link"},
	}
)

// KeyPart is what a rule counts requests by.
type KeyPart string

// The key parts.
const (
	KeyIP     KeyPart = "ip"      // the client address, IPv6 by /64 (httpapi.LimitKey)
	KeyUser   KeyPart = "user"    // the signed-in user (or the user of the sign-in a second factor finishes)
	KeyEmail  KeyPart = "email"   // the normalised email address in the request body
	KeyClient KeyPart = "client"  // the OAuth client id
	KeyAPIKey KeyPart = "api_key" // the API key
)

// KeyParts lists every KeyPart.
var KeyParts = []KeyPart{KeyIP, KeyUser, KeyEmail, KeyClient, KeyAPIKey}

// Route is one thing a rule covers: a route group, or requests matching a
// method and path pattern.
type Route struct {
	// Group is one of Groups, or "" for a pattern.
	Group string
	// Method and Path are the pattern ("POST", "/v1/auth/login"): Path may
	// use {name} segments and end in /* (or {name...}); Method "" covers
	// every method. Both are "" when Group is set.
	Method, Path string
}

// String returns the route as written in a policy file.
func (rt Route) String() string {
	switch {
	case rt.Group != "":
		return rt.Group
	case rt.Method == "":
		return rt.Path
	}
	return rt.Method + " " + rt.Path
}

// Covers reports whether the route covers a request of route group group
// (may be "") with method and path (the request's URL path, cleaned).
func (rt Route) Covers(group, method, path string) bool {
	if rt.Group != "" {
		return rt.Group == group
	}
	if rt.Method != "" && rt.Method != method && (rt.Method != "GET" || method != "HEAD") {
		return false
	}
	return matchPath(rt.Path, path)
}

// matchPath reports whether path matches the pattern, a valid one (see
// checkPath), segment by segment without allocating.
func matchPath(pattern, path string) bool {
	if !strings.HasPrefix(path, "/") {
		return false
	}
	p, s := pattern[1:], path[1:]
	for {
		pseg, prest, pmore := strings.Cut(p, "/")
		if !pmore && isRest(pseg) {
			return true
		}
		sseg, srest, smore := strings.Cut(s, "/")
		if isWildcard(pseg) {
			if sseg == "" {
				return false
			}
		} else if pseg != sseg {
			return false
		}
		if pmore != smore {
			return false
		}
		if !pmore {
			return true
		}
		p, s = prest, srest
	}
}

// isRest reports whether a pattern segment matches the rest of a path.
func isRest(seg string) bool {
	return seg == "*" || (strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "...}"))
}

// isWildcard reports whether a pattern segment matches any one segment.
func isWildcard(seg string) bool {
	return strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}")
}

// Rule is one named limit.
type Rule struct {
	Name   string
	Routes []Route
	// Key is what requests are counted by: "ip+email" is [ip email].
	Key []KeyPart
	// Limit is the rate and burst (default burst: the rate).
	Limit ratelimit.Limit
	// Penalty blocks a key that keeps going after a refusal, for longer
	// each time (default true).
	Penalty bool
	// Tiers are the limits of clients (or API keys) of a tier, by tier
	// name; a tier's burst is its rate.
	Tiers map[string]ratelimit.Limit
	// Silent rules never show in RateLimit headers, and a refusal by one
	// must be answered like an accepted request: their counts would tell
	// whether an address is known. A rule is silent when its key includes
	// email or when it covers a route that answers alike whatever the
	// address (email_request, magic_link).
	Silent bool
}

// KeyString returns the key as written in a policy file: "ip+email".
func (r *Rule) KeyString() string {
	parts := make([]string, len(r.Key))
	for i, k := range r.Key {
		parts[i] = string(k)
	}
	return strings.Join(parts, "+")
}

// LimitFor returns the limit of a client of tier (may be ""): the rule's
// limit for that tier when it names one, else its Limit.
func (r *Rule) LimitFor(tier string) ratelimit.Limit {
	if l, ok := r.Tiers[tier]; ok && tier != "" {
		return l
	}
	return r.Limit
}

// Covers reports whether any route of the rule covers the request.
func (r *Rule) Covers(group, method, path string) bool {
	for _, rt := range r.Routes {
		if rt.Covers(group, method, path) {
			return true
		}
	}
	return false
}

// isSilent decides Rule.Silent.
func isSilent(key []KeyPart, routes []Route) bool {
	for _, k := range key {
		if k == KeyEmail {
			return true
		}
	}
	for _, rt := range routes {
		for _, g := range silentGroups {
			if rt.Group == g {
				return true
			}
		}
		for _, e := range silentEndpoints {
			if rt.Group == "" && rt.Covers("", e.method, e.path) {
				return true
			}
		}
	}
	return false
}

// Policy is a set of rules. It is not changed once built: a new file makes
// a new Policy.
type Policy struct {
	// Source is "default" or the path of the file.
	Source string
	// Tiers are the tier names rules may give limits for.
	Tiers []string
	Rules []Rule
}

// RulesFor returns the rules covering a request of route group group (may
// be "") with this method and path (the cleaned URL path), in policy
// order. The rules belong to the policy: do not change them.
func (p *Policy) RulesFor(group, method, path string) []*Rule {
	var out []*Rule
	for i := range p.Rules {
		if p.Rules[i].Covers(group, method, path) {
			out = append(out, &p.Rules[i])
		}
	}
	return out
}

// Rule returns the rule named name, or nil.
func (p *Policy) Rule(name string) *Rule {
	for i := range p.Rules {
		if p.Rules[i].Name == name {
			return &p.Rules[i]
		}
	}
	return nil
}

// groupRoutes are the routes (router patterns) of each named group but
// api and admin, as GroupDoc describes them.
var groupRoutes = map[string]string{
	"POST /v1/auth/login":                    "login",
	"POST /v1/auth/passkey/finish":           "login",
	"POST /v1/auth/register":                 "register",
	"POST /v1/auth/password/forgot":          "email_request",
	"POST /v1/auth/verify-email/resend":      "email_request",
	"POST /v1/auth/mfa/verify":               "mfa_verify",
	"POST /v1/auth/reauthenticate":           "mfa_verify",
	"POST /v1/me/passkeys/register/finish":   "mfa_verify",
	"POST /v1/me/mfa/devices/{id}/confirm":   "mfa_verify",
	"POST /oauth2/token":                     "token",
	"POST /oauth2/revoke":                    "token",
	"POST /oauth2/introspect":                "introspect",
	"GET /v1/auth/oauth/{provider}/start":    "oauth_start",
	"POST /v1/me/identities/{provider}/link": "oauth_start",
	"POST /v1/auth/magic-link":               "magic_link",
}

// GroupPatterns lists the router patterns the named groups cover (api and
// admin aside, which cover path prefixes), for a test that they are
// routes.
func GroupPatterns() []string { return sortedKeys(groupRoutes) }

// GroupOf names the route group of a request that matched the router
// pattern (such as "POST /v1/auth/login"); authenticated tells whether it
// carries credentials (an Authorization header). Every other
// authenticated /v1 call is "api", /v1/admin/* "admin"; anything else has
// no group (rules by method and path still apply).
func GroupOf(pattern string, authenticated bool) string {
	if g, ok := groupRoutes[pattern]; ok {
		return g
	}
	_, path, _ := strings.Cut(pattern, " ")
	switch {
	case strings.HasPrefix(path, "/v1/admin/"):
		return "admin"
	case strings.HasPrefix(path, "/v1/") && authenticated:
		return "api"
	}
	return ""
}
