package password

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Params are the Argon2id parameters new hashes are made with.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are OWASP's first Argon2id recommendation: 19 MiB, 2
// passes, 1 lane, with a 16-byte salt and a 32-byte key.
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Validate reports every problem with p at once.
func (p Params) Validate() error {
	var errs []error
	if p.Time < 1 {
		errs = append(errs, errors.New("time must be at least 1"))
	}
	if p.Threads < 1 {
		errs = append(errs, errors.New("threads must be at least 1"))
	}
	if p.Memory < 8*uint32(p.Threads) {
		errs = append(errs, errors.New("memory must be at least 8 KiB per thread"))
	}
	if p.SaltLen < 16 || p.SaltLen > maxArgon2Salt {
		errs = append(errs, fmt.Errorf("salt length must be 16 to %d bytes", maxArgon2Salt))
	}
	if p.KeyLen < 16 || p.KeyLen > maxArgon2Key {
		errs = append(errs, fmt.Errorf("key length must be 16 to %d bytes", maxArgon2Key))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("password: invalid argon2id parameters: %w", err)
	}
	return nil
}

// Limits bound the cost parameters Verify accepts in stored hashes, so that
// an imported hash cannot tie up the server. A zero field takes its value
// from DefaultLimits; a Hasher also raises each limit to cover its own
// Params.
type Limits struct {
	MaxArgon2Memory  uint32 // KiB
	MaxArgon2Time    uint32
	MaxArgon2Threads uint8
	// MaxArgon2Cost bounds Memory (KiB) × Time, the work of one check.
	MaxArgon2Cost       uint64
	MaxBcryptCost       int
	MaxPBKDF2Iterations int
}

// DefaultLimits admit the defaults of common libraries and frameworks
// (Django's Argon2 hasher uses 100 MiB, t=2, p=8; PHP and argon2-cffi 64
// MiB) and refuse anything that would take more than about a second:
// Argon2 up to 128 MiB and 128 MiB × 4 passes of work, bcrypt up to cost
// 14, PBKDF2 up to 10 million iterations.
var DefaultLimits = Limits{
	MaxArgon2Memory:     128 << 10,
	MaxArgon2Time:       100,
	MaxArgon2Threads:    16,
	MaxArgon2Cost:       (128 << 10) * 4,
	MaxBcryptCost:       14,
	MaxPBKDF2Iterations: 10_000_000,
}

// resolve fills zero fields from DefaultLimits and raises each limit to
// cover hashes made with p.
func (l Limits) resolve(p Params) Limits {
	d := DefaultLimits
	if l.MaxArgon2Memory == 0 {
		l.MaxArgon2Memory = d.MaxArgon2Memory
	}
	if l.MaxArgon2Time == 0 {
		l.MaxArgon2Time = d.MaxArgon2Time
	}
	if l.MaxArgon2Threads == 0 {
		l.MaxArgon2Threads = d.MaxArgon2Threads
	}
	if l.MaxArgon2Cost == 0 {
		l.MaxArgon2Cost = d.MaxArgon2Cost
	}
	if l.MaxBcryptCost <= 0 {
		l.MaxBcryptCost = d.MaxBcryptCost
	}
	if l.MaxPBKDF2Iterations <= 0 {
		l.MaxPBKDF2Iterations = d.MaxPBKDF2Iterations
	}
	l.MaxArgon2Memory = max(l.MaxArgon2Memory, p.Memory)
	l.MaxArgon2Time = max(l.MaxArgon2Time, p.Time)
	l.MaxArgon2Threads = max(l.MaxArgon2Threads, p.Threads)
	l.MaxArgon2Cost = max(l.MaxArgon2Cost, uint64(p.Memory)*uint64(p.Time))
	return l
}

// MaxPasswordBytes is the longest password Hash accepts, and the longest
// Verify will consider (anything longer simply does not match). It is far
// above any sensible Policy.MaxLength and only stops pathological input.
const MaxPasswordBytes = 16 << 10

