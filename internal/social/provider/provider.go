package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Profile is what a provider says about the user, normalised.
type Profile struct {
	Provider string // the configured provider ID, e.g. "google", "okta"
	Subject  string // the provider's stable user ID (GitHub: the numeric id)
	Email    string
	// EmailVerified is true only when the provider vouches for Email;
	// callers must not link or create accounts on an unverified email.
	EmailVerified bool
	Name          string
	GivenName     string
	FamilyName    string
	AvatarURL     string
	Orgs          []string       // GitHub organisation logins (with read:org)
	Raw           map[string]any // the provider's claims, see each type
}

// Provider is one configured external identity provider.
type Provider interface {
	// ID is the configured name used in URLs ("google", "okta").
	ID() string
	// Type is google, github, microsoft or oidc.
	Type() string
	// AutoLink reports whether this provider's verified emails are trusted
	// to link to an existing account without the user proving it.
	AutoLink() bool
	// AuthCodeURL is where to send the browser. pkceVerifier comes from
	// oauth2.GenerateVerifier; its S256 challenge is sent. redirectURL is
	// <issuer>/v1/auth/oauth/<id>/callback.
	//
	// It cannot fail: when an OpenID Connect provider's discovery document
	// cannot be loaded, it returns redirectURL with the state and
	// error=temporarily_unavailable (provider down) or error=provider_error
	// (bad document), as the provider would have answered, so that the
	// callback ends through [FromCallbackError] with provider_unavailable
	// or provider_error. It waits for discovery at most DiscoveryTimeout.
	AuthCodeURL(state, pkceVerifier, nonce, redirectURL string) string
	// Exchange redeems the code with the same verifier, nonce and
	// redirect URL and returns the user's profile, or an *Error.
	Exchange(ctx context.Context, code, pkceVerifier, nonce, redirectURL string) (Profile, error)
}

const (
	// DiscoveryTimeout bounds one OpenID Connect discovery attempt.
	DiscoveryTimeout = 10 * time.Second
	// DiscoveryRetry is how long a failed discovery is remembered before
	// the next attempt, so that an outage does not make every sign-in
	// wait for a timeout.
	DiscoveryRetry = 10 * time.Second
	// ExchangeTimeout bounds one Exchange (token, keys and profile calls).
	ExchangeTimeout = 20 * time.Second
	// maxBody limits every response body read from a provider.
	maxBody = 1 << 20
)

