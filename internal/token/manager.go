// Package token issues and verifies Gatehouse's access tokens: JWTs in the
// RFC 9068 profile (header typ "at+jwt" and kid), signed with RS256 (the
// default), ES256 or EdDSA.
//
// A Manager owns the signing keys. They live in the database (private
// halves sealed with the encryption keyring, bound to their kid) and in an
// in-memory cache that every node reloads every ReloadInterval and at once
// when a rotation is announced on the kv channel "token.keys". Rotate makes
// a new key current; the old ones stop signing but stay published in the
// JWKS and trusted until the last token they signed has expired.
//
// Verify checks a token offline: signature with the cached key named by
// kid, that key's algorithm only (from the allowlist RS256, ES256, EdDSA;
// never "none" or HMAC), typ, iss, aud, exp, nbf and iat with Leeway. It
// never touches the database for a token signed by a known key; only an
// unknown kid triggers a reload, at most once every few seconds. Then it
// asks the revocation state in the kv store (Redis in production), shared
// by every node: whether the token's session (or, for a token without a
// session, the token itself) is on the deny list, and whether the token
// predates the kill switch (RevokeIssuedBefore).
//
// Claims are pkg/accesstoken's, so what Gatehouse issues is exactly what
// the exported verifier for other Go services reads.
package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/pkg/accesstoken"
)

// Claims are the claims of a verified access token.
type Claims = accesstoken.Claims

// Kv channels the Managers of all nodes listen on.
const (
	// ChannelKeys announces a key rotation: every node reloads its keys.
	ChannelKeys = "token.keys"
	// ChannelRevokeBefore announces a new kill-switch time.
	ChannelRevokeBefore = "token.revoke_before"
)

// Intervals that are not worth configuring.
const (
	// unknownKeyReloadEvery rate-limits reloads triggered by tokens with a
	// kid this node does not know, so garbage tokens cannot hammer the
	// database.
	unknownKeyReloadEvery = 5 * time.Second
	// revokeRefreshEvery is how often the kill-switch time is re-read, in
	// case its announcement was missed.
	revokeRefreshEvery = 5 * time.Second
	// resubscribeEvery is how often a lost kv subscription is retried.
	resubscribeEvery = 5 * time.Second
	// unknownKeyReloadTimeout bounds a reload for an unknown kid, which
	// runs on past the request that triggered it.
	unknownKeyReloadTimeout = 10 * time.Second
)

// ErrNoSigningKey is returned by Issue when no current key can sign (none
// was loaded, or none could be decrypted with the keyring).
var ErrNoSigningKey = errors.New("token: no usable signing key")

// Manager issues and verifies access tokens and manages signing keys and
// revocation. It is safe for concurrent use.
type Manager struct {
	cfg     Config
	store   Store
	keyring *secret.Keyring
	kv      kv.Store
	log     *slog.Logger
	now     func() time.Time

	keys     atomic.Pointer[keySet]
	reloadMu sync.Mutex // serialises reloads, so an older listing never replaces a newer one

	unknownMu         sync.Mutex
	lastUnknownReload time.Time // guarded by unknownMu

	revocation revocation
	// verified remembers tokens whose signature checked out, so that a
	// token presented again costs no signature verification.
	verified verifiedCache

	// Intervals, fixed by New and changed only by tests.
	unknownKeyReloadEvery time.Duration
	revokeRefreshEvery    time.Duration
	resubscribeEvery      time.Duration

	started atomic.Bool
	done    chan struct{}
}

// Store is what a Manager needs from the database: the signing keys and the
// durable revocation state.
type Store interface {
	store.SigningKeyStore
	RevocationStore
}

// NewManager returns a Manager; call Start before Issue or Verify. keys is
// the database, keyring seals the private keys, state holds the revocation
// state and carries the reload and kill-switch messages, now is the clock
// (time.Now when nil).
func NewManager(cfg Config, keys Store, keyring *secret.Keyring, state kv.Store, logger *slog.Logger, now func() time.Time) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if keys == nil || keyring == nil || state == nil || logger == nil {
		return nil, errors.New("token: NewManager needs a key store, a keyring, a kv store and a logger")
	}
	if now == nil {
		now = time.Now
	}
	m := &Manager{
		cfg:                   cfg,
		store:                 keys,
		keyring:               keyring,
		kv:                    state,
		log:                   logger,
		now:                   now,
		unknownKeyReloadEvery: unknownKeyReloadEvery,
		revokeRefreshEvery:    revokeRefreshEvery,
		resubscribeEvery:      resubscribeEvery,
		done:                  make(chan struct{}),
		verified:              verifiedCache{max: verifiedCacheSize},
	}
	m.revocation.before.Store(-1) // not read yet: IsRevoked fails until Start
	m.revocation.rebuild = make(chan struct{}, 1)
	return m, nil
}

