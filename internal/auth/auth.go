// Package auth carries the authenticated caller (the Principal) through a
// request and guards handlers that need one. How a bearer token becomes a
// Principal is the job of an Authenticator (JWT access tokens, API keys …),
// plugged in at wiring time; handlers only ask for the Principal.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// Principal is who is calling.
type Principal struct {
	UserID    string
	SessionID string
	ClientID  string
	TokenID   string // jti of the access token
	Scopes    []string
	AMR       []string
	AuthTime  time.Time
	ExpiresAt time.Time

	// APIKeyID is the API key the caller authenticated with ("" for an
	// access token). Such a caller acts as the key's owner (UserID).
	APIKeyID string
	// KeyPermissions, for a personal API key, are the permission patterns
	// the key was given: the caller holds a permission only when the key
	// allows it and the owner holds it. Nil for no such restriction.
	KeyPermissions []string
	// RateLimitTier is the API key's rate-limit tier ("" for none).
	RateLimitTier string
}

// HasScope reports whether the principal was granted scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// IsClient reports whether the caller is an OAuth client acting for
// itself (a client_credentials token: the client is its subject, as RFC
// 9068 has it, and no user's session or API key is behind it), not a
// user. Its UserID is then the client's ID, no user's.
func (p Principal) IsClient() bool {
	return p.ClientID != "" && p.SessionID == "" && p.APIKeyID == "" && (p.UserID == "" || p.UserID == p.ClientID)
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal of an authenticated request.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// ErrInvalidToken is returned by authenticators for a missing, malformed,
// expired or revoked credential.
var ErrInvalidToken = errors.New("auth: invalid token")

// ErrNoCredentials is returned by authenticators for a request that
// carries no credentials of theirs at all (no Authorization header, or
// another scheme). It is an ErrInvalidToken too; Require answers it with a
// challenge that names no error (RFC 6750 §3.1).
var ErrNoCredentials = fmt.Errorf("%w: no credentials", ErrInvalidToken)

// ErrReauthRequired is a sensitive operation by a caller whose
// authentication (auth_time) is older than the operation allows: removing
// a second factor, linking an identity, changing the email address. It is
// the one error of that kind; a domain that wants a detail of its own
// wraps it (errors.Is holds) and maps its wrapper before Errors.
var ErrReauthRequired = errors.New("auth: recent authentication required")

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrReauthRequired, http.StatusForbidden, "reauthentication_required", "Sign in again (password or a second factor) within the last 5 minutes to do this."),
	}
}

// Authenticator turns a request's credentials into a Principal.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// APIKeyHeader carries an API key, as an alternative to "Authorization:
// Bearer gh_…".
const APIKeyHeader = "X-API-Key"

// BearerToken returns the token of an "Authorization: Bearer …" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// Unauthorized is the RFC 6750 401 problem for a token that was sent but
// is malformed, expired or revoked: WWW-Authenticate: Bearer
// error="invalid_token".
func Unauthorized() *httpapi.Problem {
	return challenge(`Bearer error="invalid_token"`)
}

// Unauthenticated is the RFC 6750 401 problem for a request without
// credentials: a bare "WWW-Authenticate: Bearer", since "the resource
// server SHOULD NOT include an error code" when the client did not try.
func Unauthenticated() *httpapi.Problem {
	return challenge("Bearer")
}

func challenge(header string) *httpapi.Problem {
	p := httpapi.NewProblem(http.StatusUnauthorized, "unauthorized", "A valid access token is required.")
	p.Header = http.Header{"WWW-Authenticate": {header}}
	return p
}

// Require wraps h so that it runs only for an authenticated caller, with
// the Principal in the request context; others get 401 with
// WWW-Authenticate (RFC 6750): no error code without credentials,
// error="invalid_token" for a bad one. Authenticator failures other than
// ErrInvalidToken (e.g. the deny list is unreachable) are server errors.
func Require(a Authenticator, h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := a.Authenticate(r)
		if errors.Is(err, ErrNoCredentials) {
			return Unauthenticated()
		}
		if errors.Is(err, ErrInvalidToken) {
			return Unauthorized()
		}
		if err != nil {
			return err
		}
		return h(w, r.WithContext(WithPrincipal(r.Context(), p)))
	}
}

// RequestMeta describes the client of r for what a change records: where
// the request came from (httpapi.MetaOf) and, when it is authenticated,
// the caller and when they last authenticated.
func RequestMeta(r *http.Request) httpapi.Meta {
	m := httpapi.MetaOf(r, "")
	if p, ok := FromContext(r.Context()); ok {
		m.ActorID, m.AuthTime = p.UserID, p.AuthTime
	}
	return m
}

// memoKey holds what Remember kept of a request's authentication.
type memoKey struct{}

type memo struct {
	raw string
	p   Principal
	err error
}

// Remember authenticates r with a (normally the bearer-token
// authenticator) and keeps the outcome in the returned request's context,
// for Recall: what runs before the route (the rate limiter, which counts
// a request by its user) and the route's own authenticator then share one
// verification of the token.
func Remember(r *http.Request, a Authenticator) (*http.Request, Principal, error) {
	p, err := a.Authenticate(r)
	raw, _ := BearerToken(r)
	return r.WithContext(context.WithValue(r.Context(), memoKey{}, memo{raw: raw, p: p, err: err})), p, err
}

// Recall returns what Remember kept for r, if it kept anything for the
// bearer token r carries now.
func Recall(r *http.Request) (p Principal, err error, ok bool) {
	m, found := r.Context().Value(memoKey{}).(memo)
	if raw, _ := BearerToken(r); !found || m.raw != raw {
		return Principal{}, nil, false
	}
	return m.p, m.err, true
}

// Authorizer decides whether a caller holds a permission: RBAC's check,
// for Gatehouse's own administration API. organizationID scopes the check
// to one organisation's resources ("" for global ones).
type Authorizer interface {
	Authorize(ctx context.Context, p Principal, permission, organizationID string) (bool, error)
}

// Admin guards the administration API: each route needs an authenticated
// caller holding a named permission ("users:read", "rbac:write" …).
type Admin struct {
	Authn Authenticator
	Authz Authorizer
}

// Forbidden is the 403 problem of a caller without the permission a route
// needs.
func Forbidden(permission string) *httpapi.Problem {
	p := httpapi.NewProblem(http.StatusForbidden, "forbidden", "This operation needs the permission "+permission+".")
	p.Permission = permission
	return p
}

// Require wraps h so that it runs only for a caller holding permission
// (globally): 401 without valid credentials, 403 without the permission.
func (a Admin) Require(permission string, h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return Require(a.Authn, func(w http.ResponseWriter, r *http.Request) error {
		p, _ := FromContext(r.Context())
		ok, err := a.Allowed(r.Context(), p, permission, "")
		if err != nil {
			return err
		}
		if !ok {
			return Forbidden(permission)
		}
		return h(w, r)
	})
}

// Handle mounts h on rt at pattern behind Require(permission), recording
// the permission with the route.
func (a Admin) Handle(rt *httpapi.Router, pattern, permission string, h httpapi.HandlerFunc) {
	rt.HandlePermission(pattern, permission, a.Require(permission, h))
}

// Allowed reports whether p holds permission for organizationID's
// resources ("" for global ones). A caller without a user (a client's own
// token) holds none.
func (a Admin) Allowed(ctx context.Context, p Principal, permission, organizationID string) (bool, error) {
	if p.UserID == "" || a.Authz == nil {
		return false, nil
	}
	return a.Authz.Authorize(ctx, p, permission, organizationID)
}
