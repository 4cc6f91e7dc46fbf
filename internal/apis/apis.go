// Package apis registers the resource servers (APIs) that access tokens
// are issued for, and decides the audience and scope of a token from the
// RFC 8707 resource indicators a client asks for: a token asked for with
// resource=https://api.example.com carries that identifier as its aud, so
// another API, checking its own identifier, refuses it.
//
// Gatehouse's own API is the issuer; it needs no registration. When no
// resource is asked for, a token is for the default audience
// (GATEHOUSE_DEFAULT_AUDIENCE, the issuer unless set).
package apis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/ttlcache"
)

// UserScopes are the scopes of Gatehouse's own API that a user's token may
// carry; a sign-in that asks for no scope is granted all of them.
var UserScopes = []string{"openid", "profile", "email", "offline_access"}

// Client scopes with a meaning to Gatehouse itself.
const (
	ScopeIntrospect = "introspect"  // may call the introspection endpoint
	ScopeRevoke     = "revoke"      // may revoke any token, not only its own
	ScopeAuthzCheck = "authz:check" // may check any user's permissions (POST /v1/authz/check)
)

// ClientScopes are the scopes with a meaning to Gatehouse that a machine
// client may hold.
var ClientScopes = []string{ScopeIntrospect, ScopeRevoke, ScopeAuthzCheck}

// Errors of the resource and scope checks. The token endpoint answers
// them in RFC 6749 terms (invalid_target, RFC 8707 §2; invalid_scope),
// POST /v1/auth/login with the problem codes of the same names.
var (
	// ErrInvalidTarget is a resource that is not a registered API (nor
	// Gatehouse's own, nor the default audience), that is not an
	// absolute URI without a fragment, or that a refresh asks for beyond
	// what the sign-in was granted.
	ErrInvalidTarget = errors.New("apis: the resource is not a registered API or was not granted")
	// ErrInvalidScope is a scope that no API asked for defines.
	ErrInvalidScope = errors.New("apis: the scope is not defined by the resources asked for")
	// ErrIdentifierTaken is an API registered with the identifier of
	// another.
	ErrIdentifierTaken = errors.New("apis: an API with this identifier is registered")
	// ErrNotFound is an unknown API ID.
	ErrNotFound = errors.New("apis: no such API")
)

// Errors maps this package's errors to problems.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrInvalidTarget, http.StatusBadRequest, "invalid_target", "A resource asked for is not a registered API, or was not granted."),
		httpapi.MapError(ErrInvalidScope, http.StatusBadRequest, "invalid_scope", "A scope asked for is not defined by the resources asked for."),
		httpapi.MapError(ErrIdentifierTaken, http.StatusConflict, "api_exists", "An API with this identifier is already registered."),
		httpapi.MapError(ErrNotFound, http.StatusNotFound, "not_found", "No API has this ID."),
	}
}

// Tx is what an API change writes in one transaction.
type Tx interface {
	store.APIStore
	store.AuditLog
}

// Store is the storage the registry uses.
type Store interface {
	store.APIStore
	InTx(ctx context.Context, fn func(Tx) error) error
}

// Deps are what a Registry is built from.
type Deps struct {
	Store  Store
	Issuer string // Gatehouse's own API: always a valid resource
	// DefaultAudience is the aud of tokens asked for without a resource;
	// "" is the issuer. It is always a valid resource too.
	DefaultAudience string
	// CacheTTL, when positive, keeps registered APIs found by identifier
	// in memory this long: a deleted API keeps receiving tokens on a node
	// for at most this long. Misses are never cached, so a new API is
	// usable at once on every node.
	CacheTTL time.Duration
	Now      func() time.Time
	Log      *slog.Logger
}

// Registry registers APIs and resolves resource indicators.
type Registry struct {
	d     Deps
	cache ttlcache.Cache[store.API]
	// scopes caches ScopesSupported (key "") for CacheTTL: discovery is
	// public and must not cost a query per request.
	scopes ttlcache.Cache[[]string]
}

// New builds a Registry.
func New(d Deps) (*Registry, error) {
	if err := require.Deps("apis", map[string]bool{"Store": d.Store != nil, "Issuer": d.Issuer != ""}); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.DefaultAudience == "" {
		d.DefaultAudience = d.Issuer
	}
	return &Registry{d: d}, nil
}

