package password

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Format names a stored password hash encoding that Verify understands.
type Format string

// The formats Verify accepts. Only FormatArgon2id with the Hasher's own
// parameters is current; every other format verifies but needs a rehash.
const (
	// FormatArgon2id is the PHC string $argon2id$v=19$m=…,t=…,p=…$salt$hash.
	FormatArgon2id Format = "argon2id"
	// FormatArgon2i is the same PHC string for the Argon2i variant.
	FormatArgon2i Format = "argon2i"
	// FormatBcrypt is a modular-crypt bcrypt hash: $2a$, $2b$ or $2y$.
	FormatBcrypt Format = "bcrypt"
	// FormatDjangoPBKDF2SHA256 is Django's default
	// pbkdf2_sha256$<iterations>$<salt>$<base64 hash>.
	FormatDjangoPBKDF2SHA256 Format = "django_pbkdf2_sha256"
	// FormatDjangoPBKDF2SHA1 is Django's older pbkdf2_sha1$… variant.
	FormatDjangoPBKDF2SHA1 Format = "django_pbkdf2_sha1"
	// FormatDjangoArgon2 is Django's Argon2PasswordHasher: "argon2"
	// followed by an Argon2i or Argon2id PHC string.
	FormatDjangoArgon2 Format = "django_argon2"
)

// Errors returned for stored hashes that cannot be verified. Each is
// returned wrapped with detail; test with errors.Is.
var (
	// ErrUnknownFormat: the hash is not in a format Verify understands,
	// including known but unsupported variants (argon2d, Argon2 version
	// 16, Argon2 with a secret key or associated data, bcrypt $2x$).
	ErrUnknownFormat = errors.New("password: unknown hash format")
	// ErrMalformedHash: the hash names a supported format but does not
	// parse.
	ErrMalformedHash = errors.New("password: malformed hash")
	// ErrParamsOutOfRange: the hash parses but its cost parameters exceed
	// the Hasher's Limits, so verifying it could tie up the server.
	ErrParamsOutOfRange = errors.New("password: hash parameters exceed limits")
)

// Sanity bounds on sizes inside stored hashes, independent of Limits.
const (
	maxEncodedLen   = 1024 // no supported hash is anywhere near this long
	minArgon2Salt   = 8    // RFC 9106 / reference implementation minimum
	maxArgon2Salt   = 256
	minArgon2Key    = 4 // reference implementation minimum
	maxArgon2Key    = 256
	maxDjangoSalt   = 256
	bcryptHashLen   = 60
	bcryptAlphabet  = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	argon2Version13 = 0x13
)

// b64 is the PHC string encoding: standard alphabet, no padding, and (as
// the reference implementation does) no stray bits in the last character.
var b64 = base64.RawStdEncoding.Strict()

// storedHash is a parsed stored hash, ready to check candidate passwords.
type storedHash interface {
	format() Format
	// memoryKiB is the memory one check needs, for the concurrency
	// limiter; 0 where it is negligible (bcrypt, PBKDF2).
	memoryKiB() uint32
	// matches derives the key for password and compares it in constant
	// time with the stored one.
	matches(password string) bool
}

// Identify reports the format of a stored hash and whether Verify could
// check it under DefaultLimits, without computing anything: it returns the
// same parse errors Verify would (ErrUnknownFormat, ErrMalformedHash,
// ErrParamsOutOfRange). Importers use it to validate hashes up front. With a
// Hasher built with other limits, use (*Hasher).Identify.
func Identify(encoded string) (Format, error) {
	return identify(encoded, DefaultLimits.resolve(DefaultParams))
}

func identify(encoded string, lim Limits) (Format, error) {
	h, err := parseHash(encoded, lim)
	if err != nil {
		return "", err
	}
	return h.format(), nil
}

// parseHash recognises and parses a stored hash and checks its cost
// parameters against lim. It never panics and does no expensive work.
func parseHash(encoded string, lim Limits) (storedHash, error) {
	var (
		h   storedHash
		err error
	)
	switch {
	case strings.HasPrefix(encoded, "$argon2"):
		h, err = parseArgon2(encoded, lim, false)
	case strings.HasPrefix(encoded, "argon2$argon2"):
		h, err = parseArgon2(encoded[len("argon2"):], lim, true)
	case strings.HasPrefix(encoded, "$2"):
		h, err = parseBcrypt(encoded, lim)
	case strings.HasPrefix(encoded, "pbkdf2_sha256$"):
		h, err = parseDjangoPBKDF2(encoded, lim, FormatDjangoPBKDF2SHA256, sha256.New)
	case strings.HasPrefix(encoded, "pbkdf2_sha1$"):
		h, err = parseDjangoPBKDF2(encoded, lim, FormatDjangoPBKDF2SHA1, sha1.New)
	default:
		return nil, ErrUnknownFormat
	}
	if err != nil {
		return nil, err
	}
	return h, nil
}