// ErrPasswordTooLong is returned by Hash for a password longer than
// MaxPasswordBytes.
var ErrPasswordTooLong = fmt.Errorf("password: longer than %d bytes", MaxPasswordBytes)

// Option configures a Hasher.
type Option func(*Hasher)

// WithLimits sets the limits on stored-hash parameters (default
// DefaultLimits).
func WithLimits(l Limits) Option {
	return func(h *Hasher) { h.limits = l }
}

// Hasher hashes new passwords with Argon2id and verifies stored hashes in
// the formats listed under Format, running at most maxConcurrent
// computations at once. It is safe for concurrent use.
type Hasher struct {
	params Params
	limits Limits

	// slots is the semaphore: a computation holds one token per
	// Params.Memory it needs (at least one, at most cap(slots)).
	slots chan struct{}
	// gate lets one waiter at a time collect tokens, so two waiters
	// each holding part of what they need can never block each other.
	gate chan struct{}

	inFlight atomic.Int64
	waiting  atomic.Int64

	// dummy is a hash of a random secret with the current parameters,
	// for DummyVerify.
	dummy string

	// testHook, if set, runs inside every computation's slot.
	testHook func()
}

// NewHasher returns a Hasher making Argon2id hashes with p and running at
// most maxConcurrent hash computations at once (runtime.GOMAXPROCS(0) if
// maxConcurrent <= 0). It computes one hash before returning, for
// DummyVerify. It panics if p is invalid (see Params.Validate): parameters
// come from configuration, which should be validated before this.
func NewHasher(p Params, maxConcurrent int, opts ...Option) *Hasher {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{
		params: p,
		slots:  make(chan struct{}, maxConcurrent),
		gate:   make(chan struct{}, 1),
	}
	for _, opt := range opts {
		opt(h)
	}
	h.limits = h.limits.resolve(p)

	secret := make([]byte, 32)
	rand.Read(secret)
	salt := make([]byte, p.SaltLen)
	rand.Read(salt)
	h.dummy = encodeArgon2id(p, salt, argon2.IDKey(secret, salt, p.Time, p.Memory, p.Threads, p.KeyLen))
	return h
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Limits returns the effective limits on stored-hash parameters.
func (h *Hasher) Limits() Limits { return h.limits }

// Hash returns the Argon2id PHC string of the NFKC normalization of
// password, with a fresh random salt. It waits for a free slot, returning
// ctx.Err() if ctx ends first.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxPasswordBytes {
		return "", ErrPasswordTooLong
	}
	pw := []byte(norm.NFKC.String(password))
	p := h.params
	salt := make([]byte, p.SaltLen)
	rand.Read(salt)
	var key []byte
	err := h.run(ctx, p.Memory, func() {
		key = argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	})
	if err != nil {
		return "", err
	}
	return encodeArgon2id(p, salt, key), nil
}

// Verify reports whether password matches the stored hash encoded, and if
// so whether the caller should replace the stored hash with Hash(password):
// needsRehash is true for every format other than Argon2id and for Argon2id
// with parameters (memory, time, threads, salt or key length) other than
// the Hasher's. It is false when ok is false.
//
// Argon2id hashes are checked against the NFKC form of password first; the
// other formats, written by systems that did not normalize, against the
// password as given first. If that fails and the two forms differ, the
// other form is tried too (which also lets Argon2id hashes imported from
// systems that did not normalize verify; a match that way needs a rehash).
//
// A hash that does not parse yields ErrUnknownFormat or ErrMalformedHash,
// and one whose parameters exceed the Hasher's Limits ErrParamsOutOfRange,
// all without computing anything. Each computation waits for a slot;
// if ctx ends first Verify returns ctx.Err().
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, needsRehash bool, err error) {
	sh, err := parseHash(encoded, h.limits)
	if err != nil {
		return false, false, err
	}
	if len(password) > MaxPasswordBytes {
		return false, false, nil
	}
	normalized := norm.NFKC.String(password)
	candidates := []string{password, normalized}
	if sh.format() == FormatArgon2id {
		candidates[0], candidates[1] = normalized, password
	}
	if normalized == password {
		candidates = candidates[:1]
	}
	for i, c := range candidates {
		var match bool
		if err := h.run(ctx, sh.memoryKiB(), func() { match = sh.matches(c) }); err != nil {
			return false, false, err
		}
		if match {
			return true, i > 0 || h.needsRehash(sh), nil
		}
	}
	return false, false, nil
}

