// Package oauth serves the OAuth 2.0 endpoints: the token endpoint
// (refresh_token and client_credentials grants, RFC 6749), token
// introspection (RFC 7662), token revocation (RFC 7009) and discovery, and
// manages the registered clients that call them. Errors on these endpoints
// use the RFC 6749 shape, not problem+json.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/ttlcache"
)

// Client scopes with a meaning to Gatehouse itself.
const (
	ScopeIntrospect = apis.ScopeIntrospect // may call the introspection endpoint
	ScopeRevoke     = apis.ScopeRevoke     // may revoke any token, not only its own
)

// ErrInvalidScope is a scope name that is not well formed.
var ErrInvalidScope = errors.New("oauth: invalid scope")

// Clients registers and looks up OAuth clients. Secrets are 256-bit random
// values, shown once and stored as SHA-256 hashes.
type Clients struct {
	Store interface {
		store.ClientStore
		AppendAuditEvent(ctx context.Context, e store.AuditEvent) error
	}
	Now func() time.Time
	// CacheTTL, when positive, keeps looked-up clients in memory this long,
	// so introspection and revocation calls do not each query the
	// database for the caller; a deleted or disabled client keeps working
	// on a node for at most this long.
	CacheTTL time.Duration

	cache ttlcache.Cache[store.Client]
}

// lookup returns the client, from the cache when fresh.
func (c *Clients) lookup(ctx context.Context, id string) (store.Client, error) {
	if c.CacheTTL > 0 {
		if cl, ok := c.cache.Get(id, c.Now()); ok {
			return cl, nil
		}
	}
	cl, err := c.Store.GetClient(ctx, id)
	if err != nil || c.CacheTTL <= 0 {
		return cl, err
	}
	c.cache.Put(id, cl, c.Now().Add(c.CacheTTL))
	return cl, nil
}

// NewClient is a registered client with its secret, as returned once.
type NewClient struct {
	Client store.Client
	Secret string
}

// ParseScopes splits the comma- or space-separated scope list of the
// clients create --scopes flag and checks each name (RFC 6749 scope-token
// characters). Scopes sent to the endpoints are space-delimited only; see
// parseScopeParam.
func ParseScopes(s string) ([]string, error) {
	return scopeList(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }))
}

// parseScopeParam parses a scope request parameter (RFC 6749 §3.3): names
// delimited by spaces, so a comma is part of a name, not a separator.
func parseScopeParam(s string) ([]string, error) {
	return scopeList(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }))
}

