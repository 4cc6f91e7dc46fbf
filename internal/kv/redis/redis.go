// Package rediskv implements kv.Store on Redis, for deployments where
// ephemeral state must be shared by several Gatehouse nodes. It works with
// a single server, Redis Cluster and Sentinel alike (see NewClient).
//
// Every key and pub/sub channel gets the store's prefix in front, so several
// installations (or tests) can share one Redis. Each operation is a single
// Redis command or a short Lua script, and so atomic; only IncrUnless's
// script touches two keys, which on Redis Cluster must share a slot.
//
// TTLs are sent to Redis in whole milliseconds, rounded up.
package rediskv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse/gatehouse/internal/kv"
)

// SubscriptionBuffer is how many undelivered messages a subscription holds
// before further messages to it are dropped.
const SubscriptionBuffer = 64

// ErrClosed is returned by operations on a closed Store.
var ErrClosed = errors.New("rediskv: store is closed")

var errNegativeTTL = errors.New("rediskv: negative ttl")

var errNegativeDelta = errors.New("rediskv: negative delta")

// incr adds ARGV[1] to KEYS[1] and, only when this call created the key and
// ARGV[2] > 0, makes it expire after ARGV[2] milliseconds. A script runs
// as one atomic step, so no crash or concurrent caller can leave a counter
// created without its expiry, and later calls never extend the window.
var incr = redis.NewScript(`
local created = redis.call('EXISTS', KEYS[1]) == 0
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
`)

// incrUnless is incr on KEYS[1] unless KEYS[2] (the guard) exists. It
// answers {1, PTTL of the guard} when the guard blocks (-1: no expiry),
// else {0, the new value}. PTTL answers -2 only for a missing key, whatever
// the key holds, so a set counts as a guard too. Checking the guard and
// counting in one script leaves no moment between them for the guard to
// appear in.
var incrUnless = redis.NewScript(`
local pttl = redis.call('PTTL', KEYS[2])
if pttl ~= -2 then
	return {1, pttl}
end
local created = redis.call('EXISTS', KEYS[1]) == 0
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {0, n}
`)

// decrExisting subtracts ARGV[1] from KEYS[1] if it exists, but not below
// 0 (a value already below 0 stays as it is), keeping its TTL: false (nil)
// for a missing key, else the new value. DECRBY fails on a value that is
// not an integer and on a set.
var decrExisting = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return false
end
local cur = redis.call('DECRBY', KEYS[1], 0)
local d = tonumber(ARGV[1])
if cur <= 0 then
	return cur
end
if d > cur then
	d = cur
end
return redis.call('DECRBY', KEYS[1], d)
`)

// persist removes the expiry of KEYS[1] and reports whether the key exists
// (PERSIST alone answers 0 both for a missing key and one without expiry).
var persist = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
redis.call('PERSIST', KEYS[1])
return 1
`)

// compareAndSwap sets KEYS[1] to ARGV[2] (with a PX of ARGV[3] ms when it
// is > 0, else without expiry) only if it holds exactly ARGV[1]. GET on a
// set raises WRONGTYPE, so TYPE is checked first: a set never matches.
var compareAndSwap = redis.NewScript(`
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then
	return 0
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
if tonumber(ARGV[3]) > 0 then
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
	redis.call('SET', KEYS[1], ARGV[2])
end
return 1
`)

// Store is a kv.Store on Redis.
type Store struct {
	client redis.UniversalClient
	prefix string

	closed atomic.Bool
	mu     sync.Mutex
	subs   map[*subscription]struct{}
}

var _ kv.Store = (*Store)(nil)

// New returns a Store that keeps its keys and channels under prefix (for
// example "gatehouse:"). The Store does not own client: Close ends the
// Store's subscriptions but leaves the client open, since the rate limiter
// and others share it; whoever made the client closes it.
func New(client redis.UniversalClient, prefix string) *Store {
	return &Store{client: client, prefix: prefix, subs: make(map[*subscription]struct{})}
}

// Client returns the underlying client.
func (s *Store) Client() redis.UniversalClient { return s.client }

func (s *Store) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

func (s *Store) key(k string) string { return s.prefix + k }

