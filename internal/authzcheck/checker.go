// Package authzcheck answers permission checks ("may this user do this?")
// for the applications behind Gatehouse: a Checker that keeps, per node, each
// user's grants and roles ready for the decision engine (internal/authz), and
// the HTTP check API (POST /v1/authz/check and /v1/authz/check-batch).
//
// # Cache
//
// A Checker caches, per user, what store.LoadUserAuthz returns, converted
// once to the engine's types, and (only when a condition needs them) the
// user's attributes. Grants keep their validity windows in the cache: the
// engine compares them with the request time of every check, so a grant
// that expires stops counting at that second, cached or not.
//
// Entries are dropped by Invalidate and InvalidateAll, which publish the
// change on the kv channel ChannelInvalidate so that every node drops them
// within moments; TTL bounds the age of an entry in case a message is lost,
// and a node that loses its subscription empties its cache. A load that
// raced an invalidation of its user is answered but not kept.
package authzcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/store"
)

// ChannelInvalidate is the kv channel on which nodes tell each other which
// cached users to drop. A message is JSON: {"users":["id", …]} or
// {"all":true}.
const ChannelInvalidate = "authz.invalidate"

// Defaults of Deps.
const (
	DefaultTTL        = time.Minute
	DefaultMaxEntries = 100_000
)

// shards splits the cache so that checks of different users rarely meet on
// one lock.
const shards = 32

// Store is what a Checker reads; store.Store satisfies it.
type Store interface {
	// LoadUserAuthz returns the user's grants and the roles they reach, in
	// two queries at most.
	LoadUserAuthz(ctx context.Context, userID string) (store.UserAuthz, error)
	// GetUser returns the user, for the user.* attributes of conditions.
	GetUser(ctx context.Context, id string) (store.User, error)
	// UserOrganizations returns the organisations the user belongs to, for
	// user.organizations.
	UserOrganizations(ctx context.Context, userID string) ([]store.Organization, error)
}

// Deps are what a Checker needs.
type Deps struct {
	Store Store
	// Engine decides; build one and share it.
	Engine *authz.Engine
	// KV carries invalidations between nodes (Publish, Subscribe).
	KV  kv.Store
	Now func() time.Time
	Log *slog.Logger
	// TTL is the longest a cache entry is used (DefaultTTL when zero): a
	// safety net for invalidations that never arrive.
	TTL time.Duration
	// MaxEntries bounds the number of users cached (DefaultMaxEntries when
	// zero); beyond it, arbitrary entries are evicted.
	MaxEntries int
}

// Checker answers permission checks through a per-node cache of each
// user's grants and roles. It is safe for concurrent use.
type Checker struct {
	store    Store
	engine   *authz.Engine
	kv       kv.Store
	now      func() time.Time
	log      *slog.Logger
	ttl      time.Duration
	perShard int

	shards [shards]shard
}

// shard is one part of the cache, with the loads in flight for its users.
type shard struct {
	mu      sync.RWMutex
	entries map[string]*entry
	flights map[string]*flight
}

// entry is one user's cached authorization data, ready for the engine.
type entry struct {
	grants []authz.Grant         // sorted by ID, as Decide wants them
	roles  map[string]authz.Role // by ID
	user   authz.User            // ID only unless the conditions need more
	loaded time.Time
}

// flight is a load in progress, shared by the checks of its user that
// arrive meanwhile. stale (guarded by the shard's mu) is set when the user
// is invalidated during the load: its result is then not cached.
type flight struct {
	done  chan struct{}
	e     *entry
	err   error
	stale bool
}

// Query is one permission check.
type Query struct {
	// Subject is the ID of the user the check is for.
	Subject    string
	Permission string
	Resource   authz.Resource
	// Request is the request context conditions see; a zero Time is now.
	Request authz.Request
	// Explain asks for the decision's explanation.
	Explain bool
}

