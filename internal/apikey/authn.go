package apikey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/store"
)

// ChannelInvalidate is the kv channel on which nodes tell each other which
// cached keys to drop. A message is JSON: {"keys":["id", …]},
// {"owners":["user id", …]} or {"all":true}.
const ChannelInvalidate = "apikey.invalidate"

// HeaderAPIKey is the header that carries an API key (besides
// "Authorization: Bearer gh_…").
const HeaderAPIKey = "X-API-Key"

// Defaults of AuthenticatorDeps.
const (
	DefaultCacheTTL   = 30 * time.Second
	DefaultFlushEvery = 5 * time.Second
)

// RefusalWindow is the span within which a key's rate-limited uses make
// one audit event (AuditRateLimited), however many requests were refused
// and on however many nodes: the event's ID derives from the key and the
// window. Every refusal is still counted in the key's usage.
const RefusalWindow = time.Minute

// AuditRateLimited is the audit action of a key's uses refused by a rate
// limit.
const AuditRateLimited = "api_key.rate_limited"

// KeyReader is what the authenticator reads and writes; store.Store
// satisfies it.
type KeyReader interface {
	GetAPIKeyByHash(ctx context.Context, hashes [][]byte) (store.APIKey, error)
	GetUser(ctx context.Context, id string) (store.User, error)
	RecordAPIKeyUse(ctx context.Context, uses []store.APIKeyUse) error
	// AppendAuditEvent records a key's rate-limited use (one event per
	// key and RefusalWindow).
	AppendAuditEvent(ctx context.Context, e store.AuditEvent) error
}

// AuthenticatorDeps are what an Authenticator is built from.
type AuthenticatorDeps struct {
	// Inner authenticates every request that carries no API key (the JWT
	// access-token authenticator).
	Inner auth.Authenticator
	Store KeyReader
	// Keys are secret.Keyring.DerivedKeys(HashPurpose), the current first.
	Keys [][]byte
	// KV carries invalidations between nodes.
	KV  kv.Store
	Now func() time.Time
	Log *slog.Logger
	// CacheTTL bounds the age of a cached key (DefaultCacheTTL when zero):
	// a safety net for invalidations that never arrive.
	CacheTTL time.Duration
	// FlushEvery is how often Run writes the counted uses
	// (DefaultFlushEvery when zero).
	FlushEvery time.Duration
}

// Authenticator accepts API keys (X-API-Key: gh_… or Authorization:
// Bearer gh_…) and hands every other request to its Inner authenticator.
// Keys are looked up by hash once per node and CacheTTL; a malformed key
// is refused without any lookup; every refusal is auth.ErrInvalidToken,
// whatever the reason. It is safe for concurrent use.
type Authenticator struct {
	d AuthenticatorDeps

	mu    sync.RWMutex
	cache map[string]*cached // by the current hash
	gen   uint64             // bumped by every invalidation

	usageMu sync.Mutex
	usage   map[string]*store.APIKeyUse
	refused map[refusalKey]*refusal // since the last flush
}

// refusalKey names one AuditRateLimited event: a key and a window.
type refusalKey struct {
	keyID  string
	window time.Time
}

// refusal is the first rate-limited use of a key in a RefusalWindow, and
// how many followed on this node before the flush.
type refusal struct {
	ownerID, rule, ip, path string
	at                      time.Time
	count                   int
}

// cached is a key row ready for checks, with its owner.
type cached struct {
	key    store.APIKey
	owner  store.User
	cidrs  []netip.Prefix
	loaded time.Time
}