// ttlMillis validates ttl and rounds it up to whole milliseconds, the
// resolution of Redis expiry.
func ttlMillis(ttl time.Duration) (time.Duration, error) {
	if ttl < 0 {
		return 0, errNegativeTTL
	}
	if r := ttl % time.Millisecond; r != 0 {
		ttl += time.Millisecond - r
	}
	return ttl, nil
}

func wrap(op string, err error) error {
	if errors.Is(err, redis.Nil) {
		return kv.ErrNotFound
	}
	return fmt.Errorf("rediskv: %s: %w", op, MapUnavailable(err))
}

// MapUnavailable wraps err in kv.ErrUnavailable when it says Redis cannot
// serve now, and returns any other error as it is: a refused, reset or
// timed-out connection (a net.Error, EOF), a closed client, a pool timeout
// or exhausted pool, and the LOADING, MASTERDOWN, TRYAGAIN and CLUSTERDOWN
// replies. A cancellation by the caller is not one. The rate limiter,
// which shares the client, uses it too.
func MapUnavailable(err error) error {
	if err == nil || !unavailable(err) || errors.Is(err, kv.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", kv.ErrUnavailable, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, redis.Nil) {
		return false
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted),
		redis.IsLoadingError(err), redis.IsMasterDownError(err),
		redis.IsTryAgainError(err), redis.IsClusterDownError(err):
		return true
	}
	return false
}

// Get implements kv.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	b, err := s.client.Get(ctx, s.key(key)).Bytes()
	if err != nil {
		return nil, wrap("get", err)
	}
	return b, nil
}

// Set implements kv.Store.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.check(); err != nil {
		return err
	}
	ttl, err := ttlMillis(ttl)
	if err != nil {
		return err
	}
	if err := s.client.Set(ctx, s.key(key), value, ttl).Err(); err != nil {
		return wrap("set", err)
	}
	return nil
}

// SetNX implements kv.Store.
func (s *Store) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	ttl, err := ttlMillis(ttl)
	if err != nil {
		return false, err
	}
	ok, err := s.client.SetNX(ctx, s.key(key), value, ttl).Result()
	if err != nil {
		return false, wrap("setnx", err)
	}
	return ok, nil
}

// GetMany implements kv.Store with one pipeline of GETs (not MGET, which
// Redis Cluster refuses for keys in different slots). A key holding a set
// reads as missing.
func (s *Store) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.key(k))
		}
		return nil
	})
	out := make([][]byte, len(keys))
	for i, c := range cmds {
		b, cerr := c.Bytes()
		switch {
		case cerr == nil:
			out[i] = b
		case errors.Is(cerr, redis.Nil), strings.HasPrefix(cerr.Error(), "WRONGTYPE"):
		default:
			return nil, wrap("getmany", cerr)
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) && !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return nil, wrap("getmany", err)
	}
	return out, nil
}

// SetMany implements kv.Store with one pipeline of SETs.
func (s *Store) SetMany(ctx context.Context, entries ...kv.Entry) error {
	if err := s.check(); err != nil {
		return err
	}
	ttls := make([]time.Duration, len(entries))
	for i, e := range entries {
		ttl, err := ttlMillis(e.TTL)
		if err != nil {
			return err
		}
		ttls[i] = ttl
	}
	if len(entries) == 0 {
		return nil
	}
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range entries {
			p.Set(ctx, s.key(e.Key), e.Value, ttls[i])
		}
		return nil
	})
	if err != nil {
		return wrap("setmany", err)
	}
	return nil
}

// CompareAndSwap implements kv.Store with one Lua script.
func (s *Store) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	ttl, err := ttlMillis(ttl)
	if err != nil {
		return false, err
	}
	n, err := compareAndSwap.Run(ctx, s.client, []string{s.key(key)}, old, value, ttl.Milliseconds()).Int64()
	if err != nil {
		return false, wrap("compareandswap", err)
	}
	return n == 1, nil
}

// GetDel implements kv.Store with GETDEL (Redis 6.2 or later).
func (s *Store) GetDel(ctx context.Context, key string) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	b, err := s.client.GetDel(ctx, s.key(key)).Bytes()
	if err != nil {
		return nil, wrap("getdel", err)
	}
	return b, nil
}

