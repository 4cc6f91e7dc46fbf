// Package throttle is the one rate limiter every route goes through: it
// applies the rules of the policy in force (ratepolicy) that cover a
// request, by the keys they name (client IP, user, email address, OAuth
// client), in one round trip to the shared counters
// (ratelimit.MultiLimiter), answers the IETF RateLimit headers, and
// refuses with 429 rate_limited before the route does any work. Refusals
// feed metrics and the admin report (/v1/admin/rate-limits).
package throttle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/ratepolicy"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Penalty is the progressive block of every rule with penalty: true:
// 1 min, 2, 4 … up to an hour, forgotten after an hour without refusals.
var Penalty = ratelimit.Penalty{Base: time.Minute, Max: time.Hour, Decay: time.Hour}

// BlockRule is the name under which the automated responses of threat
// detection block a client address (BlockIP): every sign-in route (the
// groups in BlockedGroups) refuses the address with 429 rate_limited,
// rule "security-block-ip", while the block lasts. An administrator lifts
// it like any rule's key (DELETE /v1/admin/rate-limits/keys/security-block-ip/{ip}).
const BlockRule = "security-block-ip"

// BlockPenalty is the growing block of BlockIP: 1 min, 2, 4 … up to a
// day, forgotten after a day without a block or a refused attempt.
var BlockPenalty = ratelimit.Penalty{Base: time.Minute, Max: 24 * time.Hour, Decay: 24 * time.Hour}

// BlockedGroups are the route groups a blocked address is refused: every
// way to sign in, sign up or ask for an email.
var BlockedGroups = []string{"login", "register", "email_request", "mfa_verify", "token", "oauth_start", "magic_link"}

// Clients authenticates the OAuth client a request names, for rules keyed
// by client (oauth.Clients).
type Clients interface {
	// Authenticate checks a confidential client's secret.
	Authenticate(ctx context.Context, id, secret string) (store.Client, bool, error)
}

// Deps are what a Throttle is built from.
type Deps struct {
	Policy  func() *ratepolicy.Policy // the policy in force (ratepolicy.Watcher.Policy)
	Limiter ratelimit.MultiLimiter
	// Bypass are the client networks never limited
	// (GATEHOUSE_RATE_LIMIT_BYPASS_CIDRS).
	Bypass []netip.Prefix
	// Users authenticates a request's bearer token, for rules keyed by
	// user (the token authenticator): the route reuses the outcome
	// (auth.Remember).
	Users   auth.Authenticator
	Clients Clients
	// Pseudonym turns a normalised email address into the key counted:
	// no counter holds an address.
	Pseudonym func(email string) string
	// KeyRefused is told of each request made with an API key that a
	// rule refused, with the key's principal and the rule's name (the
	// key's usage and audit trail); nil: nobody.
	KeyRefused func(r *http.Request, p auth.Principal, rule string)
	Stats      *Stats
	Metrics    *Metrics
	Log        *slog.Logger
}

// Throttle applies the policy. Build it with New.
type Throttle struct{ d Deps }

// New checks d.
func New(d Deps) (*Throttle, error) {
	if err := require.Deps("throttle", map[string]bool{
		"Policy": d.Policy != nil, "Limiter": d.Limiter != nil,
		"Clients": d.Clients != nil, "Pseudonym": d.Pseudonym != nil,
	}); err != nil {
		return nil, err
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Throttle{d: d}, nil
}

// maxPeek bounds the part of a JSON body read to find the email address.
const maxPeek = 64 << 10

// request is what the rules of one request may count by; each is resolved
// once, when a rule first needs it.
type request struct {
	t      *Throttle
	r      *http.Request
	ip     string
	client *store.Client // nil: no authenticated client
	// clientDone: authClient has run (client is its answer).
	clientDone bool
	// p is the authenticated caller once principalDone.
	p             auth.Principal
	principalDone bool
	loaded        map[ratepolicy.KeyPart]bool
	values        map[ratepolicy.KeyPart]string
	body          []byte // the start of the body, read once by peek
	peeked        bool
}

// peek returns the body, up to maxPeek bytes (nil when longer or
// unreadable), read once and put back for the route.
func (q *request) peek() []byte {
	if q.peeked {
		return q.body
	}
	q.peeked = true
	if q.r.Body == nil || q.r.Body == http.NoBody {
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(q.r.Body, maxPeek+1))
	rest := q.r.Body
	q.r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(raw), rest), rest}
	if err == nil && len(raw) <= maxPeek {
		q.body = raw
	}
	return q.body
}