// NewAuthenticator checks d and builds the authenticator; call Start to
// receive invalidations from other nodes and Run to flush usage.
func NewAuthenticator(d AuthenticatorDeps) (*Authenticator, error) {
	switch {
	case d.Inner == nil:
		return nil, errors.New("apikey: NewAuthenticator needs an Inner authenticator")
	case d.Store == nil:
		return nil, errors.New("apikey: NewAuthenticator needs a Store")
	case len(d.Keys) == 0:
		return nil, errors.New("apikey: NewAuthenticator needs hash Keys")
	case d.KV == nil:
		return nil, errors.New("apikey: NewAuthenticator needs a kv Store")
	case d.CacheTTL < 0, d.FlushEvery < 0:
		return nil, errors.New("apikey: CacheTTL and FlushEvery must not be negative")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.CacheTTL == 0 {
		d.CacheTTL = DefaultCacheTTL
	}
	if d.FlushEvery == 0 {
		d.FlushEvery = DefaultFlushEvery
	}
	return &Authenticator{d: d, cache: map[string]*cached{}, usage: map[string]*store.APIKeyUse{}, refused: map[refusalKey]*refusal{}}, nil
}

// credential returns the API key a request carries, if it carries one.
func credential(r *http.Request) (string, bool) {
	if v := r.Header.Get(HeaderAPIKey); v != "" {
		return strings.TrimSpace(v), true
	}
	if tok, ok := auth.BearerToken(r); ok && LooksLike(tok) {
		return tok, true
	}
	return "", false
}

// Authenticate implements auth.Authenticator. When the request went
// through auth.Remember with this authenticator (the rate limiter does)
// and its key was accepted, that outcome is reused, so a request is
// looked up and counted once; a remembered failure is checked again (it
// may come from another authenticator).
func (a *Authenticator) Authenticate(r *http.Request) (auth.Principal, error) {
	token, ok := credential(r)
	if !ok {
		return a.d.Inner.Authenticate(r)
	}
	if p, err, ok := auth.Recall(r); ok && err == nil && p.APIKeyID != "" {
		return p, nil
	}
	ip := clientIP(r)
	c, err := a.valid(r.Context(), token)
	if err == nil && !allowedFrom(c.cidrs, ip) {
		err = auth.ErrInvalidToken
	}
	if err != nil {
		if errors.Is(err, auth.ErrInvalidToken) && c != nil {
			a.d.Log.InfoContext(r.Context(), "api key refused", "api_key_id", c.key.ID)
		}
		return auth.Principal{}, err
	}
	a.count(c.key.ID, ip, false)
	httpapi.NoteAPIKey(r.Context(), c.key.ID)
	a.d.Log.DebugContext(r.Context(), "api key request", "api_key_id", c.key.ID, "owner_id", c.key.OwnerID)
	return principal(c.key), nil
}

// KeyAllows reports whether p's API key allows permission: always for a
// caller without a personal key's restriction (KeyPermissions nil),
// otherwise when one of the key's patterns matches it. The caller holds
// the permission only if the owner holds it too: authorizers ask both.
func KeyAllows(p auth.Principal, permission string) bool {
	if p.KeyPermissions == nil {
		return true
	}
	for _, k := range p.KeyPermissions {
		if authz.Matches(k, permission) {
			return true
		}
	}
	return false
}

func principal(k store.APIKey) auth.Principal {
	p := auth.Principal{UserID: k.OwnerID, APIKeyID: k.ID, RateLimitTier: k.RateLimitTier, ExpiresAt: k.ExpiresAt}
	if k.Kind != store.APIKeyService {
		p.KeyPermissions = append([]string{}, k.Permissions...)
		if p.KeyPermissions == nil {
			p.KeyPermissions = []string{}
		}
	}
	return p
}

// clientIP is the resolved client address, or the peer's.
func clientIP(r *http.Request) string {
	if ip := httpapi.ClientIP(r.Context()); ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func allowedFrom(cidrs []netip.Prefix, ip string) bool {
	if len(cidrs) == 0 {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range cidrs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// valid returns the cached or loaded key of token if it is usable now
// (checksum, known, not revoked, not expired, owner active); otherwise
// auth.ErrInvalidToken (with the key when one was found) or a store
// error.
func (a *Authenticator) valid(ctx context.Context, token string) (*cached, error) {
	if _, err := Parse(token); err != nil {
		return nil, auth.ErrInvalidToken
	}
	now := a.d.Now()
	hashes := Hashes(a.d.Keys, token)
	id := string(hashes[0])
	a.mu.RLock()
	c := a.cache[id]
	gen := a.gen
	a.mu.RUnlock()
	if c == nil || now.Sub(c.loaded) >= a.d.CacheTTL || now.Before(c.loaded) {
		var err error
		if c, err = a.load(ctx, hashes); err != nil {
			return nil, err
		}
		a.mu.Lock()
		if a.gen == gen { // no invalidation raced the load
			a.cache[id] = c
		}
		a.mu.Unlock()
	}
	switch {
	case !c.key.RevokedAt.IsZero(),
		!c.key.ExpiresAt.IsZero() && !now.Before(c.key.ExpiresAt),
		c.owner.Status == store.UserDisabled, !c.owner.DeletedAt.IsZero():
		return c, auth.ErrInvalidToken
	}
	return c, nil
}

func (a *Authenticator) load(ctx context.Context, hashes [][]byte) (*cached, error) {
	k, err := a.d.Store.GetAPIKeyByHash(ctx, hashes)
	if errors.Is(err, store.ErrNotFound) {
		return nil, auth.ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("apikey: look up a key: %w", err)
	}
	u, err := a.d.Store.GetUser(ctx, k.OwnerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, auth.ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("apikey: look up a key's owner: %w", err)
	}
	c := &cached{key: k, owner: u, loaded: a.d.Now()}
	for _, s := range k.AllowedCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a.d.Log.WarnContext(ctx, "api key with an unreadable CIDR; refusing it", "api_key_id", k.ID)
			return nil, auth.ErrInvalidToken
		}
		c.cidrs = append(c.cidrs, p.Masked())
	}
	return c, nil
}

// Introspection is what RFC 7662 introspection says of an API key.
type Introspection struct {
	Active bool
	// Sub is the owner's user ID.
	Sub         string
	KeyID       string
	Kind        string // store.APIKeyPersonal or store.APIKeyService
	Permissions []string
	Exp         time.Time
}

// Introspect reports whether token is a live API key (RFC 7662): the
// owner, the key's permissions and expiry when active, Active false for
// anything else (malformed, unknown, expired, revoked, owner disabled).
// Allowed CIDRs are not checked: the caller is a resource server, not the
// key's user. Errors are the store's.
func (a *Authenticator) Introspect(ctx context.Context, token string) (Introspection, error) {
	c, err := a.valid(ctx, token)
	if errors.Is(err, auth.ErrInvalidToken) {
		return Introspection{}, nil
	}
	if err != nil {
		return Introspection{}, err
	}
	return Introspection{Active: true, Sub: c.key.OwnerID, KeyID: c.key.ID, Kind: c.key.Kind,
		Permissions: c.key.Permissions, Exp: c.key.ExpiresAt}, nil
}

// invalidation is the message published on ChannelInvalidate.
type invalidation struct {
	Keys   []string `json:"keys,omitempty"`
	Owners []string `json:"owners,omitempty"`
	All    bool     `json:"all,omitempty"`
}

// Invalidate drops the cached keys with these IDs on this node at once
// and asks the other nodes to do the same. An error means the other nodes
// were not told: they drop the keys when CacheTTL passes.
func (a *Authenticator) Invalidate(ctx context.Context, keyIDs ...string) error {
	if len(keyIDs) == 0 {
		return nil
	}
	return a.invalidate(ctx, invalidation{Keys: keyIDs})
}

// InvalidateOwners drops the cached keys of these owners (users or
// service accounts) everywhere: call it when an account is disabled or
// deleted.
func (a *Authenticator) InvalidateOwners(ctx context.Context, ownerIDs ...string) error {
	if len(ownerIDs) == 0 {
		return nil
	}
	return a.invalidate(ctx, invalidation{Owners: ownerIDs})
}

func (a *Authenticator) invalidate(ctx context.Context, m invalidation) error {
	a.apply(m)
	payload, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := a.d.KV.Publish(ctx, ChannelInvalidate, payload); err != nil {
		return fmt.Errorf("apikey: publish an invalidation: %w", err)
	}
	return nil
}

func (a *Authenticator) apply(m invalidation) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	if m.All {
		clear(a.cache)
		return
	}
	for h, c := range a.cache {
		for _, id := range m.Keys {
			if c.key.ID == id {
				delete(a.cache, h)
			}
		}
		for _, id := range m.Owners {
			if c.key.OwnerID == id {
				delete(a.cache, h)
			}
		}
	}
}

// Len returns the number of keys cached on this node.
func (a *Authenticator) Len() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.cache)
}