// Start makes sure a current signing key exists (creating one if there is
// none), loads the keys and the kill-switch time, makes sure the kv deny
// list is complete (rebuilding it from the database if the kv store lost
// it), subscribes to the kv
// channels and keeps the cache fresh in the background until ctx ends.
// Done is closed once that has stopped. Start may be called once.
//
// Several nodes starting together on an empty database may each create a
// key; all of them are published, and every node signs with the newest.
func (m *Manager) Start(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("token: Manager started twice")
	}
	// Subscribe before loading, so that a rotation between the two is not
	// missed.
	keySub, err := m.kv.Subscribe(ctx, ChannelKeys)
	if err != nil {
		return fmt.Errorf("token: subscribe to %s: %w", ChannelKeys, err)
	}
	revokeSub, err := m.kv.Subscribe(ctx, ChannelRevokeBefore)
	if err != nil {
		_ = keySub.Close()
		return fmt.Errorf("token: subscribe to %s: %w", ChannelRevokeBefore, err)
	}
	err = m.ensureKey(ctx)
	if err == nil {
		err = m.reload(ctx)
	}
	if err == nil {
		err = m.loadRevocation(ctx)
	}
	if err != nil {
		_ = keySub.Close()
		_ = revokeSub.Close()
		return err
	}
	go m.run(ctx, keySub, revokeSub)
	return nil
}

// Done is closed when the background work started by Start has stopped.
func (m *Manager) Done() <-chan struct{} { return m.done }

// ensureKey creates a current key if there is none.
func (m *Manager) ensureKey(ctx context.Context) error {
	rows, err := m.store.ListSigningKeys(ctx, m.now())
	if err != nil {
		return fmt.Errorf("token: list signing keys: %w", err)
	}
	for _, k := range rows {
		if k.RetiredAt.IsZero() {
			if k.Algorithm != m.cfg.Algorithm {
				m.log.WarnContext(ctx, "token: the current signing key uses another algorithm than configured; rotate the keys to switch",
					"kid", k.ID, "key_algorithm", k.Algorithm, "configured_algorithm", m.cfg.Algorithm)
			}
			return nil
		}
	}
	k, err := newSigningKey(m.cfg.Algorithm, m.keyring, m.now())
	if err != nil {
		return err
	}
	if err := m.store.CreateSigningKey(ctx, k); err != nil {
		return fmt.Errorf("token: create signing key: %w", err)
	}
	m.log.InfoContext(ctx, "token: created a signing key", "kid", k.ID, "algorithm", k.Algorithm)
	m.announce(ctx, ChannelKeys, []byte(k.ID))
	return nil
}

// run keeps the cache fresh until ctx ends.
func (m *Manager) run(ctx context.Context, keySub, revokeSub kv.Subscription) {
	defer close(m.done)
	reloadTick := time.NewTicker(max(m.cfg.ReloadInterval, time.Millisecond))
	defer reloadTick.Stop()
	revokeTick := time.NewTicker(m.revokeRefreshEvery)
	defer revokeTick.Stop()
	resubTick := time.NewTicker(m.resubscribeEvery)
	defer resubTick.Stop()
	defer func() {
		for _, s := range []kv.Subscription{keySub, revokeSub} {
			if s != nil {
				_ = s.Close()
			}
		}
	}()
	// A nil channel blocks forever: a lost subscription stops delivering
	// until resubscribe replaces it.
	messages := func(s kv.Subscription) <-chan kv.Message {
		if s == nil {
			return nil
		}
		return s.C()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-reloadTick.C:
			m.reloadLogged(ctx)
		case <-revokeTick.C:
			m.refreshRevokeBeforeLogged(ctx)
			m.syncDenyListLogged(ctx)
		case <-m.revocation.rebuild:
			m.syncDenyListLogged(ctx)
		case msg, ok := <-messages(keySub):
			if !ok {
				keySub = nil
				continue
			}
			// The payload is the new kid; this node's own announcements
			// (and repeats) name a key it has loaded already.
			if ks := m.keys.Load(); ks != nil && ks.byKID[string(msg.Payload)] != nil {
				continue
			}
			m.reloadLogged(ctx)
		case _, ok := <-messages(revokeSub):
			if !ok {
				revokeSub = nil
				continue
			}
			m.refreshRevokeBeforeLogged(ctx)
		case <-resubTick.C:
			// Messages sent while unsubscribed are lost: catch up after
			// resubscribing.
			if keySub == nil {
				if keySub = m.resubscribe(ctx, ChannelKeys); keySub != nil {
					m.reloadLogged(ctx)
				}
			}
			if revokeSub == nil {
				if revokeSub = m.resubscribe(ctx, ChannelRevokeBefore); revokeSub != nil {
					m.refreshRevokeBeforeLogged(ctx)
				}
			}
		}
	}
}

