// Package otp holds the cryptographic primitives of multi-factor
// authentication: TOTP secrets, codes and enrolment URIs (RFC 6238 over
// RFC 4226 HOTP), backup codes, random numeric codes for email and SMS, and
// the keyed hashing under which codes are stored.
//
// The package is pure: it keeps no state and touches no database. Two duties
// therefore fall on the caller:
//
//   - Replay protection. Validate reports which time step a TOTP code
//     matched. The caller must record that step and accept a step only if it
//     is later than the last one accepted for the device, in one atomic
//     statement (store.MFAStore.AcceptTOTPStep); otherwise a code seen over
//     a shoulder or in a proxy log can be used again within its window.
//   - Attempt limits. A 6-digit code has 10^6 values; without a cap on
//     failed attempts per code and per account, it can be guessed online.
//
// Secrets are handled as base32 text (what authenticator apps exchange) and
// should be stored sealed with the encryption keyring, never in plaintext.
// Codes are stored as Hasher hashes, never in plaintext and never as an
// unkeyed digest.
//
// Defaults follow what every authenticator app supports: HMAC-SHA-1, 6
// digits, 30-second steps. SHA-256, SHA-512 and 8 digits are available
// through CodeWith for tests and tools; enrolment URIs always advertise the
// defaults, because several popular apps ignore the parameters and would
// silently compute wrong codes.
package otp