func malformed(f Format, what string) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformedHash, f, what)
}

func outOfRange(f Format, what string, got, limit uint64) error {
	return fmt.Errorf("%w: %s: %s %d exceeds %d", ErrParamsOutOfRange, f, what, got, limit)
}

// parseDecimal parses a PHC-style decimal: ASCII digits only, no sign, no
// leading zeros, at most max.
func parseDecimal(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, false
	}
	return v, true
}

// argon2Hash is a parsed Argon2 PHC string.
type argon2Hash struct {
	variant Format // FormatArgon2id or FormatArgon2i
	django  bool   // wrapped in Django's "argon2" prefix
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func (h *argon2Hash) format() Format {
	if h.django {
		return FormatDjangoArgon2
	}
	return h.variant
}

func (h *argon2Hash) memoryKiB() uint32 { return h.memory }

func (h *argon2Hash) matches(password string) bool {
	var got []byte
	if h.variant == FormatArgon2id {
		got = argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	} else {
		got = argon2.Key([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// parseArgon2 parses $argon2{id,i}$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
// as the reference implementation's encoder writes it.
func parseArgon2(s string, lim Limits, django bool) (*argon2Hash, error) {
	f := FormatArgon2id
	if django {
		f = FormatDjangoArgon2
	}
	if len(s) > maxEncodedLen {
		return nil, malformed(f, "too long")
	}
	parts := strings.Split(s, "$")
	h := &argon2Hash{django: django}
	switch parts[1] {
	case "argon2id":
		h.variant = FormatArgon2id
	case "argon2i":
		h.variant = FormatArgon2i
	case "argon2d", "argon2ds":
		return nil, fmt.Errorf("%w: %s is not supported", ErrUnknownFormat, parts[1])
	default:
		return nil, ErrUnknownFormat
	}
	if !django {
		f = h.variant
	}
	if len(parts) == 5 && strings.HasPrefix(parts[2], "m=") {
		// No v= field means version 16 (0x10), which x/crypto lacks.
		return nil, fmt.Errorf("%w: %s version 16 is not supported", ErrUnknownFormat, h.variant)
	}
	if len(parts) != 6 || parts[0] != "" {
		return nil, malformed(f, "want 5 $-separated fields")
	}
	switch parts[2] {
	case "v=19":
	case "v=16":
		return nil, fmt.Errorf("%w: %s version 16 is not supported", ErrUnknownFormat, h.variant)
	default:
		return nil, malformed(f, "bad version field")
	}

	params := strings.Split(parts[3], ",")
	if len(params) > 3 {
		// keyid= and data= feed a secret or associated data into the
		// hash; x/crypto/argon2 cannot compute those.
		return nil, fmt.Errorf("%w: %s with keyid or data parameters is not supported", ErrUnknownFormat, h.variant)
	}
	if len(params) != 3 {
		return nil, malformed(f, "want m=,t=,p= parameters")
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(params[i], name)
		if !ok {
			return nil, malformed(f, "want m=,t=,p= parameters in that order")
		}
		n, ok := parseDecimal(v, 1<<32-1)
		if !ok {
			return nil, malformed(f, "bad "+name+" value")
		}
		vals[i] = n
	}
	m, t, p := vals[0], vals[1], vals[2]
	if t < 1 || p < 1 || p > 1<<24-1 || m < 8*p {
		// The reference implementation's bounds; x/crypto would panic
		// on t or p of zero.
		return nil, malformed(f, "parameters below the Argon2 minimums")
	}
	if p > uint64(lim.MaxArgon2Threads) {
		return nil, outOfRange(f, "parallelism", p, uint64(lim.MaxArgon2Threads))
	}
	if m > uint64(lim.MaxArgon2Memory) {
		return nil, outOfRange(f, "memory KiB", m, uint64(lim.MaxArgon2Memory))
	}
	if t > uint64(lim.MaxArgon2Time) {
		return nil, outOfRange(f, "time", t, uint64(lim.MaxArgon2Time))
	}
	if m*t > lim.MaxArgon2Cost {
		return nil, outOfRange(f, "memory×time", m*t, lim.MaxArgon2Cost)
	}
	h.memory, h.time, h.threads = uint32(m), uint32(t), uint8(p)

	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil {
		return nil, malformed(f, "bad salt encoding")
	}
	if len(h.salt) < minArgon2Salt || len(h.salt) > maxArgon2Salt {
		return nil, malformed(f, "salt length out of range")
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil {
		return nil, malformed(f, "bad hash encoding")
	}
	if len(h.key) < minArgon2Key || len(h.key) > maxArgon2Key {
		return nil, malformed(f, "hash length out of range")
	}
	return h, nil
}

// encodeArgon2id writes the reference PHC encoding of an Argon2id hash.
func encodeArgon2id(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2Version13, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// bcryptHash is a validated bcrypt modular-crypt string.
type bcryptHash struct{ encoded []byte }

func (bcryptHash) format() Format    { return FormatBcrypt }
func (bcryptHash) memoryKiB() uint32 { return 0 }

// matches uses x/crypto/bcrypt, which compares in constant time. bcrypt
// keys Blowfish with at most 72 bytes of password: longer passwords are
// compared on their first 72 bytes, as every other bcrypt implementation
// does when it verifies.
func (h bcryptHash) matches(password string) bool {
	return bcrypt.CompareHashAndPassword(h.encoded, []byte(password)) == nil
}

// parseBcrypt accepts exactly $2a$, $2b$ or $2y$, a two-digit cost, and 53
// characters of bcrypt base64 (22 of salt, 31 of hash). x/crypto/bcrypt is
// lax about trailing bytes, so the shape is checked here first.
func parseBcrypt(s string, lim Limits) (bcryptHash, error) {
	if len(s) < 4 || s[3] != '$' || !strings.Contains("aby", s[2:3]) {
		return bcryptHash{}, ErrUnknownFormat // $2$, $2x$, …
	}
	if len(s) != bcryptHashLen || s[6] != '$' {
		return bcryptHash{}, malformed(FormatBcrypt, "want $2b$<cost>$<53 characters>")
	}
	cost, ok := parseDecimal(strings.TrimPrefix(s[4:6], "0"), 99)
	if !ok || cost < uint64(bcrypt.MinCost) || cost > uint64(bcrypt.MaxCost) {
		return bcryptHash{}, malformed(FormatBcrypt, "bad cost")
	}
	if cost > uint64(lim.MaxBcryptCost) {
		return bcryptHash{}, outOfRange(FormatBcrypt, "cost", cost, uint64(lim.MaxBcryptCost))
	}
	for i := 7; i < len(s); i++ {
		if strings.IndexByte(bcryptAlphabet, s[i]) < 0 {
			return bcryptHash{}, malformed(FormatBcrypt, "bad character")
		}
	}
	return bcryptHash{encoded: []byte(s)}, nil
}

// djangoHash is a parsed Django pbkdf2_<digest>$<iterations>$<salt>$<hash>.
type djangoHash struct {
	f       Format
	newHash func() hash.Hash
	iter    int
	salt    []byte
	key     []byte
}

func (h *djangoHash) format() Format  { return h.f }
func (*djangoHash) memoryKiB() uint32 { return 0 }

func (h *djangoHash) matches(password string) bool {
	got, err := pbkdf2.Key(h.newHash, password, h.salt, h.iter, len(h.key))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

func parseDjangoPBKDF2(s string, lim Limits, f Format, newHash func() hash.Hash) (*djangoHash, error) {
	if len(s) > maxEncodedLen {
		return nil, malformed(f, "too long")
	}
	parts := strings.Split(s, "$")
	if len(parts) != 4 {
		return nil, malformed(f, "want 4 $-separated fields")
	}
	iter, ok := parseDecimal(parts[1], 1<<62)
	if !ok || iter < 1 {
		return nil, malformed(f, "bad iteration count")
	}
	if iter > uint64(lim.MaxPBKDF2Iterations) {
		return nil, outOfRange(f, "iterations", iter, uint64(lim.MaxPBKDF2Iterations))
	}
	// Django uses the salt string's UTF-8 bytes as the salt.
	if parts[2] == "" || len(parts[2]) > maxDjangoSalt {
		return nil, malformed(f, "salt length out of range")
	}
	key, err := base64.StdEncoding.Strict().DecodeString(parts[3])
	if err != nil {
		return nil, malformed(f, "bad hash encoding")
	}
	// Django derives a key as long as the digest.
	if len(key) != newHash().Size() {
		return nil, malformed(f, "hash length does not match the digest")
	}
	return &djangoHash{f: f, newHash: newHash, iter: int(iter), salt: []byte(parts[2]), key: key}, nil
}

// Unusable reports whether a Verify error means that the stored hash can
// never match — there is no password, or the hash is corrupt or hostile —
// as opposed to a failure such as a cancelled context. Callers treat it
// as a wrong password.
func Unusable(err error) bool {
	return errors.Is(err, ErrUnknownFormat) || errors.Is(err, ErrMalformedHash) || errors.Is(err, ErrParamsOutOfRange)
}