// Start subscribes to the invalidations of other nodes and returns once
// subscribed; it applies them in the background until ctx ends. When the
// subscription ends early it empties the cache (messages may have been
// missed), resubscribes with backoff and empties it again once
// subscribed.
func (a *Authenticator) Start(ctx context.Context) error {
	handle := func(payload []byte) {
		var m invalidation
		if err := json.Unmarshal(payload, &m); err != nil {
			a.d.Log.WarnContext(ctx, "apikey: unreadable invalidation; emptying the cache", "error", err)
			m = invalidation{All: true}
		}
		a.apply(m)
	}
	if err := kv.Listen(ctx, a.d.KV, ChannelInvalidate, handle, func() { a.apply(invalidation{All: true}) }, a.d.Log); err != nil {
		return fmt.Errorf("apikey: %w", err)
	}
	return nil
}

// count adds one request (or one refusal) of key keyID from ip.
func (a *Authenticator) count(keyID, ip string, refusal bool) {
	now := a.d.Now().UTC()
	a.usageMu.Lock()
	defer a.usageMu.Unlock()
	u := a.usage[keyID]
	if u == nil {
		u = &store.APIKeyUse{KeyID: keyID}
		a.usage[keyID] = u
	}
	if refusal {
		u.Refusals++
	} else {
		u.Requests++
		u.At, u.IP = now, ip
	}
	if u.At.IsZero() {
		u.At = now
	}
}

