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

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Client scopes with a meaning to Gatehouse itself.
const (
	ScopeIntrospect = "introspect" // may call the introspection endpoint
	ScopeRevoke     = "revoke"     // may revoke any token, not only its own
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

	cache ttlCache[store.Client]
}

// lookup returns the client, from the cache when fresh.
func (c *Clients) lookup(ctx context.Context, id string) (store.Client, error) {
	if c.CacheTTL > 0 {
		if cl, ok := c.cache.get(id, c.Now()); ok {
			return cl, nil
		}
	}
	cl, err := c.Store.GetClient(ctx, id)
	if err != nil || c.CacheTTL <= 0 {
		return cl, err
	}
	c.cache.put(id, cl, c.Now().Add(c.CacheTTL))
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

// Create registers a client and returns its secret (never stored).
func (c *Clients) Create(ctx context.Context, name string, scopes []string, actor Actor) (NewClient, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return NewClient{}, errors.New("oauth: a client name of 1 to 200 characters is required")
	}
	idPart, err := secret.NewToken(16)
	if err != nil {
		return NewClient{}, err
	}
	sec, err := secret.NewToken(32)
	if err != nil {
		return NewClient{}, err
	}
	now := c.Now().UTC()
	cl, err := c.Store.CreateClient(ctx, store.Client{
		ID: "gh_" + idPart, Name: name, SecretHash: secret.HashToken(sec), Scopes: scopes, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return NewClient{}, err
	}
	if err := c.Store.AppendAuditEvent(ctx, store.AuditEvent{
		OccurredAt: now, ActorID: actor.UserID, SubjectID: cl.ID, Action: "client.created",
		IP: actor.IP, UserAgent: actor.UserAgent, RequestID: actor.RequestID,
		Data: map[string]any{"name": name, "scopes": scopes},
	}); err != nil {
		return NewClient{}, err
	}
	return NewClient{Client: cl, Secret: sec}, nil
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
	ok := secret.Equal(secret.HashToken(sec), cl.SecretHash)
	if !ok || !cl.DisabledAt.IsZero() {
		return store.Client{}, false, nil
	}
	return cl, true, nil
}