// value returns the key part's value for the request, "" when it has none
// (the rule then does not apply to it).
func (q *request) value(part ratepolicy.KeyPart) (string, error) {
	if q.loaded[part] {
		return q.values[part], nil
	}
	var v string
	switch part {
	case "ip":
		v = httpapi.LimitKey(q.ip)
	case "email":
		v = q.email()
	case "user":
		p, err := q.principal()
		if err != nil {
			return "", err
		}
		v = p.UserID
	case "client":
		cl, err := q.authClient()
		if err != nil {
			return "", err
		}
		if cl != nil {
			v = cl.ID
		}
	case "api_key":
		p, err := q.principal()
		if err != nil {
			return "", err
		}
		v = p.APIKeyID
	}
	q.loaded[part], q.values[part] = true, v
	return v, nil
}

// principal authenticates the request's credentials (an access token or
// an API key) once, for rules by user or by API key and for an API key's
// tier; the route reuses the outcome (auth.Remember). A request without
// valid credentials has the zero Principal: the route answers 401 itself.
func (q *request) principal() (auth.Principal, error) {
	if q.principalDone || q.t.d.Users == nil {
		return q.p, nil
	}
	q.principalDone = true
	r, p, err := auth.Remember(q.r, q.t.d.Users)
	q.r = r
	switch {
	case err == nil:
		q.p = p
	case errors.Is(err, auth.ErrNoCredentials), errors.Is(err, auth.ErrInvalidToken):
	default:
		return auth.Principal{}, err
	}
	return q.p, nil
}

// email reads the "email" member of a JSON body, normalised and then
// pseudonymised; the body is put back for the route.
func (q *request) email() string {
	raw := q.peek()
	if raw == nil {
		return ""
	}
	var in struct {
		Email string `json:"email"`
	}
	if json.Unmarshal(raw, &in) != nil || in.Email == "" {
		return ""
	}
	norm := strings.ToLower(strings.TrimSpace(in.Email))
	return q.t.d.Pseudonym(norm)
}

// authClient authenticates the client of an /oauth2 request: HTTP Basic,
// or client_id and client_secret in a form body. A client that does not
// authenticate is none (rules by client do not apply; those by IP do).
func (q *request) authClient() (*store.Client, error) {
	if q.clientDone {
		return q.client, nil
	}
	q.clientDone = true
	id, sec, ok := q.r.BasicAuth()
	if ok {
		// RFC 6749 §2.3.1: form-encoded before Basic.
		var e1, e2 error
		id, e1 = url.QueryUnescape(id)
		sec, e2 = url.QueryUnescape(sec)
		if e1 != nil || e2 != nil {
			return nil, nil
		}
	} else if strings.HasPrefix(q.r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		raw := q.peek()
		if raw == nil {
			return nil, nil
		}
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, nil
		}
		id, sec = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" || sec == "" {
		return nil, nil
	}
	cl, ok, err := q.t.d.Clients.Authenticate(q.r.Context(), id, sec)
	if err != nil {
		return nil, err
	}
	if ok {
		q.client = &cl
	}
	return q.client, nil
}

// decision is one rule's check of a request.
type decision struct {
	rule  *ratepolicy.Rule
	key   string // the key counted, without the rule's name
	limit ratelimit.Limit
	res   ratelimit.CheckResult
}

