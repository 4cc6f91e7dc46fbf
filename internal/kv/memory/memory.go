// Package memory is the in-process implementation of kv.Store: a
// mutex-guarded map for a single Gatehouse node (the embedded default).
//
// Expired keys are removed lazily whenever they are touched, and a janitor
// goroutine sweeps the rest every SweepInterval so that keys nobody reads
// again do not pile up. Close stops the janitor.
//
// Pub/sub fans out in process. Each subscription has a buffer of
// SubscriptionBuffer messages; Publish never blocks, so a subscriber whose
// buffer is full misses the message (at-most-once delivery, as the kv
// contract allows) instead of stalling every publisher.
package memory

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv"
)

const (
	// SweepInterval is how often the janitor removes expired keys.
	SweepInterval = time.Minute
	// SubscriptionBuffer is how many undelivered messages a subscription
	// holds before further messages to it are dropped.
	SubscriptionBuffer = 64
)

var (
	// ErrWrongType is returned when an operation meets a key holding the
	// other kind of value (a string where a set is expected or the reverse),
	// like Redis's WRONGTYPE error.
	ErrWrongType = errors.New("memory: operation against a key holding the wrong kind of value")
	// ErrNotInteger is returned by Incr when the value is not a decimal
	// int64 or the result would overflow.
	ErrNotInteger = errors.New("memory: value is not an integer or out of range")
	// ErrClosed is returned by operations on a closed Store.
	ErrClosed = errors.New("memory: store is closed")

	errNegativeTTL = errors.New("memory: negative ttl")
	// errNegativeDelta is returned by DecrExisting for a negative delta.
	errNegativeDelta = errors.New("memory: negative delta")
)

// entry is one key: either a string value or a set (set != nil).
type entry struct {
	value   []byte
	set     map[string]struct{}
	expires time.Time // zero: no expiry
}

func (e *entry) isSet() bool { return e.set != nil }

// Store is an in-process kv.Store. The zero value is not usable; call New.
type Store struct {
	now func() time.Time

	mu     sync.Mutex
	data   map[string]*entry
	subs   map[string]map[*subscription]struct{}
	closed bool

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ kv.Store = (*Store)(nil)

// New returns an empty Store that reads the time from now (time.Now when
// nil) and starts its janitor; call Close to stop it.
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	s := &Store{
		now:  now,
		data: make(map[string]*entry),
		subs: make(map[string]map[*subscription]struct{}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.janitor(SweepInterval)
	return s
}

func (s *Store) janitor(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep deletes every expired key and returns how many it removed.
func (s *Store) sweep() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for k, e := range s.data {
		if expired(e, now) {
			delete(s.data, k)
			n++
		}
	}
	return n
}

// A key expires at the instant its deadline is reached.
func expired(e *entry, now time.Time) bool {
	return !e.expires.IsZero() && !now.Before(e.expires)
}

func deadline(now time.Time, ttl time.Duration) time.Time {
	if ttl == 0 {
		return time.Time{}
	}
	return now.Add(ttl)
}

// lookup returns the live entry for key, deleting it first if it has
// expired. The caller holds s.mu.
func (s *Store) lookup(key string, now time.Time) *entry {
	e, ok := s.data[key]
	if !ok {
		return nil
	}
	if expired(e, now) {
		delete(s.data, key)
		return nil
	}
	return e
}

// begin locks the store and returns the current time, or ErrClosed (with
// the lock released).
func (s *Store) begin() (time.Time, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return time.Time{}, ErrClosed
	}
	return s.now(), nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < 0 {
		return errNegativeTTL
	}
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append([]byte(nil), b...)
}

// Get implements kv.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	now, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e := s.lookup(key, now)
	switch {
	case e == nil:
		return nil, kv.ErrNotFound
	case e.isSet():
		return nil, ErrWrongType
	}
	return clone(e.value), nil
}

// Set implements kv.Store.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	now, err := s.begin()
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.data[key] = &entry{value: clone(value), expires: deadline(now, ttl)}
	return nil
}

// SetNX implements kv.Store.
func (s *Store) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	now, err := s.begin()
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if s.lookup(key, now) != nil {
		return false, nil
	}
	s.data[key] = &entry{value: clone(value), expires: deadline(now, ttl)}
	return true, nil
}

// GetMany implements kv.Store.
func (s *Store) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	now, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if e := s.lookup(k, now); e != nil && !e.isSet() {
			out[i] = clone(e.value)
		}
	}
	return out, nil
}