// DefaultAudience is the aud of a token asked for without a resource.
func (r *Registry) DefaultAudience() string { return r.d.DefaultAudience }

// Targets is a checked set of resources: the audience of a token and the
// scopes its APIs define.
type Targets struct {
	// Audience is the resources asked for, without repeats, in the order
	// asked; nil when none were (the default audience).
	Audience []string
	// scopes are the scopes the registered APIs among them define.
	scopes []string
	// builtin is true when one of them is Gatehouse's own API or the
	// default audience without a registration: they define no scopes of
	// their own and restrict none.
	builtin bool
}

// Defines reports whether one of the targeted APIs defines scope.
func (t Targets) Defines(scope string) bool { return slices.Contains(t.scopes, scope) }

// Unrestricted reports whether a client's own scopes all apply: no
// resource was asked for, or one of them is Gatehouse's own API or an
// unregistered default audience. Otherwise only the scopes the APIs
// define do.
func (t Targets) Unrestricted() bool { return t.builtin }

// Resolve checks the resources a client asks for: each must be an absolute
// URI without a fragment that is Gatehouse's own API, the default
// audience or a registered API. None asked is the default audience.
func (r *Registry) Resolve(ctx context.Context, resources []string) (Targets, error) {
	if len(resources) == 0 {
		t, err := r.Resolve(ctx, []string{r.d.DefaultAudience})
		t.Audience = nil
		return t, err
	}
	var t Targets
	for _, res := range resources {
		if slices.Contains(t.Audience, res) {
			continue
		}
		if ValidateIdentifier(res) != nil {
			return Targets{}, ErrInvalidTarget
		}
		a, found, err := r.lookup(ctx, res)
		if err != nil {
			return Targets{}, err
		}
		switch {
		case found:
			for _, sc := range a.Scopes {
				if !slices.Contains(t.scopes, sc) {
					t.scopes = append(t.scopes, sc)
				}
			}
		case res == r.d.Issuer || res == r.d.DefaultAudience:
			t.builtin = true
		default:
			return Targets{}, ErrInvalidTarget
		}
		t.Audience = append(t.Audience, res)
	}
	return t, nil
}

// lookup finds a registered API by identifier, from the cache when fresh.
func (r *Registry) lookup(ctx context.Context, identifier string) (store.API, bool, error) {
	if r.d.CacheTTL > 0 {
		if a, ok := r.cache.Get(identifier, r.d.Now()); ok {
			return a, true, nil
		}
	}
	a, err := r.d.Store.GetAPIByIdentifier(ctx, identifier)
	if errors.Is(err, store.ErrNotFound) {
		return store.API{}, false, nil
	}
	if err != nil {
		return store.API{}, false, err
	}
	if r.d.CacheTTL > 0 {
		r.cache.Put(identifier, a, r.d.Now().Add(r.d.CacheTTL))
	}
	return a, true, nil
}

// UserGrant decides what a user's sign-in is granted: the resources asked
// for (checked by Resolve) and the scope asked for (space-separated),
// each of which must be one of UserScopes or defined by one of the APIs
// asked for. No scope asked for is UserScopes.
func (r *Registry) UserGrant(ctx context.Context, resources []string, scope string) (audience []string, granted string, err error) {
	t, err := r.Resolve(ctx, resources)
	if err != nil {
		return nil, "", err
	}
	if strings.TrimSpace(scope) == "" {
		return t.Audience, strings.Join(UserScopes, " "), nil
	}
	var out []string
	for _, sc := range strings.Split(scope, " ") {
		if sc == "" || slices.Contains(out, sc) {
			continue
		}
		if !slices.Contains(UserScopes, sc) && !t.Defines(sc) {
			return nil, "", fmt.Errorf("%w: %q", ErrInvalidScope, sc)
		}
		out = append(out, sc)
	}
	return t.Audience, strings.Join(out, " "), nil
}