// Guard is the httpapi.Guard of the public router.
func (t *Throttle) Guard(w http.ResponseWriter, r *http.Request, pattern string) (*http.Request, bool) {
	if httpapi.IsHealthCheck(r) {
		return r, true // load balancers must always get an answer
	}
	pol := t.d.Policy()
	group := ratepolicy.GroupOf(pattern, r.Header.Get("Authorization") != "" || r.Header.Get(auth.APIKeyHeader) != "")
	rules := pol.RulesFor(group, r.Method, r.URL.Path)
	blockable := slices.Contains(BlockedGroups, group)
	if len(rules) == 0 && !blockable {
		return r, true
	}
	start := time.Now()
	ip := httpapi.ClientIP(r.Context())
	if t.bypassed(ip) {
		t.d.Metrics.decisions(rules, "bypassed")
		return r, true
	}
	q := &request{t: t, r: r, ip: ip, loaded: map[ratepolicy.KeyPart]bool{}, values: map[ratepolicy.KeyPart]string{}}
	// A client exempt from rate limits, or in a tier, is known by its
	// credentials (an /oauth2 request), whatever the rules count by.
	cl, err := q.authClient()
	if err != nil {
		httpapi.ErrorWriter{Log: t.d.Log}.Write(w, q.r, err)
		return q.r, false
	}
	if cl != nil && cl.RateLimitExempt {
		t.d.Metrics.decisions(rules, "bypassed")
		return q.r, true
	}
	var ds []decision
	for _, rule := range rules {
		if isFeatureRule(rule.Name) {
			continue // applied by the feature, after validation
		}
		key, ok, err := q.key(rule)
		if err != nil {
			httpapi.ErrorWriter{Log: t.d.Log}.Write(w, q.r, err)
			return q.r, false
		}
		if !ok {
			continue
		}
		// A tier's limit applies where the rule counts by client, and an
		// API key's where it counts by key or by user (the key's owner).
		limit := rule.Limit
		if cl != nil && slices.Contains(rule.Key, ratepolicy.KeyClient) {
			limit = rule.LimitFor(cl.RateLimitTier)
		}
		if slices.Contains(rule.Key, ratepolicy.KeyAPIKey) || slices.Contains(rule.Key, ratepolicy.KeyUser) {
			p, err := q.principal()
			if err != nil {
				httpapi.ErrorWriter{Log: t.d.Log}.Write(w, q.r, err)
				return q.r, false
			}
			if p.APIKeyID != "" && p.RateLimitTier != "" {
				limit = rule.LimitFor(p.RateLimitTier)
			}
		}
		ds = append(ds, decision{rule: rule, key: key, limit: limit})
	}
	if len(ds) == 0 && !blockable {
		return q.r, true
	}
	checks := make([]ratelimit.Check, len(ds), len(ds)+1)
	for i, d := range ds {
		checks[i] = ratelimit.Check{Key: d.rule.Name + ":" + d.key, Limit: d.limit}
		if d.rule.Penalty {
			p := Penalty
			checks[i].Penalty = &p
		}
	}
	if blockable {
		// Last, in the same round trip: is the address blocked?
		p := BlockPenalty
		checks = append(checks, ratelimit.Check{Key: BlockRule + ":" + httpapi.LimitKey(ip), BlockOnly: true, Penalty: &p})
	}
	results, err := t.d.Limiter.CheckAll(q.r.Context(), checks)
	t.d.Metrics.observe(time.Since(start))
	if err != nil {
		// Fail closed: without the counters nothing is limited.
		httpapi.ErrorWriter{Log: t.d.Log}.Write(w, q.r, err)
		return q.r, false
	}
	if blockable {
		if b := results[len(results)-1]; !b.Allowed {
			t.d.Metrics.decision(BlockRule, "penalised")
			t.d.Stats.Refused(BlockRule, httpapi.LimitKey(ip))
			p := httpapi.NewProblem(http.StatusTooManyRequests, "rate_limited", "Too many requests; try again later.")
			p.RetryAfter = max(1, int(math.Ceil(b.RetryAfter.Seconds())))
			p.Rule = BlockRule
			httpapi.WriteProblem(w, q.r, p)
			return q.r, false
		}
	}
	var refused, nearest *decision
	for i := range ds {
		d := &ds[i]
		d.res = results[i]
		switch {
		case !d.res.Allowed && d.res.Penalised:
			t.d.Metrics.decision(d.rule.Name, "penalised")
		case !d.res.Allowed:
			t.d.Metrics.decision(d.rule.Name, "limited")
		default:
			t.d.Metrics.decision(d.rule.Name, "allowed")
		}
		if !d.res.Allowed {
			t.d.Stats.Refused(d.rule.Name, d.key)
			if !d.rule.Silent && (refused == nil || d.res.RetryAfter > refused.res.RetryAfter) {
				refused = d
			}
		}
		if !d.rule.Silent && (nearest == nil || d.res.Remaining < nearest.res.Remaining) {
			nearest = d
		}
	}
	if refused != nil {
		nearest = refused
	}
	if nearest != nil {
		setHeaders(w.Header(), nearest)
	}
	if refused != nil {
		if t.d.KeyRefused != nil && hasAPIKey(q.r) {
			if p, err := q.principal(); err == nil && p.APIKeyID != "" {
				t.d.KeyRefused(q.r, p, refused.rule.Name)
			}
		}
		p := httpapi.NewProblem(http.StatusTooManyRequests, "rate_limited", "Too many requests; try again later.")
		p.RetryAfter = max(1, int(math.Ceil(refused.res.RetryAfter.Seconds())))
		p.Rule = refused.rule.Name
		httpapi.WriteProblem(w, q.r, p)
		return q.r, false
	}
	// Only silent rules refused (an email address's sends): the route
	// answers as always and, told so, sends nothing.
	for _, d := range ds {
		if !d.res.Allowed {
			return q.r.WithContext(httpapi.WithSuppressed(q.r.Context())), true
		}
	}
	return q.r, true
}