func (m *Manager) resubscribe(ctx context.Context, channel string) kv.Subscription {
	s, err := m.kv.Subscribe(ctx, channel)
	if err != nil {
		if ctx.Err() == nil {
			m.log.WarnContext(ctx, "token: resubscribing failed; relying on periodic reloads", "channel", channel, "error", err)
		}
		return nil
	}
	return s
}

// announce publishes a message; failures only delay other nodes until
// their next periodic reload, so they are logged, not returned.
func (m *Manager) announce(ctx context.Context, channel string, payload []byte) {
	if err := m.kv.Publish(ctx, channel, payload); err != nil {
		m.log.WarnContext(ctx, "token: announcing to other nodes failed; they catch up on their next reload", "channel", channel, "error", err)
	}
}

func (m *Manager) reloadLogged(ctx context.Context) {
	if err := m.reload(ctx); err != nil && ctx.Err() == nil {
		m.log.ErrorContext(ctx, "token: reloading signing keys failed; keeping the keys loaded before", "error", err)
	}
}

// reload replaces the cache with the keys in the database. The private key
// of the current key is decrypted only when it differs from the one
// already loaded.
func (m *Manager) reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	rows, err := m.store.ListSigningKeys(ctx, m.now())
	if err != nil {
		return fmt.Errorf("token: list signing keys: %w", err)
	}
	prev := m.keys.Load()
	ks := &keySet{byKID: make(map[string]*cachedKey, len(rows))}
	seenAlg := map[jose.SignatureAlgorithm]bool{}
	for _, row := range rows {
		k, err := parsePublicKey(row)
		if err != nil {
			m.log.ErrorContext(ctx, "token: skipping an unusable signing key", "kid", row.ID, "error", err)
			continue
		}
		ks.byKID[k.kid] = k
		ks.list = append(ks.list, k)
		if !seenAlg[k.alg] {
			seenAlg[k.alg] = true
			ks.algs = append(ks.algs, k.alg)
		}
		if ks.signer != nil || !k.current {
			continue
		}
		// The newest current key that opens signs.
		if prev != nil && prev.signer != nil && prev.signer.kid == k.kid {
			ks.signer = prev.signer
			continue
		}
		s, err := openSigner(row, k, m.keyring)
		if err != nil {
			m.log.ErrorContext(ctx, "token: cannot sign with the current signing key", "kid", row.ID, "error", err)
			continue
		}
		ks.signer = s
		m.log.InfoContext(ctx, "token: signing with key", "kid", s.kid, "algorithm", string(k.alg))
	}
	if ks.signer == nil {
		m.log.ErrorContext(ctx, "token: no current signing key can be used; access tokens cannot be issued", "keys", len(ks.list))
	}
	m.keys.Store(ks)
	return nil
}

// reloadForUnknownKey reloads the keys for a token with an unknown kid,
// unless a reload for that reason happened within unknownKeyReloadEvery.
// The caller looks the key up again either way: a reload by another
// goroutine may have brought it.
//
// The reload serves every later request as much as the one that
// triggered it, so it does not end with that request (a client that sends
// an unknown kid and hangs up must not cancel it and so hold back a
// rotated key for unknownKeyReloadEvery); it has its own timeout. Its time
// is recorded when it has finished, succeeded or failed (a failing
// database is not queried again for every such token), not when it began.
func (m *Manager) reloadForUnknownKey(ctx context.Context) {
	m.unknownMu.Lock()
	defer m.unknownMu.Unlock()
	if !m.lastUnknownReload.IsZero() && m.now().Sub(m.lastUnknownReload) < m.unknownKeyReloadEvery {
		return
	}
	reloadCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unknownKeyReloadTimeout)
	defer cancel()
	if err := m.reload(reloadCtx); err != nil {
		m.log.ErrorContext(ctx, "token: reloading signing keys for an unknown kid failed; keeping the keys loaded before", "error", err)
	}
	m.lastUnknownReload = m.now()
}

