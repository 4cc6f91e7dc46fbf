// Package password hashes and verifies passwords and decides which new
// passwords are acceptable.
//
// # Hashing
//
// New hashes are Argon2id (RFC 9106) in the reference implementation's PHC
// string encoding, $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> with
// unpadded standard base64, so any Argon2 library can verify them and
// Gatehouse can verify theirs. The default parameters are OWASP's first
// recommendation (19 MiB, 2 passes, 1 lane).
//
// Verify also accepts what imports bring: Argon2i, bcrypt ($2a$, $2b$,
// $2y$), and Django's pbkdf2_sha256, pbkdf2_sha1 and argon2 hashes. Every
// one of those, and Argon2id with parameters other than the Hasher's,
// reports needsRehash, so the caller replaces it with a current hash at the
// user's next login. Argon2d, Argon2 version 16 and Argon2 with a secret or
// associated data are refused as unknown: x/crypto/argon2 cannot compute
// them. bcrypt uses only the first 72 bytes of a password; that is
// documented rather than worked around (pre-hashing would make the result
// incompatible with every other bcrypt), and since Gatehouse never creates
// bcrypt hashes it only matters for imported ones.
//
// Stored hashes are untrusted input. Parsing never panics, checks every
// field, and refuses cost parameters beyond Limits (memory, passes, lanes
// and memory × passes for Argon2, cost for bcrypt, iterations for PBKDF2)
// before computing anything, so a hostile import cannot make one login
// take minutes or gigabytes.
//
// Passwords are NFKC-normalized before Argon2id hashing, as NIST SP 800-63B
// recommends, so that the same password typed on different keyboards or
// input methods (full-width forms, ligatures, composed or decomposed
// accents) verifies. Hashes from other systems were made from the password
// as typed, so those are checked against it first and its NFKC form
// second.
//
// # Bounded concurrency
//
// Each Argon2 computation allocates its whole memory cost, so a burst of
// logins could allocate without bound. A Hasher runs at most maxConcurrent
// computations (of any format) at once, using a buffered channel as a
// semaphore whose slots are each worth Params.Memory; a computation waits
// for a slot, or returns ctx.Err() if its request ends first. A stored
// hash needing more memory than one slot takes as many slots as it needs,
// up to all of them, so MemoryBound holds for imported hashes as well.
// InFlight and Waiting expose the limiter to metrics.
//
// DummyVerify does the work of a real verification, for logins that name
// no known user, so that their timing does not reveal which accounts exist.
//
// # Policy
//
// Policy follows NIST SP 800-63B: a minimum and a generous maximum length
// counted in code points after NFKC, composition rules available but off
// by default, a zxcvbn strength estimate that knows the user's email and
// name, refusal of passwords containing the email or name, and an optional
// check against breached passwords. Check reports every failed rule, by
// stable rule names the API returns.
//
// Breached passwords come from a local Have I Been Pwned download
// (BreachFile, searched in place by binary search, so a file of tens of GB
// needs no memory), from the Pwned Passwords range API (HIBPClient, which
// sends only a 5-digit hash prefix), or both (MultiChecker). A checker
// failure does not block a password change: Check returns it separately
// for the caller to log.
package password