// SetMany implements kv.Store.
func (s *Store) SetMany(ctx context.Context, entries ...kv.Entry) error {
	for _, e := range entries {
		if err := checkTTL(e.TTL); err != nil {
			return err
		}
	}
	now, err := s.begin()
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	for _, e := range entries {
		s.data[e.Key] = &entry{value: clone(e.Value), expires: deadline(now, e.TTL)}
	}
	return nil
}

// CompareAndSwap implements kv.Store.
func (s *Store) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	now, err := s.begin()
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	e := s.lookup(key, now)
	if e == nil || e.isSet() || !bytes.Equal(e.value, old) {
		return false, nil
	}
	s.data[key] = &entry{value: clone(value), expires: deadline(now, ttl)}
	return true, nil
}

// GetDel implements kv.Store.
func (s *Store) GetDel(ctx context.Context, key string) ([]byte, error) {
	now, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e := s.lookup(key, now)
	switch {
	case e == nil:
		return nil, kv.ErrNotFound
	case e.isSet():
		return nil, ErrWrongType
	}
	delete(s.data, key)
	return e.value, nil
}

// Delete implements kv.Store.
func (s *Store) Delete(ctx context.Context, keys ...string) (int64, error) {
	now, err := s.begin()
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	var n int64
	for _, k := range keys {
		if s.lookup(k, now) != nil {
			delete(s.data, k)
			n++
		}
	}
	return n, nil
}

// Incr implements kv.Store. The value is kept as a decimal string, as in
// Redis, so Get returns it in that form.
func (s *Store) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := checkTTL(ttl); err != nil {
		return 0, err
	}
	now, err := s.begin()
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return s.incr(key, delta, ttl, now)
}

// IncrUnless implements kv.Store: the guard is looked up and the counter
// incremented under one hold of the store's lock.
func (s *Store) IncrUnless(ctx context.Context, key string, delta int64, ttl time.Duration, guard string) (int64, time.Duration, bool, error) {
	if err := checkTTL(ttl); err != nil {
		return 0, 0, false, err
	}
	now, err := s.begin()
	if err != nil {
		return 0, 0, false, err
	}
	defer s.mu.Unlock()
	if g := s.lookup(guard, now); g != nil {
		return 0, remaining(g, now), true, nil
	}
	n, err := s.incr(key, delta, ttl, now)
	return n, 0, false, err
}

// incr is Incr's step; the caller holds s.mu and has checked ttl.
func (s *Store) incr(key string, delta int64, ttl time.Duration, now time.Time) (int64, error) {
	e := s.lookup(key, now)
	if e == nil {
		e = &entry{value: []byte("0"), expires: deadline(now, ttl)}
	} else if e.isSet() {
		return 0, ErrWrongType
	}
	cur, err := strconv.ParseInt(string(e.value), 10, 64)
	if err != nil {
		return 0, ErrNotInteger
	}
	if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
		return 0, ErrNotInteger
	}
	cur += delta
	e.value = strconv.AppendInt(nil, cur, 10)
	s.data[key] = e
	return cur, nil
}

// DecrExisting implements kv.Store.
func (s *Store) DecrExisting(ctx context.Context, key string, delta int64) (int64, error) {
	if delta < 0 {
		return 0, errNegativeDelta
	}
	now, err := s.begin()
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	e := s.lookup(key, now)
	switch {
	case e == nil:
		return 0, kv.ErrNotFound
	case e.isSet():
		return 0, ErrWrongType
	}
	cur, err := strconv.ParseInt(string(e.value), 10, 64)
	if err != nil {
		return 0, ErrNotInteger
	}
	if cur > 0 { // a value below 0 stays as it is
		cur -= min(delta, cur)
	}
	e.value = strconv.AppendInt(nil, cur, 10)
	return cur, nil
}

// remaining is the lifetime left to a live entry: 0 when it has no expiry.
func remaining(e *entry, now time.Time) time.Duration {
	if e.expires.IsZero() {
		return 0
	}
	return e.expires.Sub(now)
}

// TTL implements kv.Store.
func (s *Store) TTL(ctx context.Context, key string) (time.Duration, error) {
	now, err := s.begin()
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	e := s.lookup(key, now)
	if e == nil {
		return 0, kv.ErrNotFound
	}
	return remaining(e, now), nil
}

// Expire implements kv.Store. A ttl of 0 removes the expiry.
func (s *Store) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	now, err := s.begin()
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	e := s.lookup(key, now)
	if e == nil {
		return false, nil
	}
	e.expires = deadline(now, ttl)
	return true, nil
}

