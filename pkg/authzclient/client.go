// Package authzclient asks Gatehouse whether a user may do something, from
// a Go service behind Gatehouse (a resource server): a Client for its
// permission check API (POST /v1/authz/check) with a short local cache,
// and a net/http middleware that lets a request through only when the
// check allows it.
//
//	httpClient := (&clientcredentials.Config{
//		ClientID: id, ClientSecret: secret,
//		TokenURL: "https://auth.example.com/oauth2/token",
//		Scopes:   []string{"authz:check"},
//	}).Client(ctx)
//	c := authzclient.New(authzclient.Config{BaseURL: "https://auth.example.com", HTTPClient: httpClient})
//	…
//	mux.Handle("GET /invoices/{id}", accesstoken.Middleware(v)(
//		c.Require("invoices:read", authzclient.AccessTokenSubject(invoice))(showInvoice)))
//
// The HTTP client must carry a client token with the scope authz:check
// (golang.org/x/oauth2/clientcredentials does that). Decisions are cached
// for CacheTTL (5 seconds by default), keyed by the whole check: a grant
// revoked in Gatehouse may still be honoured here that long. The
// middleware fails closed: when Gatehouse cannot be asked, the request is
// refused (503 or 502), never let through.
//
// This package imports nothing from Gatehouse's internal packages.
package authzclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultCacheTTL  = 5 * time.Second
	DefaultCacheSize = 10_000
)

// Config configures a Client.
type Config struct {
	// BaseURL is Gatehouse's address, e.g. "https://auth.example.com".
	BaseURL string
	// HTTPClient sends the checks; it must authenticate them with a client
	// token holding the scope authz:check (for example the client of
	// golang.org/x/oauth2/clientcredentials). Nil is http.DefaultClient,
	// which sends no token.
	HTTPClient *http.Client
	// CacheTTL is how long a decision is reused for the same check
	// (DefaultCacheTTL when zero; negative disables the cache).
	CacheTTL time.Duration
	// CacheSize bounds the number of decisions kept (DefaultCacheSize
	// when zero or negative).
	CacheSize int
	// Now is the clock of the cache (time.Now when nil).
	Now func() time.Time
}

// Resource is what a check asks about; conditions see it as resource.*.
// Leave out what the application does not know.
type Resource struct {
	Type           string         `json:"type,omitempty"`
	ID             string         `json:"id,omitempty"`
	OrganizationID string         `json:"organization_id,omitempty"`
	OwnerID        string         `json:"owner_id,omitempty"`
	Attributes     map[string]any `json:"attributes,omitempty"`
}

// Context is the request a check is made for; conditions see it as
// request.*. A zero Time is Gatehouse's now; leave it zero unless the
// check is about another instant, or the cache never hits.
type Context struct {
	IP      string    `json:"ip,omitempty"`
	Time    time.Time `json:"-"`
	MFA     bool      `json:"mfa,omitempty"`
	Country string    `json:"country,omitempty"`
}

// MarshalJSON writes Time in RFC 3339 form, or leaves it out when zero.
func (c Context) MarshalJSON() ([]byte, error) {
	type plain Context
	out := struct {
		plain
		Time string `json:"time,omitempty"`
	}{plain: plain(c)}
	if !c.Time.IsZero() {
		out.Time = c.Time.UTC().Format(time.RFC3339)
	}
	return json.Marshal(out)
}

// Check is one permission check: may Subject (a user ID) hold Permission
// ("invoices:read") on Resource?
type Check struct {
	Subject    string    `json:"subject"`
	Permission string    `json:"permission"`
	Resource   *Resource `json:"resource,omitempty"`
	Context    *Context  `json:"context,omitempty"`
}

// Match is a rule that decided: the grant, the role holding the rule and
// the chain of role names from the granted role to it.
type Match struct {
	GrantID string   `json:"grant_id"`
	Role    string   `json:"role"`
	Via     []string `json:"via"`
}

// Result is Gatehouse's decision. Reason is a stable code: allowed,
// denied_by_rule, no_matching_grant, condition_failed …
type Result struct {
	Allowed  bool    `json:"allowed"`
	Reason   string  `json:"reason"`
	Matched  []Match `json:"matched"`
	DeniedBy *Match  `json:"denied_by,omitempty"`
}

// ErrUnavailable is a check that could not reach Gatehouse (a network
// failure or a timeout); the error returned wraps it and the cause.
var ErrUnavailable = errors.New("authzclient: Gatehouse is unavailable")

// Error is an answer of Gatehouse other than a decision: its problem
// details (status and stable code), for example 401 for a client token
// that is missing or expired, 403 insufficient_scope without authz:check,
// 422 for an invalid permission.
type Error struct {
	Status int
	Code   string
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("authzclient: Gatehouse answered %d %s: %s", e.Status, e.Code, e.Detail)
}

// Client calls Gatehouse's check API. It is safe for concurrent use.
type Client struct {
	url  string
	http *http.Client
	ttl  time.Duration
	size int
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	res     Result
	expires time.Time
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		url:   strings.TrimRight(cfg.BaseURL, "/") + "/v1/authz/check",
		http:  cfg.HTTPClient,
		ttl:   cfg.CacheTTL,
		size:  cfg.CacheSize,
		now:   cfg.Now,
		cache: make(map[string]cached),
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.ttl == 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.size <= 0 {
		c.size = DefaultCacheSize
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Check asks Gatehouse for a decision, or reuses one made for the same
// check less than CacheTTL ago. A denial is a Result with Allowed false,
// not an error; errors are ErrUnavailable (wrapped) and *Error.
func (c *Client) Check(ctx context.Context, chk Check) (Result, error) {
	body, err := json.Marshal(chk)
	if err != nil {
		return Result{}, fmt.Errorf("authzclient: encode the check: %w", err)
	}
	key := string(body)
	if c.ttl > 0 {
		c.mu.Lock()
		e, ok := c.cache[key]
		c.mu.Unlock()
		if ok && c.now().Before(e.expires) {
			return e.res, nil
		}
	}
	res, err := c.ask(ctx, body)
	if err != nil {
		return Result{}, err
	}
	if c.ttl > 0 {
		c.store(key, res)
	}
	return res, nil
}

func (c *Client) store(key string, res Result) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cache[key]; !ok && len(c.cache) >= c.size {
		// Drop what has expired; if nothing has, an arbitrary entry.
		for k, e := range c.cache {
			if !now.Before(e.expires) {
				delete(c.cache, k)
			}
		}
		for k := range c.cache {
			if len(c.cache) < c.size {
				break
			}
			delete(c.cache, k)
		}
	}
	c.cache[key] = cached{res: res, expires: now.Add(c.ttl)}
}

func (c *Client) ask(ctx context.Context, body []byte) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("authzclient: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return Result{}, fmt.Errorf("%w: read the answer: %w", ErrUnavailable, err)
	}
	if res.StatusCode != http.StatusOK {
		e := &Error{Status: res.StatusCode}
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(raw, &p) == nil {
			e.Code, e.Detail = p.Code, p.Detail
		}
		return Result{}, e
	}
	var out Result
	if err := json.Unmarshal(raw, &out); err != nil {
		return Result{}, &Error{Status: res.StatusCode, Code: "invalid_response", Detail: "the answer is not a decision"}
	}
	return out, nil
}