// Delete implements kv.Store. One DEL removes all the keys at once, except
// on Redis Cluster when they may live in different slots: then each is
// deleted with its own DEL (in one pipeline). Keys with the same hash tag
// share a slot, so they get one DEL on a cluster too.
func (s *Store) Delete(ctx context.Context, keys ...string) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if len(keys) == 0 {
		return 0, nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.key(k)
	}
	if _, cluster := s.client.(*redis.ClusterClient); !cluster || sameSlot(full) {
		n, err := s.client.Del(ctx, full...).Result()
		if err != nil {
			return 0, wrap("del", err)
		}
		return n, nil
	}
	cmds := make([]*redis.IntCmd, len(full))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range full {
			cmds[i] = p.Del(ctx, k)
		}
		return nil
	})
	if err != nil {
		return 0, wrap("del", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// Incr implements kv.Store with a Lua script, so that creating the counter
// and setting its expiry are one step.
func (s *Store) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	ttl, err := ttlMillis(ttl)
	if err != nil {
		return 0, err
	}
	n, err := incr.Run(ctx, s.client, []string{s.key(key)}, delta, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, wrap("incr", err)
	}
	return n, nil
}

// IncrUnless implements kv.Store with one Lua script (one round trip). The
// guard's TTL is read with PTTL, in whole milliseconds, as TTL reads it.
func (s *Store) IncrUnless(ctx context.Context, key string, delta int64, ttl time.Duration, guard string) (int64, time.Duration, bool, error) {
	if err := s.check(); err != nil {
		return 0, 0, false, err
	}
	ttl, err := ttlMillis(ttl)
	if err != nil {
		return 0, 0, false, err
	}
	r, err := incrUnless.Run(ctx, s.client, []string{s.key(key), s.key(guard)}, delta, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, false, wrap("incrunless", err)
	}
	if len(r) != 2 {
		return 0, 0, false, fmt.Errorf("rediskv: incrunless: unexpected reply %v", r)
	}
	if r[0] == 1 {
		return 0, time.Duration(max(r[1], 0)) * time.Millisecond, true, nil
	}
	return r[1], 0, false, nil
}

// DecrExisting implements kv.Store with one Lua script.
func (s *Store) DecrExisting(ctx context.Context, key string, delta int64) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if delta < 0 {
		return 0, errNegativeDelta
	}
	n, err := decrExisting.Run(ctx, s.client, []string{s.key(key)}, delta).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, kv.ErrNotFound
	}
	if err != nil {
		return 0, wrap("decrexisting", err)
	}
	return n, nil
}

// TTL implements kv.Store.
func (s *Store) TTL(ctx context.Context, key string) (time.Duration, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	d, err := s.client.PTTL(ctx, s.key(key)).Result()
	if err != nil {
		return 0, wrap("pttl", err)
	}
	switch d {
	case -2: // no such key
		return 0, kv.ErrNotFound
	case -1: // no expiry
		return 0, nil
	}
	return d, nil
}

// Expire implements kv.Store. A ttl of 0 removes the expiry (PERSIST), where
// Redis's own EXPIRE 0 would delete the key.
func (s *Store) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	ttl, err := ttlMillis(ttl)
	if err != nil {
		return false, err
	}
	if ttl == 0 {
		n, err := persist.Run(ctx, s.client, []string{s.key(key)}).Int64()
		if err != nil {
			return false, wrap("persist", err)
		}
		return n == 1, nil
	}
	ok, err := s.client.PExpire(ctx, s.key(key), ttl).Result()
	if err != nil {
		return false, wrap("pexpire", err)
	}
	return ok, nil
}

// hashed is the part of key that Redis Cluster hashes to find its slot:
// the text between the first '{' and the first '}' after it, if that is
// not empty, else the whole key.
func hashed(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// sameSlot reports whether keys are sure to share a cluster slot: they hash
// the same text. (Keys that merely collide on a slot are not detected.)
func sameSlot(keys []string) bool {
	for _, k := range keys[1:] {
		if hashed(k) != hashed(keys[0]) {
			return false
		}
	}
	return true
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// SAdd implements kv.Store.
func (s *Store) SAdd(ctx context.Context, key string, members ...string) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if len(members) == 0 {
		return 0, nil
	}
	n, err := s.client.SAdd(ctx, s.key(key), anys(members)...).Result()
	if err != nil {
		return 0, wrap("sadd", err)
	}
	return n, nil
}

// SRem implements kv.Store.
func (s *Store) SRem(ctx context.Context, key string, members ...string) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if len(members) == 0 {
		return 0, nil
	}
	n, err := s.client.SRem(ctx, s.key(key), anys(members)...).Result()
	if err != nil {
		return 0, wrap("srem", err)
	}
	return n, nil
}