// setFor returns the live set at key, or nil if the key is absent, or
// ErrWrongType. The caller holds s.mu.
func (s *Store) setFor(key string, now time.Time) (*entry, error) {
	e := s.lookup(key, now)
	if e != nil && !e.isSet() {
		return nil, ErrWrongType
	}
	return e, nil
}

// SAdd implements kv.Store.
func (s *Store) SAdd(ctx context.Context, key string, members ...string) (int64, error) {
	now, err := s.begin()
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	e, err := s.setFor(key, now)
	if err != nil || len(members) == 0 {
		return 0, err
	}
	if e == nil {
		e = &entry{set: make(map[string]struct{}, len(members))}
		s.data[key] = e
	}
	var n int64
	for _, m := range members {
		if _, ok := e.set[m]; !ok {
			e.set[m] = struct{}{}
			n++
		}
	}
	return n, nil
}

// SRem implements kv.Store. Removing the last member deletes the key, as
// in Redis.
func (s *Store) SRem(ctx context.Context, key string, members ...string) (int64, error) {
	now, err := s.begin()
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	e, err := s.setFor(key, now)
	if err != nil || e == nil {
		return 0, err
	}
	var n int64
	for _, m := range members {
		if _, ok := e.set[m]; ok {
			delete(e.set, m)
			n++
		}
	}
	if len(e.set) == 0 {
		delete(s.data, key)
	}
	return n, nil
}

// SMembers implements kv.Store.
func (s *Store) SMembers(ctx context.Context, key string) ([]string, error) {
	now, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	e, err := s.setFor(key, now)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return []string{}, nil
	}
	out := make([]string, 0, len(e.set))
	for m := range e.set {
		out = append(out, m)
	}
	return out, nil
}

// SIsMember implements kv.Store.
func (s *Store) SIsMember(ctx context.Context, key, member string) (bool, error) {
	now, err := s.begin()
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	e, err := s.setFor(key, now)
	if err != nil || e == nil {
		return false, err
	}
	_, ok := e.set[member]
	return ok, nil
}

// Publish implements kv.Store. It never blocks: a subscriber whose buffer
// is full misses the message.
func (s *Store) Publish(ctx context.Context, channel string, payload []byte) error {
	if _, err := s.begin(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	for sub := range s.subs[channel] {
		// Every subscriber gets its own copy, so one cannot alter what
		// another (or the publisher) sees.
		select {
		case sub.c <- kv.Message{Channel: channel, Payload: clone(payload)}:
		default:
		}
	}
	return nil
}

// Subscribe implements kv.Store. The subscription ends when ctx ends, when
// it is closed, or when the Store is closed.
func (s *Store) Subscribe(ctx context.Context, channel string) (kv.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := s.begin(); err != nil {
		return nil, err
	}
	sub := &subscription{store: s, channel: channel, c: make(chan kv.Message, SubscriptionBuffer)}
	if s.subs[channel] == nil {
		s.subs[channel] = make(map[*subscription]struct{})
	}
	s.subs[channel][sub] = struct{}{}
	// AfterFunc runs its function in a goroutine of its own, so it may be
	// registered under the lock that sub.Close takes.
	sub.stop = context.AfterFunc(ctx, func() { _ = sub.Close() })
	s.mu.Unlock()
	return sub, nil
}

// Ping implements kv.Store.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.begin(); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

// Close stops the janitor and ends every subscription. Later calls return
// ErrClosed; Close itself may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closed = true
		for _, subs := range s.subs {
			for sub := range subs {
				sub.end()
			}
		}
		s.subs = nil
		s.data = nil
	})
	return nil
}

type subscription struct {
	store   *Store
	channel string
	c       chan kv.Message
	stop    func() bool // stops the context.AfterFunc; guarded by store.mu
	ended   bool        // guarded by store.mu
}

func (sub *subscription) C() <-chan kv.Message { return sub.c }

// Close ends the subscription and closes its channel. It is safe to call
// more than once and from any goroutine.
func (sub *subscription) Close() error {
	s := sub.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.ended {
		return nil
	}
	if subs := s.subs[sub.channel]; subs != nil {
		delete(subs, sub)
		if len(subs) == 0 {
			delete(s.subs, sub.channel)
		}
	}
	sub.end()
	return nil
}

// end closes the channel once; the caller holds store.mu, which Publish
// also holds while sending, so no send can race with the close.
func (sub *subscription) end() {
	if sub.ended {
		return
	}
	sub.ended = true
	close(sub.c)
	if sub.stop != nil {
		sub.stop()
	}
}