// key is the rule's key for the request: its parts' values joined by "+";
// ok is false when the request lacks one of them.
func (q *request) key(rule *ratepolicy.Rule) (string, bool, error) {
	vals := make([]string, 0, len(rule.Key))
	for _, part := range rule.Key {
		v, err := q.value(part)
		if err != nil || v == "" {
			return "", false, err
		}
		vals = append(vals, v)
	}
	return strings.Join(vals, "+"), true, nil
}

func (t *Throttle) bypassed(ip string) bool { return inNetworks(t.d.Bypass, ip) }

// BlockIP blocks the client address ip from every sign-in route for a
// growing period (see Block).
func (t *Throttle) BlockIP(ctx context.Context, ip string) (ratelimit.Punishment, error) {
	return Block(ctx, t.d.Limiter, t.d.Bypass, ip)
}

// Block blocks the client address ip from every sign-in route of a
// Throttle on limiter for a growing period (BlockPenalty: each block of
// an address that was blocked within the last day is twice the last one),
// and returns the block. An address of the bypass networks is never
// blocked (zero Punishment). An IPv6 address is blocked with its /64, as
// rules count it.
func Block(ctx context.Context, limiter ratelimit.MultiLimiter, bypass []netip.Prefix, ip string) (ratelimit.Punishment, error) {
	if inNetworks(bypass, ip) {
		return ratelimit.Punishment{}, nil
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return ratelimit.Punishment{}, fmt.Errorf("throttle: %q is not an address", ip)
	}
	return limiter.Punish(ctx, BlockRule+":"+httpapi.LimitKey(ip), BlockPenalty)
}

// inNetworks reports whether the address ip is in one of nets.
func inNetworks(nets []netip.Prefix, ip string) bool {
	if len(nets) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// setHeaders writes the RateLimit-Policy and RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers, structured-field form) of the
// rule closest to refusing: its quota q per window w seconds, and r left
// with t seconds until the quota is whole again.
func setHeaders(h http.Header, d *decision) {
	// Built by hand: this runs on every limited request.
	name := strconv.AppendQuote(make([]byte, 0, 64), d.rule.Name)
	policy := append(name, ";q="...)
	policy = strconv.AppendInt(policy, int64(d.limit.Rate), 10)
	policy = append(policy, ";w="...)
	policy = strconv.AppendInt(policy, int64(math.Ceil(d.limit.Period.Seconds())), 10)
	h["Ratelimit-Policy"] = []string{string(policy)}
	left := append(policy[:len(name)], ";r="...)
	left = strconv.AppendInt(left, int64(max(0, d.res.Remaining)), 10)
	left = append(left, ";t="...)
	left = strconv.AppendInt(left, int64(max(0, int(math.Ceil(d.res.ResetAfter.Seconds())))), 10)
	h["Ratelimit"] = []string{string(left)}
}

// hasAPIKey reports whether r presents an API key (X-API-Key, or a bearer
// token in the API key format's "gh_" namespace).
func hasAPIKey(r *http.Request) bool {
	if r.Header.Get(auth.APIKeyHeader) != "" {
		return true
	}
	tok, ok := auth.BearerToken(r)
	return ok && strings.HasPrefix(tok, "gh_")
}