// SMembers implements kv.Store.
func (s *Store) SMembers(ctx context.Context, key string) ([]string, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	m, err := s.client.SMembers(ctx, s.key(key)).Result()
	if err != nil {
		return nil, wrap("smembers", err)
	}
	if m == nil {
		m = []string{}
	}
	return m, nil
}

// SIsMember implements kv.Store.
func (s *Store) SIsMember(ctx context.Context, key, member string) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	ok, err := s.client.SIsMember(ctx, s.key(key), member).Result()
	if err != nil {
		return false, wrap("sismember", err)
	}
	return ok, nil
}

// Publish implements kv.Store.
func (s *Store) Publish(ctx context.Context, channel string, payload []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.client.Publish(ctx, s.key(channel), payload).Err(); err != nil {
		return wrap("publish", err)
	}
	return nil
}

// Subscribe implements kv.Store. It returns once Redis has confirmed the
// subscription, so a message published after it returns is delivered. The
// subscription ends when ctx ends, when it is closed, or when the Store is
// closed. Messages are forwarded into a buffer of SubscriptionBuffer; while
// that is full, further messages are dropped rather than holding up the
// connection. go-redis re-subscribes by itself after a lost connection;
// messages published meanwhile are missed.
func (s *Store) Subscribe(ctx context.Context, channel string) (kv.Subscription, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	name := s.key(channel)
	ps := s.client.Subscribe(ctx, name)
	msg, err := ps.Receive(ctx)
	if err == nil {
		if c, ok := msg.(*redis.Subscription); !ok || c.Kind != "subscribe" || c.Channel != name {
			err = fmt.Errorf("unexpected reply %v", msg)
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, wrap("subscribe", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	sub := &subscription{
		store:  s,
		ps:     ps,
		c:      make(chan kv.Message, SubscriptionBuffer),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	s.mu.Lock()
	if s.closed.Load() { // Close ran while we were subscribing
		s.mu.Unlock()
		cancel()
		_ = ps.Close()
		return nil, ErrClosed
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	go sub.run(ctx, ps.Channel(), channel)
	return sub, nil
}

// Ping implements kv.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Close ends the Store's subscriptions; later calls return ErrClosed. It
// does not close the client (see New). Close may be called more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed.Store(true)
	subs := s.subs
	s.subs = make(map[*subscription]struct{})
	s.mu.Unlock()
	var errs []error
	for sub := range subs {
		errs = append(errs, sub.Close())
	}
	return errors.Join(errs...)
}

type subscription struct {
	store  *Store
	ps     *redis.PubSub
	c      chan kv.Message
	cancel context.CancelFunc
	done   chan struct{}
	err    error // from closing ps; written by run before done is closed
}

func (sub *subscription) C() <-chan kv.Message { return sub.c }

// Close ends the subscription and waits until its channel is closed. It is
// safe to call more than once.
func (sub *subscription) Close() error {
	sub.cancel()
	<-sub.done
	return sub.err
}

func (sub *subscription) run(ctx context.Context, in <-chan *redis.Message, channel string) {
	defer close(sub.done)
	defer close(sub.c)
	defer func() {
		sub.store.mu.Lock()
		delete(sub.store.subs, sub)
		sub.store.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			if err := sub.ps.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
				sub.err = fmt.Errorf("rediskv: unsubscribe: %w", err)
			}
			return
		case m, ok := <-in:
			if !ok { // the client was closed under us
				return
			}
			// The subscription is to this one channel, so m.Channel is
			// always the prefixed form of it.
			select {
			case sub.c <- kv.Message{Channel: channel, Payload: []byte(m.Payload)}:
			default: // buffer full: drop, as documented
			}
		}
	}
}