// Narrow decides the audience of an access token issued on refresh for a
// sign-in granted granted (nil: the default audience). asked, when not
// empty, must be within the grant (RFC 8707 §2.2: a refresh may narrow the
// audience, never widen it). APIs deleted since the sign-in are dropped;
// when none is left the answer is ErrInvalidTarget. A nil answer is the
// default audience.
func (r *Registry) Narrow(ctx context.Context, granted, asked []string) ([]string, error) {
	if len(granted) == 0 {
		if len(asked) == 0 {
			return nil, nil
		}
		granted = []string{r.d.DefaultAudience}
	}
	for _, a := range asked {
		if !slices.Contains(granted, a) {
			return nil, ErrInvalidTarget
		}
	}
	want := granted
	if len(asked) > 0 {
		want = asked
	}
	var out []string
	dropped := false
	for _, a := range want {
		if slices.Contains(out, a) {
			continue
		}
		if _, err := r.Resolve(ctx, []string{a}); errors.Is(err, ErrInvalidTarget) {
			dropped = true // deleted since the sign-in
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	// An API asked for by name must still exist; one only granted may
	// have gone, as long as some remain.
	if len(out) == 0 || (len(asked) > 0 && dropped) {
		return nil, ErrInvalidTarget
	}
	return out, nil
}

// ScopesSupported lists every scope a token may carry, for discovery:
// Gatehouse's own and those the registered APIs define.
func (r *Registry) ScopesSupported(ctx context.Context) ([]string, error) {
	if r.d.CacheTTL > 0 {
		if s, ok := r.scopes.Get("", r.d.Now()); ok {
			return s, nil
		}
	}
	out := slices.Concat(UserScopes, ClientScopes)
	list, err := r.d.Store.ListAPIs(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range list {
		for _, sc := range a.Scopes {
			if !slices.Contains(out, sc) {
				out = append(out, sc)
			}
		}
	}
	if r.d.CacheTTL > 0 {
		r.scopes.Put("", out, r.d.Now().Add(r.d.CacheTTL))
	}
	return out, nil
}

// ValidateIdentifier checks an API identifier or a resource parameter: an
// absolute URI (RFC 3986) without a fragment (RFC 8707 §2), at most 2048
// bytes, with no white space or control characters.
func ValidateIdentifier(s string) error {
	if s == "" || len(s) > 2048 || !utf8.ValidString(s) {
		return errors.New("must be an absolute URI of at most 2048 bytes")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return errors.New("must not contain white space or control characters")
	}
	if strings.Contains(s, "#") {
		return errors.New("must not have a fragment (RFC 8707)")
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || (u.Opaque == "" && u.Host == "" && u.Path == "") {
		return errors.New("must be an absolute URI, such as https://api.example.com")
	}
	if (u.Scheme == "https" || u.Scheme == "http") && u.Host == "" {
		return errors.New("must name a host, such as https://api.example.com")
	}
	return nil
}

// Input is what an API is registered or updated with.
type Input struct {
	Identifier string
	Name       string
	Scopes     []string
}

// check validates in and returns it with the name trimmed and repeated
// scopes dropped; problems are field errors.
func (r *Registry) check(in Input, create bool) (Input, []httpapi.FieldError) {
	var fe []httpapi.FieldError
	if create {
		if err := ValidateIdentifier(in.Identifier); err != nil {
			fe = append(fe, httpapi.FieldError{Field: "identifier", Rule: "uri", Message: "The identifier " + err.Error() + "."})
		} else if in.Identifier == r.d.Issuer {
			fe = append(fe, httpapi.FieldError{Field: "identifier", Rule: "reserved", Message: "The issuer is Gatehouse's own API."})
		}
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || utf8.RuneCountInString(in.Name) > 200 || !httpapi.ValidText(in.Name) {
		fe = append(fe, httpapi.FieldError{Field: "name", Rule: "required", Message: "A name of 1 to 200 characters is required."})
	}
	var scopes []string
	for _, sc := range in.Scopes {
		if !validScopeToken(sc) {
			fe = append(fe, httpapi.FieldError{Field: "scopes", Rule: "format", Message: "Scopes must be printable ASCII without spaces, quotes or backslashes, at most 128 characters."})
			break
		}
		if slices.Contains(UserScopes, sc) || slices.Contains(ClientScopes, sc) {
			fe = append(fe, httpapi.FieldError{Field: "scopes", Rule: "reserved", Message: "Scope " + sc + " is Gatehouse's own."})
			break
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) > 100 {
		fe = append(fe, httpapi.FieldError{Field: "scopes", Rule: "max", Message: "An API defines at most 100 scopes."})
	}
	in.Scopes = scopes
	return in, fe
}

// validScopeToken reports whether s is an RFC 6749 scope-token: one or
// more of %x21 / %x23-5B / %x5D-7E, at most 128 bytes.
func validScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != "" && len(s) <= 128
}

// Create registers an API. Bad input is a validation problem; an
// identifier already registered is ErrIdentifierTaken.
func (r *Registry) Create(ctx context.Context, in Input, m httpapi.Meta) (store.API, error) {
	in, fe := r.check(in, true)
	if len(fe) > 0 {
		return store.API{}, httpapi.Validation(fe...)
	}
	idPart, err := secret.NewToken(16)
	if err != nil {
		return store.API{}, err
	}
	now := r.d.Now().UTC()
	var a store.API
	err = r.d.Store.InTx(ctx, func(tx Tx) error {
		var err error
		a, err = tx.CreateAPI(ctx, store.API{ID: "api_" + idPart, Identifier: in.Identifier, Name: in.Name, Scopes: in.Scopes, CreatedAt: now})
		if errors.Is(err, store.ErrConflict) {
			return ErrIdentifierTaken
		} else if err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, auditEvent(now, m, "api.created", a))
	})
	if err == nil {
		r.scopes.Forget("")
	}
	return a, err
}

// Update replaces the name and scopes of API id (nil keeps them). The
// identifier never changes: issued tokens carry it.
func (r *Registry) Update(ctx context.Context, id string, name *string, scopes *[]string, m httpapi.Meta) (store.API, error) {
	now := r.d.Now().UTC()
	var a store.API
	err := r.d.Store.InTx(ctx, func(tx Tx) error {
		cur, err := tx.GetAPI(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		in := Input{Name: cur.Name, Scopes: cur.Scopes}
		if name != nil {
			in.Name = *name
		}
		if scopes != nil {
			in.Scopes = *scopes
		}
		in, fe := r.check(in, false)
		if len(fe) > 0 {
			return httpapi.Validation(fe...)
		}
		if a, err = tx.UpdateAPI(ctx, store.API{ID: cur.ID, Name: in.Name, Scopes: in.Scopes, UpdatedAt: now}); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, auditEvent(now, m, "api.updated", a))
	})
	if err == nil {
		r.cache.Forget(a.Identifier)
		r.scopes.Forget("")
	}
	return a, err
}

// Delete removes API id. Tokens already issued for it stay valid until
// they expire; refreshes no longer include it.
func (r *Registry) Delete(ctx context.Context, id string, m httpapi.Meta) error {
	now := r.d.Now().UTC()
	var a store.API
	err := r.d.Store.InTx(ctx, func(tx Tx) error {
		var err error
		a, err = tx.GetAPI(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if err := tx.DeleteAPI(ctx, id); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, auditEvent(now, m, "api.deleted", a))
	})
	if err == nil {
		r.cache.Forget(a.Identifier)
		r.scopes.Forget("")
	}
	return err
}

// Get returns API id.
func (r *Registry) Get(ctx context.Context, id string) (store.API, error) {
	a, err := r.d.Store.GetAPI(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.API{}, ErrNotFound
	}
	return a, err
}

// List returns every API, oldest first.
func (r *Registry) List(ctx context.Context) ([]store.API, error) {
	return r.d.Store.ListAPIs(ctx)
}

// auditEvent records a change by the caller m describes (an
// administrator through the admin API; nobody for the CLI).
func auditEvent(now time.Time, m httpapi.Meta, action string, a store.API) store.AuditEvent {
	return store.AuditEvent{
		OccurredAt: now, ActorID: m.ActorID, SubjectID: a.ID, Action: action,
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
		Data: map[string]any{"identifier": a.Identifier, "name": a.Name, "scopes": a.Scopes},
	}
}

// Resources is the resource member of a JSON request body: one URI as a
// string, or several as an array of strings (RFC 8707 allows the
// parameter repeated).
type Resources []string

// UnmarshalJSON accepts a string or an array of strings.
func (r *Resources) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*r = Resources{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		// The decoder names the field in the error it returns.
		return &json.UnmarshalTypeError{Value: "resource", Type: reflect.TypeFor[[]string]()}
	}
	*r = many
	return nil
}