// Rotate makes a new key (of the configured algorithm) current. The keys
// it replaces stop signing at once but stay published and trusted until
// every token they signed has expired: now + AccessTTL + ReloadInterval +
// Leeway (the reload interval covers a node that missed the announcement
// and signs with the old key until its next reload). Every node is told to
// reload. Rotate needs no Start, so a CLI command can call it.
func (m *Manager) Rotate(ctx context.Context) (string, error) {
	now := m.now()
	k, err := newSigningKey(m.cfg.Algorithm, m.keyring, now)
	if err != nil {
		return "", err
	}
	if err := m.store.RotateSigningKeys(ctx, k, now, now.Add(m.cfg.oldKeyLifetime())); err != nil {
		return "", fmt.Errorf("token: rotate signing keys: %w", err)
	}
	m.log.InfoContext(ctx, "token: rotated signing keys", "kid", k.ID, "algorithm", k.Algorithm)
	m.announce(ctx, ChannelKeys, []byte(k.ID))
	if err := m.reload(ctx); err != nil {
		m.log.ErrorContext(ctx, "token: reloading keys after the rotation failed", "error", err)
	}
	return k.ID, nil
}

// RotateIfOlder rotates when the current key was activated more than
// maxAge ago (or there is no current key), for scheduled rotation. Run it
// from one place (a periodic job), not from every node: two nodes
// rotating at once are harmless but rotate twice.
func (m *Manager) RotateIfOlder(ctx context.Context, maxAge time.Duration) (kid string, rotated bool, err error) {
	now := m.now()
	rows, err := m.store.ListSigningKeys(ctx, now)
	if err != nil {
		return "", false, fmt.Errorf("token: list signing keys: %w", err)
	}
	for _, k := range rows {
		if k.RetiredAt.IsZero() && now.Sub(k.ActivatedAt) < maxAge {
			return k.ID, false, nil
		}
	}
	kid, err = m.Rotate(ctx)
	return kid, err == nil, err
}

// PurgeExpiredKeys deletes keys whose last token has expired; they are
// neither published nor trusted any more. Housekeeping for a periodic job.
func (m *Manager) PurgeExpiredKeys(ctx context.Context) (int64, error) {
	n, err := m.store.PurgeSigningKeys(ctx, m.now())
	if err != nil {
		return 0, fmt.Errorf("token: purge signing keys: %w", err)
	}
	return n, nil
}

// JWKS returns the public keys that may have signed a live token: the
// current keys and every retired key that has not expired, newest first,
// each with kid, alg and use "sig". Before Start it is empty.
func (m *Manager) JWKS() jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	ks := m.keys.Load()
	if ks == nil {
		return set
	}
	now := m.now()
	for _, k := range ks.list {
		if k.liveAt(now) {
			set.Keys = append(set.Keys, k.jwk)
		}
	}
	return set
}

// SigningAlgorithms returns the algorithms of the keys JWKS publishes,
// each once, the newest key's first: what a verifier may meet in a live
// token. Before Start it is empty.
func (m *Manager) SigningAlgorithms() []string {
	var algs []string
	for _, k := range m.JWKS().Keys {
		if !slices.Contains(algs, k.Algorithm) {
			algs = append(algs, k.Algorithm)
		}
	}
	return algs
}

// JWKSPath is where the key set is served.
const JWKSPath = "/.well-known/jwks.json"

// Routes mounts GET /.well-known/jwks.json.
func (m *Manager) Routes(rt *httpapi.Router) {
	rt.HandleHTTP("GET "+JWKSPath, m.JWKSHandler())
}

// JWKSHandler serves JWKS as application/jwk-set+json, cacheable for a
// minute. Verifiers that meet an unknown kid fetch it again, so a new key
// is found at once even while caches hold the older set.
func (m *Manager) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.keys.Load() == nil {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "signing keys are not loaded yet", http.StatusServiceUnavailable)
			return
		}
		body, err := json.Marshal(m.JWKS())
		if err != nil {
			m.log.ErrorContext(r.Context(), "token: encode JWKS", "error", err)
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		_, _ = w.Write(body)
	})
}
