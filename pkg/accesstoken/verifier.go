// Package accesstoken verifies Gatehouse access tokens in Go services that
// sit behind Gatehouse, without calling Gatehouse for each request.
//
// Access tokens are JWTs in the RFC 9068 profile, signed with RS256, ES256
// or EdDSA by keys Gatehouse publishes at /.well-known/jwks.json. A
// Verifier fetches that key set, caches it, refreshes it periodically and
// whenever a token names a key it does not know (rate-limited), and checks
// each token offline: the signature with the key named by "kid" and only
// with that key's own algorithm (from an explicit allowlist; "none" and
// HMAC are never accepted), the "typ" header (at+jwt), and the claims
// (iss, aud, exp, nbf, iat with a small leeway; the claims RFC 9068
// requires must be present).
//
//	v, err := accesstoken.NewVerifier(ctx, accesstoken.Options{
//		Issuer:   "https://auth.example.com",
//		Audience: []string{"https://api.example.com"},
//	})
//	…
//	mux.Handle("/api/", accesstoken.Middleware(v)(api))
//	// in a handler:
//	claims, _ := accesstoken.ClaimsFrom(r.Context())
//
// A service cannot see Gatehouse's deny list, so a token of a session
// that was ended, or a client_credentials token revoked at /oauth2/revoke,
// stays valid here until it expires (15 minutes by default). Use
// Gatehouse's own endpoints (introspection) where immediate revocation
// matters.
//
// This package imports nothing from Gatehouse's internal packages.
package accesstoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ErrInvalid is returned (wrapped, with the reason) for every token that
// is not a valid access token. Do not show the reason to the caller.
var ErrInvalid = errors.New("accesstoken: invalid access token")

// MaxTokenBytes is the longest token Verify looks at.
const MaxTokenBytes = 8 << 10

// Defaults of Options.
const (
	DefaultLeeway             = 30 * time.Second
	DefaultRefreshInterval    = 5 * time.Minute
	DefaultMinRefreshInterval = 10 * time.Second
	defaultHTTPTimeout        = 10 * time.Second
	// unknownKidFetchTimeout bounds a fetch for an unknown kid, which runs
	// on past the request that triggered it.
	unknownKidFetchTimeout = 10 * time.Second
)

// DefaultAlgorithms are the algorithms accepted when Options.Algorithms is
// empty: every algorithm Gatehouse signs with.
var DefaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// supported are the algorithms Options.Algorithms may name.
var supported = map[jose.SignatureAlgorithm]bool{jose.RS256: true, jose.ES256: true, jose.EdDSA: true}

// Options configure a Verifier.
type Options struct {
	// Issuer is Gatehouse's issuer URL (GATEHOUSE_ISSUER), e.g.
	// https://auth.example.com. Required; the iss claim must equal it.
	Issuer string
	// Audience lists the audiences this service accepts: a token's aud must
	// contain at least one of them. Default: [Issuer].
	Audience []string
	// JWKSURL is where the keys are published. Default:
	// Issuer + "/.well-known/jwks.json".
	JWKSURL string
	// HTTPClient fetches the JWKS. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30 s.
	Leeway time.Duration
	// Algorithms is the allowlist of signature algorithms, a subset of
	// RS256, ES256 and EdDSA. Default: all three.
	Algorithms []string
	// RefreshInterval is how often the JWKS is fetched again. Default 5 min.
	RefreshInterval time.Duration
	// MinRefreshInterval is the least time between two fetches triggered
	// by tokens with an unknown kid. Default 10 s.
	MinRefreshInterval time.Duration
	// Logger receives failed background refreshes. Default: discarded.
	Logger *slog.Logger
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// Verifier verifies access tokens against a cached JWKS. It is safe for
// concurrent use.
type Verifier struct {
	opts    Options
	allowed map[jose.SignatureAlgorithm]bool
	algs    []jose.SignatureAlgorithm

	keys atomic.Pointer[map[string]verificationKey]

	fetchMu   sync.Mutex // serialises fetches
	lastFetch time.Time  // guarded by fetchMu
}

// NewVerifier checks opts, fetches the JWKS once (failing if it cannot)
// and starts refreshing it in the background until ctx ends.
func NewVerifier(ctx context.Context, opts Options) (*Verifier, error) {
	if opts.Issuer == "" {
		return nil, errors.New("accesstoken: Options.Issuer is required")
	}
	if len(opts.Audience) == 0 {
		opts.Audience = []string{opts.Issuer}
	}
	if opts.JWKSURL == "" {
		opts.JWKSURL = strings.TrimSuffix(opts.Issuer, "/") + "/.well-known/jwks.json"
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.MinRefreshInterval == 0 {
		opts.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if opts.Leeway < 0 || opts.RefreshInterval < 0 || opts.MinRefreshInterval < 0 {
		return nil, errors.New("accesstoken: negative duration in Options")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.Algorithms) == 0 {
		opts.Algorithms = DefaultAlgorithms
	}
	v := &Verifier{opts: opts, allowed: make(map[jose.SignatureAlgorithm]bool)}
	for _, a := range opts.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		if !supported[alg] {
			return nil, fmt.Errorf("accesstoken: algorithm %q is not supported (want RS256, ES256 or EdDSA)", a)
		}
		if !v.allowed[alg] {
			v.allowed[alg] = true
			v.algs = append(v.algs, alg)
		}
	}
	v.fetchMu.Lock()
	err := v.fetchLocked(ctx)
	v.fetchMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("accesstoken: %w", err)
	}
	go v.refreshLoop(ctx)
	return v, nil
}

// fetchLocked fetches the JWKS and installs it; fetchMu must be held. The
// time of the last fetch is recorded when the fetch has finished, whether
// it succeeded or failed (an endpoint that errs or hangs until the timeout
// is not asked again for every token with an unknown kid), but not when
// it was cancelled: then it did not really happen.
func (v *Verifier) fetchLocked(ctx context.Context) error {
	keys, err := fetchJWKS(ctx, v.opts.HTTPClient, v.opts.JWKSURL, v.allowed)
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return err
	}
	v.lastFetch = v.opts.Now()
	if err != nil {
		return err
	}
	v.keys.Store(&keys)
	return nil
}