// scopeList checks each name and drops repeats, keeping the first order.
func scopeList(names []string) ([]string, error) {
	var out []string
	for _, f := range names {
		if !validScopeToken(f) {
			return nil, fmt.Errorf("%w: %q", ErrInvalidScope, f)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// validScopeToken reports whether s is a scope-token: one or more of
// %x21 / %x23-5B / %x5D-7E (printable ASCII but space, '"' and '\').
func validScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// Actor is who registers a client, for the audit trail. A request through
// the admin API has an IP, a user agent and a request ID (ActorOf); the
// CLI has none of them, nor a user.
type Actor struct {
	UserID    string
	IP        string
	UserAgent string
	RequestID string
}

// ActorOf is the user userID acting through r.
func ActorOf(r *http.Request, userID string) Actor {
	m := httpapi.MetaOf(r, "")
	return Actor{UserID: userID, IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID}
}

// ClientOption sets more of a client being registered.
type ClientOption func(*store.Client)

// WithRateLimits puts the client in a tier of the rate-limit policy ("":
// none) and, with exempt, outside every rate limit. The caller checks that
// the policy declares the tier.
func WithRateLimits(tier string, exempt bool) ClientOption {
	return func(c *store.Client) { c.RateLimitTier, c.RateLimitExempt = tier, exempt }
}

// Create registers a confidential client and returns its secret (never
// stored).
func (c *Clients) Create(ctx context.Context, name string, scopes []string, actor Actor, opts ...ClientOption) (NewClient, error) {
	sec, err := secret.NewToken(32)
	if err != nil {
		return NewClient{}, err
	}
	spec := store.Client{Name: name, SecretHash: secret.HashToken(sec), Scopes: scopes}
	for _, o := range opts {
		o(&spec)
	}
	cl, err := c.create(ctx, spec, actor)
	if err != nil {
		return NewClient{}, err
	}
	return NewClient{Client: cl, Secret: sec}, nil
}

// ErrPublicScopes is a public client registered with scopes: they are the
// privileges of a client that authenticates (client_credentials,
// introspection, revocation), which a public client never gets.
var ErrPublicScopes = errors.New("oauth: a public client has no scopes")

// CreatePublic registers a public client (a mobile or single-page app): it
// has no secret and identifies itself by its client_id; users sign in
// through it (POST /v1/auth/login with its client_id) and it refreshes
// their tokens.
func (c *Clients) CreatePublic(ctx context.Context, name string, actor Actor, opts ...ClientOption) (store.Client, error) {
	spec := store.Client{Name: name, Public: true}
	for _, o := range opts {
		o(&spec)
	}
	return c.create(ctx, spec, actor)
}

// create stores cl under a new ID and records the registration.
func (c *Clients) create(ctx context.Context, cl store.Client, actor Actor) (store.Client, error) {
	name := strings.TrimSpace(cl.Name)
	if name == "" || len(name) > 200 {
		return store.Client{}, errors.New("oauth: a client name of 1 to 200 characters is required")
	}
	if cl.Public && len(cl.Scopes) > 0 {
		return store.Client{}, ErrPublicScopes
	}
	idPart, err := secret.NewToken(16)
	if err != nil {
		return store.Client{}, err
	}
	now := c.Now().UTC()
	cl.ID, cl.Name, cl.CreatedAt, cl.UpdatedAt = "gh_"+idPart, name, now, now
	data := map[string]any{"name": name, "scopes": cl.Scopes}
	cl, err = c.Store.CreateClient(ctx, cl)
	if err != nil {
		return store.Client{}, err
	}
	if cl.Public {
		data["public"] = true
	}
	if cl.RateLimitTier != "" {
		data["rate_limit_tier"] = cl.RateLimitTier
	}
	if cl.RateLimitExempt {
		data["rate_limit_exempt"] = true
	}
	if err := c.Store.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: now, ActorID: actor.UserID, SubjectID: cl.ID, Action: "client.created",
		IP: actor.IP, UserAgent: actor.UserAgent, RequestID: actor.RequestID, Data: data,
	}); err != nil {
		return store.Client{}, err
	}
	return cl, nil
}

// FirstPartyClient is the public client of Gatehouse's own API: the client
// of the sessions /v1/auth/login starts without a client_id. It is not
// stored; its ID cannot collide with a registered one ("gh_…").
var FirstPartyClient = store.Client{ID: session.FirstPartyClientID, Name: "Gatehouse", Public: true}

// Public returns the public client id: the first-party client or a
// registered public client that is not disabled. ok is false for any other
// ID (unknown, confidential or disabled), which must then authenticate
// with its secret.
func (c *Clients) Public(ctx context.Context, id string) (cl store.Client, ok bool, err error) {
	if id == FirstPartyClient.ID {
		return FirstPartyClient, true, nil
	}
	cl, err = c.lookup(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Client{}, false, nil
	}
	if err != nil {
		return store.Client{}, false, err
	}
	if !cl.Public || !cl.DisabledAt.IsZero() {
		return store.Client{}, false, nil
	}
	return cl, true, nil
}

// Authenticate checks a client's credentials in constant time; an unknown
// client costs the same comparison as a wrong secret.
func (c *Clients) Authenticate(ctx context.Context, id, sec string) (store.Client, bool, error) {
	cl, err := c.lookup(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		secret.Equal(secret.HashToken(sec), secret.HashToken("unknown client"))
		return store.Client{}, false, nil
	}
	if err != nil {
		return store.Client{}, false, err
	}
	// A public client has no secret: whatever is sent as one fails, as a
	// wrong secret does (its SecretHash is "", which no hash equals).
	ok := secret.Equal(secret.HashToken(sec), cl.SecretHash)
	if !ok || cl.Public || !cl.DisabledAt.IsZero() {
		return store.Client{}, false, nil
	}
	return cl, true, nil
}

// Get returns the registered client id as stored (store.ErrNotFound when
// there is none).
func (c *Clients) Get(ctx context.Context, id string) (store.Client, error) {
	return c.Store.GetClient(ctx, id)
}