func (h *Hasher) needsRehash(sh storedHash) bool {
	a, ok := sh.(*argon2Hash)
	if !ok || a.django || a.variant != FormatArgon2id {
		return true
	}
	p := h.params
	return a.memory != p.Memory || a.time != p.Time || a.threads != p.Threads ||
		uint32(len(a.salt)) != p.SaltLen || uint32(len(a.key)) != p.KeyLen
}

// DummyVerify does the work of Verify against an Argon2id hash with the
// Hasher's parameters, and reports nothing. Call it when a login names an
// unknown user, so that the response takes as long as for a known user with
// a current hash. (Users whose stored hash is in a legacy format take as
// long as that format does until they are rehashed on their next login.)
func (h *Hasher) DummyVerify(ctx context.Context, password string) {
	_, _, _ = h.Verify(ctx, password, h.dummy)
}

// Identify is the package-level Identify with this Hasher's limits.
func (h *Hasher) Identify(encoded string) (Format, error) {
	return identify(encoded, h.limits)
}

// MemoryBound is the most memory, in bytes, that this Hasher's Argon2
// computations can hold at once: maxConcurrent × Params.Memory, or the
// largest stored hash the limits admit (Limits.MaxArgon2Memory) if that is
// more, since such a hash takes every slot and runs alone. It counts live
// Argon2 work areas only: finished ones stay on the Go heap until the next
// collection, so with the default GOGC the heap can peak at two to three
// times the bound during a burst (see BenchmarkBurst32MaxConcurrent2); set
// GOMEMLIMIT to hold it closer.
func (h *Hasher) MemoryBound() uint64 {
	b := uint64(cap(h.slots)) * uint64(h.params.Memory)
	return max(b, uint64(h.limits.MaxArgon2Memory)) * 1024
}

// MaxConcurrent is the number of slots.
func (h *Hasher) MaxConcurrent() int { return cap(h.slots) }

// InFlight is the number of hash computations running now.
func (h *Hasher) InFlight() int { return int(h.inFlight.Load()) }

// Waiting is the number of hash computations waiting for a slot.
func (h *Hasher) Waiting() int { return int(h.waiting.Load()) }

// run runs fn holding enough slots for a computation needing memKiB.
func (h *Hasher) run(ctx context.Context, memKiB uint32, fn func()) error {
	n := h.slotsFor(memKiB)
	if err := h.acquire(ctx, n); err != nil {
		return err
	}
	h.inFlight.Add(1)
	defer func() {
		h.inFlight.Add(-1)
		for range n {
			<-h.slots
		}
	}()
	if h.testHook != nil {
		h.testHook()
	}
	fn()
	return nil
}

// slotsFor is the number of slots a computation needing memKiB takes: one
// per Params.Memory, rounded up, between 1 and all of them.
func (h *Hasher) slotsFor(memKiB uint32) int {
	per := uint64(h.params.Memory)
	n := (uint64(memKiB) + per - 1) / per
	return int(min(max(n, 1), uint64(cap(h.slots))))
}

func (h *Hasher) acquire(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	select {
	case h.gate <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-h.gate }()
	for got := 0; got < n; got++ {
		select {
		case h.slots <- struct{}{}:
		case <-ctx.Done():
			for range got {
				<-h.slots
			}
			return ctx.Err()
		}
	}
	// Both cases may have been ready; do not start work for a request
	// that has gone.
	if err := ctx.Err(); err != nil {
		for range n {
			<-h.slots
		}
		return err
	}
	return nil
}