func (v *Verifier) refreshLoop(ctx context.Context) {
	t := time.NewTicker(v.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.fetchMu.Lock()
			err := v.fetchLocked(ctx)
			v.fetchMu.Unlock()
			if err != nil && ctx.Err() == nil {
				v.opts.Logger.WarnContext(ctx, "accesstoken: JWKS refresh failed; keeping the keys fetched before", "error", err)
			}
		}
	}
}

// refetchForUnknownKey fetches the JWKS again unless another fetch happened
// within MinRefreshInterval. Callers look the key up again afterwards
// either way: a concurrent fetch may have brought it.
//
// The fetch serves every later request as much as the one that triggered
// it, so it does not end with that request: a client that sends an unknown
// kid and hangs up must not cancel it (which would hold back a rotated key
// until MinRefreshInterval has passed). It has its own timeout instead.
func (v *Verifier) refetchForUnknownKey(ctx context.Context) {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	if v.opts.Now().Sub(v.lastFetch) < v.opts.MinRefreshInterval {
		return
	}
	fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unknownKidFetchTimeout)
	defer cancel()
	if err := v.fetchLocked(fetchCtx); err != nil {
		v.opts.Logger.WarnContext(ctx, "accesstoken: JWKS fetch for an unknown kid failed", "error", err)
	}
}

func (v *Verifier) key(kid string) (verificationKey, bool) {
	k, ok := (*v.keys.Load())[kid]
	return k, ok
}

// Verify checks raw (the token without "Bearer ") and returns its claims.
// Every invalid token yields an error wrapping ErrInvalid. A token whose
// kid is not in the cached JWKS makes Verify fetch the JWKS again, at most
// once per MinRefreshInterval.
func (v *Verifier) Verify(ctx context.Context, raw string) (Claims, error) {
	fail := func(reason string) (Claims, error) { return Claims{}, fmt.Errorf("%w: %s", ErrInvalid, reason) }
	if len(raw) > MaxTokenBytes {
		return fail("too long")
	}
	tok, err := jwt.ParseSigned(raw, v.algs)
	if err != nil || len(tok.Headers) != 1 {
		return fail("malformed or algorithm not allowed")
	}
	h := tok.Headers[0]
	if h.KeyID == "" {
		return fail("no kid")
	}
	if !IsAccessTokenType(h.ExtraHeaders[jose.HeaderType]) {
		return fail("typ is not at+jwt")
	}
	key, ok := v.key(h.KeyID)
	if !ok {
		v.refetchForUnknownKey(ctx)
		if key, ok = v.key(h.KeyID); !ok {
			return fail("unknown kid")
		}
	}
	if h.Algorithm != string(key.alg) {
		return fail("alg differs from the key's")
	}
	var c Claims
	if err := tok.Claims(key.public, &c); err != nil {
		return fail("bad signature or payload")
	}
	if err := c.Validate(Expected{
		Issuer:   v.opts.Issuer,
		Audience: v.opts.Audience,
		Time:     v.opts.Now(),
		Leeway:   v.opts.Leeway,
	}); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// IsAccessTokenType reports whether typ, the value of a JWT's "typ"
// header, says "access token" as RFC 9068 requires: "at+jwt", or the full
// media type "application/at+jwt", in any case.
func IsAccessTokenType(typ any) bool {
	s, ok := typ.(string)
	if !ok {
		return false
	}
	s = strings.ToLower(s)
	return s == "at+jwt" || s == "application/at+jwt"
}