// New returns a Checker; call Start to receive invalidations from other
// nodes.
func New(d Deps) (*Checker, error) {
	switch {
	case d.Store == nil:
		return nil, errors.New("authzcheck: New needs a Store")
	case d.Engine == nil:
		return nil, errors.New("authzcheck: New needs an Engine")
	case d.KV == nil:
		return nil, errors.New("authzcheck: New needs a kv Store")
	case d.TTL < 0, d.MaxEntries < 0:
		return nil, errors.New("authzcheck: TTL and MaxEntries must not be negative")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.TTL == 0 {
		d.TTL = DefaultTTL
	}
	if d.MaxEntries == 0 {
		d.MaxEntries = DefaultMaxEntries
	}
	c := &Checker{
		store:    d.Store,
		engine:   d.Engine,
		kv:       d.KV,
		now:      d.Now,
		log:      d.Log,
		ttl:      d.TTL,
		perShard: max(1, d.MaxEntries/shards),
	}
	for i := range c.shards {
		c.shards[i].entries = make(map[string]*entry)
		c.shards[i].flights = make(map[string]*flight)
	}
	return c, nil
}

// Check decides q. An unknown subject is simply a user without grants.
// Errors are the store's (an outage); the decision itself never fails.
func (c *Checker) Check(ctx context.Context, q Query) (authz.Decision, error) {
	d, _, err := c.check(ctx, q)
	return d, err
}

// check is Check that also returns the roles the decision was made over,
// by ID, so that an answer can name them.
func (c *Checker) check(ctx context.Context, q Query) (authz.Decision, map[string]authz.Role, error) {
	e, err := c.entry(ctx, q.Subject)
	if err != nil {
		return authz.Decision{}, nil, err
	}
	if q.Request.Time.IsZero() {
		q.Request.Time = c.now()
	}
	d := c.engine.Decide(authz.Input{
		Grants:     e.grants,
		Roles:      e.roles,
		Permission: q.Permission,
		Resource:   q.Resource,
		Request:    q.Request,
		User:       e.user,
		Explain:    q.Explain,
	})
	return d, e.roles, nil
}

func (c *Checker) shard(userID string) *shard {
	// FNV-1a: cheap, no allocation.
	h := uint32(2166136261)
	for i := 0; i < len(userID); i++ {
		h ^= uint32(userID[i])
		h *= 16777619
	}
	return &c.shards[h%shards]
}

// entry returns the user's cached entry, loading it when absent or older
// than the TTL. Concurrent loads of one user share one.
func (c *Checker) entry(ctx context.Context, userID string) (*entry, error) {
	sh := c.shard(userID)
	sh.mu.RLock()
	e := sh.entries[userID]
	sh.mu.RUnlock()
	if e != nil && c.fresh(e) {
		return e, nil
	}
	for {
		sh.mu.Lock()
		if e := sh.entries[userID]; e != nil && c.fresh(e) {
			sh.mu.Unlock()
			return e, nil
		}
		if f := sh.flights[userID]; f != nil {
			sh.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			sh.mu.RLock()
			stale := f.stale
			sh.mu.RUnlock()
			switch {
			case stale:
				// Invalidated while loading: what it read may predate
				// the change this check must see.
				continue
			case f.err != nil && ctx.Err() == nil && isContextError(f.err):
				// The leader's request went away, not ours: load again.
				continue
			}
			return f.e, f.err
		}
		f := &flight{done: make(chan struct{})}
		sh.flights[userID] = f
		sh.mu.Unlock()

		e, err := c.load(ctx, userID)

		sh.mu.Lock()
		if sh.flights[userID] == f {
			delete(sh.flights, userID)
		}
		if err == nil && !f.stale {
			if _, ok := sh.entries[userID]; !ok && len(sh.entries) >= c.perShard {
				for k := range sh.entries { // an arbitrary entry
					delete(sh.entries, k)
					break
				}
			}
			sh.entries[userID] = e
		}
		f.e, f.err = e, err
		sh.mu.Unlock()
		close(f.done)
		return e, err
	}
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (c *Checker) fresh(e *entry) bool {
	age := c.now().Sub(e.loaded)
	return age < c.ttl && age > -c.ttl
}

// load reads the user's grants and roles (LoadUserAuthz: two queries at
// most) and, only when a condition refers to user attributes other than
// user.id, the user and their organisations (two more).
func (c *Checker) load(ctx context.Context, userID string) (*entry, error) {
	loaded := c.now()
	ua, err := c.store.LoadUserAuthz(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("authzcheck: load the grants of a user: %w", err)
	}
	e := convert(userID, ua)
	e.loaded = loaded
	if needsUser(e) {
		if err := c.loadUser(ctx, &e.user); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// loadUser fills u (whose ID is set) for conditions: email_verified,
// organizations and metadata (the user's app_metadata, which only
// administrators may change: the user's own metadata must not decide what
// they may do). A user that does not exist keeps the zero attributes.
func (c *Checker) loadUser(ctx context.Context, u *authz.User) error {
	su, err := c.store.GetUser(ctx, u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("authzcheck: load a user: %w", err)
	}
	orgs, err := c.store.UserOrganizations(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("authzcheck: load the organizations of a user: %w", err)
	}
	u.EmailVerified = !su.EmailVerifiedAt.IsZero()
	u.Metadata = su.AppMetadata
	u.Organizations = make([]string, 0, len(orgs))
	for _, o := range orgs {
		u.Organizations = append(u.Organizations, o.ID)
	}
	return nil
}

// convert turns what the store holds into the engine's types, once per
// load.
func convert(userID string, ua store.UserAuthz) *entry {
	e := &entry{
		grants: make([]authz.Grant, 0, len(ua.Grants)),
		roles:  make(map[string]authz.Role, len(ua.Roles)),
		user:   authz.User{ID: userID},
	}
	for _, g := range ua.Grants {
		e.grants = append(e.grants, authz.Grant{
			ID:             g.ID,
			RoleID:         g.RoleID,
			OrganizationID: g.OrganizationID,
			ValidFrom:      g.ValidFrom,
			ValidUntil:     g.ValidUntil,
			Condition:      g.Condition,
		})
	}
	slices.SortFunc(e.grants, func(a, b authz.Grant) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.RoleID, b.RoleID)
	})
	for id, r := range ua.Roles {
		e.roles[id] = authz.Role{
			ID:             r.ID,
			Name:           r.Name,
			OrganizationID: r.OrganizationID,
			Allow:          rules(r.Allow),
			Deny:           rules(r.Deny),
			Parents:        r.Parents,
		}
	}
	return e
}

func rules(in []store.RolePermission) []authz.PermissionRule {
	if len(in) == 0 {
		return nil
	}
	out := make([]authz.PermissionRule, len(in))
	for i, p := range in {
		out[i] = authz.PermissionRule{Permission: p.Permission, Condition: p.Condition}
	}
	return out
}

// needsUser reports whether a condition of e's grants or roles may read a
// user attribute other than user.id.
func needsUser(e *entry) bool {
	for _, g := range e.grants {
		if mentionsUserAttributes(g.Condition) {
			return true
		}
	}
	for _, r := range e.roles {
		for _, rs := range [2][]authz.PermissionRule{r.Allow, r.Deny} {
			for _, rule := range rs {
				if mentionsUserAttributes(rule.Condition) {
					return true
				}
			}
		}
	}
	return false
}

// mentionsUserAttributes is a cheap textual check: whether expr uses the
// identifier user other than as user.id. It errs on the safe side: "user"
// in a string literal, or user used whole (user[…], a macro over it),
// counts as a mention, which only costs the two extra queries. What it
// must never do is miss a real reference, and every reference to a user
// attribute starts with the identifier user.
func mentionsUserAttributes(expr string) bool {
	for i := 0; ; {
		j := strings.Index(expr[i:], "user")
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len("user")
		i = end
		if start > 0 && (identByte(expr[start-1]) || expr[start-1] == '.') {
			continue // part of another identifier, or a field such as x.user
		}
		if end < len(expr) && identByte(expr[end]) {
			continue // "username", "users"
		}
		k := skipSpace(expr, end)
		if k >= len(expr) || expr[k] != '.' {
			return true // the user object itself
		}
		k = skipSpace(expr, k+1)
		f := k
		for f < len(expr) && identByte(expr[f]) {
			f++
		}
		if expr[k:f] != "id" {
			return true
		}
	}
}

func identByte(b byte) bool {
	return b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// invalidation is the message published on ChannelInvalidate.
type invalidation struct {
	Users []string `json:"users,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// Invalidate drops the cached entries of userIDs on this node at once
// (loads in progress for them are not kept) and asks the other nodes to do
// the same. An error means the other nodes were not told: they drop the
// entries when their TTL passes.
func (c *Checker) Invalidate(ctx context.Context, userIDs ...string) error {
	if len(userIDs) == 0 {
		return nil
	}
	c.drop(userIDs)
	return c.publish(ctx, invalidation{Users: userIDs})
}

// InvalidateAll empties the cache of this node and of the others: after a
// change to a role or permission, which may reach any number of users.
func (c *Checker) InvalidateAll(ctx context.Context) error {
	c.flush()
	return c.publish(ctx, invalidation{All: true})
}

func (c *Checker) publish(ctx context.Context, m invalidation) error {
	payload, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := c.kv.Publish(ctx, ChannelInvalidate, payload); err != nil {
		return fmt.Errorf("authzcheck: publish an invalidation: %w", err)
	}
	return nil
}

func (c *Checker) drop(userIDs []string) {
	for _, id := range userIDs {
		sh := c.shard(id)
		sh.mu.Lock()
		delete(sh.entries, id)
		if f := sh.flights[id]; f != nil {
			f.stale = true
			delete(sh.flights, id)
		}
		sh.mu.Unlock()
	}
}

func (c *Checker) flush() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.entries)
		for id, f := range sh.flights {
			f.stale = true
			delete(sh.flights, id)
		}
		sh.mu.Unlock()
	}
}

// Len returns the number of users cached on this node.
func (c *Checker) Len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}

// Cached reports whether userID has an entry in this node's cache (fresh
// or not).
func (c *Checker) Cached(userID string) bool {
	sh := c.shard(userID)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	_, ok := sh.entries[userID]
	return ok
}

// Start subscribes to the invalidations of other nodes and returns once
// subscribed; it applies them in the background until ctx ends. When the
// subscription ends early it empties the cache (messages may have been
// missed), resubscribes with backoff and empties it again once
// subscribed.
func (c *Checker) Start(ctx context.Context) error {
	if err := kv.Listen(ctx, c.kv, ChannelInvalidate, func(p []byte) { c.apply(ctx, p) }, c.flush, c.log); err != nil {
		return fmt.Errorf("authzcheck: %w", err)
	}
	return nil
}

func (c *Checker) apply(ctx context.Context, payload []byte) {
	var m invalidation
	if err := json.Unmarshal(payload, &m); err != nil {
		// Not ours to read: drop everything rather than keep something
		// that should have gone.
		c.log.WarnContext(ctx, "authzcheck: unreadable invalidation; emptying the cache", "error", err)
		c.flush()
		return
	}
	if m.All {
		c.flush()
		return
	}
	c.drop(m.Users)
}