// New builds the provider described by s (defaults applied, validated).
// It does no network I/O. httpClient is used for every call to the
// provider; nil means a client with a 10-second timeout. A client should
// have a Timeout: go-oidc's background key fetches are bounded by nothing
// else.
func New(s Settings, httpClient *http.Client) (Provider, error) {
	s = s.withDefaults()
	if !validID(s.ID) {
		return nil, fmt.Errorf("provider ID %q may only hold letters, digits and '-'", s.ID)
	}
	if problems := s.problems(); len(problems) > 0 {
		return nil, errors.New(strings.Join(format(problems, envName(s.ID)), "; "))
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	switch s.Type {
	case TypeGoogle:
		return newGoogle(s, httpClient), nil
	case TypeGitHub:
		return newGitHub(s, httpClient), nil
	case TypeMicrosoft:
		return newMicrosoft(s, httpClient), nil
	case TypeOIDC:
		return newOIDC(s, httpClient), nil
	}
	return nil, fmt.Errorf("%s: unknown type %q", envName(s.ID)("TYPE"), s.Type)
}

// Registry holds the configured providers by ID. A nil *Registry is empty.
type Registry struct {
	byID map[string]Provider
	ids  []string
}

// NewRegistry keeps ps; IDs must be unique.
func NewRegistry(ps ...Provider) (*Registry, error) {
	r := &Registry{byID: make(map[string]Provider, len(ps))}
	for _, p := range ps {
		if _, dup := r.byID[p.ID()]; dup {
			return nil, fmt.Errorf("provider %q is configured twice", p.ID())
		}
		r.byID[p.ID()] = p
		r.ids = append(r.ids, p.ID())
	}
	slices.Sort(r.ids)
	return r, nil
}

// Build creates every provider in settings (as returned by [FromEnv]) and
// the registry holding them. The error names every bad setting.
func Build(settings []Settings, httpClient *http.Client) (*Registry, error) {
	var errs []error
	ps := make([]Provider, 0, len(settings))
	for _, s := range settings {
		p, err := New(s, httpClient)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps = append(ps, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return NewRegistry(ps...)
}

// Get returns the provider with this ID.
func (r *Registry) Get(id string) (Provider, bool) {
	if r == nil {
		return nil, false
	}
	p, ok := r.byID[id]
	return p, ok
}

// IDs lists the configured provider IDs, sorted.
func (r *Registry) IDs() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.ids)
}

// discoverer is implemented by providers that load metadata lazily.
type discoverer interface {
	discover(ctx context.Context) error
}

// Probe loads the metadata of every provider that discovers it lazily and
// returns the failures by provider ID. Start-up may call it to log
// warnings early; a failure here is retried on first use.
func (r *Registry) Probe(ctx context.Context) map[string]error {
	out := map[string]error{}
	for _, id := range r.IDs() {
		if d, ok := r.byID[id].(discoverer); ok {
			if err := d.discover(ctx); err != nil {
				out[id] = err
			}
		}
	}
	return out
}

// lazy loads a value on first use, shares one in-flight load between
// callers, caches success for good and a failure for retry.
type lazy[T any] struct {
	load    func(ctx context.Context) (T, error)
	timeout time.Duration
	retry   time.Duration
	now     func() time.Time

	mu       sync.Mutex
	val      T
	loaded   bool
	err      error
	failedAt time.Time
	inflight chan struct{}
}

func (l *lazy[T]) get(ctx context.Context) (T, error) {
	l.mu.Lock()
	if l.loaded {
		defer l.mu.Unlock()
		return l.val, nil
	}
	if l.err != nil && l.now().Sub(l.failedAt) < l.retry {
		defer l.mu.Unlock()
		var zero T
		return zero, l.err
	}
	if l.inflight == nil {
		done := make(chan struct{})
		l.inflight = done
		// The load runs detached from ctx so that one caller giving up
		// does not fail the others; it has its own timeout.
		go func() {
			lctx, cancel := context.WithTimeout(context.Background(), l.timeout)
			v, err := l.load(lctx)
			cancel()
			l.mu.Lock()
			if err == nil {
				l.val, l.loaded, l.err = v, true, nil
			} else {
				l.err, l.failedAt = err, l.now()
			}
			l.inflight = nil
			l.mu.Unlock()
			close(done)
		}()
	}
	done := l.inflight
	l.mu.Unlock()

	select {
	case <-ctx.Done():
		var zero T
		return zero, classify(ctx.Err())
	case <-done:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded {
		return l.val, nil
	}
	var zero T
	return zero, l.err
}

// getJSON GETs url (with a bearer token when given) and decodes a JSON
// 2xx response into out. what names the call in errors. It returns the
// response headers (for pagination).
func getJSON(ctx context.Context, client *http.Client, what, url, bearer string, header http.Header, out any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, errorf(CodeProviderError, "%s: %v", what, err)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, classify(fmt.Errorf("%s: %w", what, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil, statusError(what, resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		if ctx.Err() != nil {
			return nil, classify(fmt.Errorf("%s: %w", what, ctx.Err()))
		}
		return nil, errorf(CodeProviderError, "%s: invalid JSON response: %v", what, err)
	}
	return resp.Header, nil
}

// claimString returns a string claim, or "".
func claimString(c map[string]any, name string) string {
	s, _ := c[name].(string)
	return s
}

// claimBool reads a boolean claim that some providers send as a string
// ("true") or a number (1).
func claimBool(c map[string]any, name string) bool {
	switch v := c[name].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true") || v == "1"
	case float64:
		return v == 1
	}
	return false
}
