// Package kv is Gatehouse's ephemeral state: TTL keys, atomic counters, sets
// and pub/sub. Two implementations satisfy the same contract and pass the same
// conformance suite (internal/kv/kvtest): Redis (internal/kv/redis) for
// production, where state must hold across nodes, and an in-process map
// (internal/kv/memory) for the embedded default.
//
// Keys are plain strings; each implementation puts its configured prefix in
// front, so callers never see it. Every operation is atomic on its own.
package kv

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a key does not exist (or has expired).
var ErrNotFound = errors.New("kv: not found")

// ErrUnavailable is returned (wrapped, with the client's error) when the
// backend cannot be reached or refuses service for now (refused or lost
// connection, pool timeout, a server loading its data or without a
// master): a retryable outage. The in-process store never returns it.
// Callers must pass it on, never read it as "not found".
var ErrUnavailable = errors.New("kv: backend unavailable")

// Store is the ephemeral-state contract. A ttl of 0 means "no expiry"; a
// negative ttl is an error.
//
// A key holds either a value (Get, Set, Incr …) or a set (SAdd …). An
// operation that meets the other kind returns an error, as Redis's WRONGTYPE
// does; Set replaces either kind.
type Store interface {
	// Get returns the value of key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key, replacing any previous value and TTL.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// SetNX stores value only if key does not exist; it reports whether it did.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// GetMany returns the values of keys in one round trip, in their order;
	// a missing key (or one holding a set) gives nil. It is not one atomic
	// step across keys, but each read is.
	GetMany(ctx context.Context, keys ...string) ([][]byte, error)
	// SetMany stores every entry (as Set does) in one round trip. It is not
	// atomic across entries: after an error some may have been stored.
	SetMany(ctx context.Context, entries ...Entry) error
	// CompareAndSwap replaces the value of key with value, and its TTL with
	// ttl, only if key currently holds exactly old; it reports whether it
	// did. A missing key never matches. One atomic step.
	CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration) (bool, error)
	// GetDel returns the value of key and deletes it in one atomic step, so a
	// one-time value is handed out at most once; ErrNotFound if absent.
	GetDel(ctx context.Context, key string) ([]byte, error)
	// Delete removes keys and returns how many existed.
	Delete(ctx context.Context, keys ...string) (int64, error)
	// Incr adds delta to the integer at key (creating it at 0) and returns the
	// new value. When this call creates the key and ttl > 0, the key expires
	// after ttl (a fixed window); later calls do not extend it. The value is
	// stored as a decimal string; Incr fails if it is not one, or on int64
	// overflow.
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	// IncrUnless is Incr on key unless guard exists: then it changes nothing
	// and returns blocked=true with guard's remaining TTL (0 for a guard
	// without expiry). A guard of either kind, value or set, exists. Both
	// checks and the increment are one atomic step. On Redis Cluster, key
	// and guard must hash to the same slot (give them the same {hash tag}).
	IncrUnless(ctx context.Context, key string, delta int64, ttl time.Duration, guard string) (n int64, guardTTL time.Duration, blocked bool, err error)
	// DecrExisting subtracts delta (>= 0) from the integer at key, but not
	// below 0, keeps the key's TTL, and returns the new value. It never
	// creates a key: on a missing key it changes nothing and returns
	// ErrNotFound. It gives back what an Incr took, without lending a
	// counter that expired or was reset meanwhile anything. It fails on a
	// value that is not an integer, on a set, and on a negative delta.
	DecrExisting(ctx context.Context, key string, delta int64) (int64, error)
	// TTL returns the remaining lifetime of key: 0 for a key without expiry,
	// ErrNotFound when the key does not exist.
	TTL(ctx context.Context, key string) (time.Duration, error)
	// Expire sets a new TTL on an existing key and reports whether it existed.
	// A ttl of 0 removes the key's expiry (unlike Redis's EXPIRE 0, which
	// deletes the key).
	Expire(ctx context.Context, key string, ttl time.Duration) (bool, error)

	// SAdd adds members to the set at key and returns how many were new.
	SAdd(ctx context.Context, key string, members ...string) (int64, error)
	// SRem removes members from the set at key and returns how many were there.
	// Removing the last member removes the key.
	SRem(ctx context.Context, key string, members ...string) (int64, error)
	// SMembers returns the members of the set at key (empty if absent), in no
	// particular order.
	SMembers(ctx context.Context, key string) ([]string, error)
	// SIsMember reports whether member is in the set at key.
	SIsMember(ctx context.Context, key, member string) (bool, error)

	// Publish sends payload to every current subscriber of channel, on every
	// node. Delivery is at most once: subscribers that are not listening miss it.
	Publish(ctx context.Context, channel string, payload []byte) error
	// Subscribe listens on channel until ctx ends or the subscription is
	// closed. The subscription is active when Subscribe returns. Each
	// subscription buffers a bounded number of messages; while its buffer is
	// full, further messages to it are dropped rather than blocking Publish.
	Subscribe(ctx context.Context, channel string) (Subscription, error)

	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
	// Close releases the backend and ends every open subscription; later
	// operations fail. Calling it again does nothing. (The Redis store leaves
	// its client open: the client is shared, and its owner closes it.)
	Close() error
}

// Entry is one key, value and TTL for SetMany.
type Entry struct {
	Key   string
	Value []byte
	TTL   time.Duration
}

// Subscription delivers messages published on one channel.
type Subscription interface {
	// C delivers messages; it is closed when the subscription ends.
	C() <-chan Message
	// Close ends the subscription.
	Close() error
}

// Message is one published payload.
type Message struct {
	Channel string
	Payload []byte
}