// Refused counts one request of key p.APIKeyID that rate limit rule
// refused (the rate limiter calls it) and notes it for the key's
// AuditRateLimited event; both are written with the next Flush.
func (a *Authenticator) Refused(r *http.Request, p auth.Principal, rule string) {
	if p.APIKeyID == "" {
		return
	}
	a.count(p.APIKeyID, "", true)
	now := a.d.Now().UTC()
	window := refusalKey{keyID: p.APIKeyID, window: now.Truncate(RefusalWindow)}
	a.usageMu.Lock()
	defer a.usageMu.Unlock()
	if f := a.refused[window]; f != nil {
		f.count++
		return
	}
	a.refused[window] = &refusal{ownerID: p.UserID, rule: rule, ip: clientIP(r), path: r.URL.Path, at: now, count: 1}
}

// refusedNamespace derives the IDs of AuditRateLimited events from the
// key and the window, so that each is recorded once across nodes.
var refusedNamespace = uuid.MustParse("0192f000-0000-7000-8000-0000000000e2")

// recordRefusals appends one AuditRateLimited event per key of pending
// (a duplicate of the window, from another node or flush, is the same
// event and is skipped). The ones it could not write are returned.
func (a *Authenticator) recordRefusals(ctx context.Context, pending map[refusalKey]*refusal) (map[refusalKey]*refusal, error) {
	var failed map[refusalKey]*refusal
	var firstErr error
	for rk, f := range pending {
		keyID, window := rk.keyID, rk.window
		err := a.d.Store.AppendAuditEvent(ctx, store.AuditEvent{
			ID:         uuid.NewSHA1(refusedNamespace, []byte(keyID+"|"+window.Format(time.RFC3339))).String(),
			OccurredAt: f.at, ActorID: f.ownerID, SubjectID: f.ownerID, Action: AuditRateLimited, IP: f.ip,
			Data: map[string]any{
				"key_id": keyID, "rule": f.rule, "path": f.path,
				"window_start": window.Format(time.RFC3339), "window_seconds": int(RefusalWindow / time.Second),
				"refusals_seen": f.count,
			},
		})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			if failed == nil {
				failed = map[refusalKey]*refusal{}
				firstErr = err
			}
			failed[rk] = f
		}
	}
	if firstErr != nil {
		return failed, fmt.Errorf("apikey: record rate-limited uses: %w", firstErr)
	}
	return nil, nil
}

// Flush writes the uses counted since the last flush
// (store.RecordAPIKeyUse). On failure they are kept for the next one.
func (a *Authenticator) Flush(ctx context.Context) error {
	a.usageMu.Lock()
	pending := a.usage
	a.usage = map[string]*store.APIKeyUse{}
	refused := a.refused
	a.refused = map[refusalKey]*refusal{}
	a.usageMu.Unlock()
	if len(refused) > 0 {
		failed, err := a.recordRefusals(ctx, refused)
		if err != nil {
			a.usageMu.Lock()
			for rk, f := range failed {
				if cur := a.refused[rk]; cur != nil {
					f.count += cur.count
				}
				a.refused[rk] = f // the first of the window
			}
			a.usageMu.Unlock()
			a.d.Log.WarnContext(ctx, "apikey: rate-limited uses not recorded; retrying with the next flush", "error", err)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	uses := make([]store.APIKeyUse, 0, len(pending))
	for _, u := range pending {
		uses = append(uses, *u)
	}
	if err := a.d.Store.RecordAPIKeyUse(ctx, uses); err != nil {
		a.usageMu.Lock()
		for id, u := range pending {
			if cur := a.usage[id]; cur != nil {
				cur.Requests += u.Requests
				cur.Refusals += u.Refusals
				if cur.IP == "" {
					cur.IP = u.IP
				}
				if u.At.After(cur.At) {
					cur.At = u.At
				}
			} else {
				a.usage[id] = u
			}
		}
		a.usageMu.Unlock()
		return fmt.Errorf("apikey: record key usage: %w", err)
	}
	return nil
}

// Run flushes the counted uses every FlushEvery until ctx ends, then once
// more (with a short deadline of its own) so that a shutdown loses
// nothing.
func (a *Authenticator) Run(ctx context.Context) {
	t := time.NewTicker(a.d.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := a.Flush(fctx); err != nil {
				a.d.Log.Error("apikey: final usage flush failed", "error", err)
			}
			cancel()
			return
		case <-t.C:
			if err := a.Flush(ctx); err != nil {
				a.d.Log.WarnContext(ctx, "apikey: usage flush failed", "error", err)
			}
		}
	}
}
