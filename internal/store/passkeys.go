package store

import (
	"context"
	"time"
)

// Passkey is a WebAuthn credential of a user: a passwordless sign-in and
// a second factor. Its public key is public; nothing in it is secret.
//
// The user's WebAuthn user handle is the 16 bytes of the user's UUID, so
// it needs no column of its own.
type Passkey struct {
	ID     string // UUIDv7 when created with ""
	UserID string
	// CredentialID is the authenticator's credential ID (at most 1023
	// bytes); unique across every user.
	CredentialID []byte
	PublicKey    []byte // COSE_Key
	// AttestationType is the attestation statement's type ("none",
	// "packed" …) as the registration verified it.
	AttestationType string
	AAGUID          []byte // 16 bytes; all zero when the authenticator did not say
	SignCount       uint32
	Transports      []string // "usb", "nfc", "ble", "internal", "hybrid" …; nil when unknown
	// BackupEligible: the credential may be synced (a passkey in a
	// password manager or platform keychain); BackupState: it is backed up
	// now. Backup eligibility never changes after registration.
	BackupEligible bool
	BackupState    bool
	// UserVerified: the registration verified the user (PIN, biometrics).
	UserVerified bool
	Name         string
	CreatedAt    time.Time
	LastUsedAt   time.Time // zero until the first sign-in with it
	// ClonedAt is set when an assertion's sign count went backwards: the
	// credential may have been cloned, and is refused from then on.
	ClonedAt time.Time
}

// PasskeyStore keeps users' passkeys. Every method works inside InTx.
// Times are kept to the microsecond in UTC. An ID that is not a UUID finds
// nothing. A user's passkeys go with the user's row.
type PasskeyStore interface {
	// CreatePasskey stores p (CreatedAt now when zero). ErrNotFound for a
	// user that does not exist; ErrConflict on a taken ID or a
	// CredentialID registered already (to this user or another).
	CreatePasskey(ctx context.Context, p Passkey) (Passkey, error)
	// GetPasskey returns the user's passkey with this ID, or ErrNotFound
	// (also when it is another user's).
	GetPasskey(ctx context.Context, userID, id string) (Passkey, error)
	// GetPasskeyByCredentialID returns the passkey with this credential
	// ID, whoever holds it, or ErrNotFound.
	GetPasskeyByCredentialID(ctx context.Context, credentialID []byte) (Passkey, error)
	// ListPasskeys returns the user's passkeys, oldest first (ties by
	// ID), cloned ones included.
	ListPasskeys(ctx context.Context, userID string) ([]Passkey, error)
	// RenamePasskey sets the name and returns the passkey; ErrNotFound if
	// the user has no passkey with this ID.
	RenamePasskey(ctx context.Context, userID, id, name string) (Passkey, error)
	// UsePasskey records a verified assertion: SignCount becomes count,
	// BackupState backupState and LastUsedAt at, only if the stored
	// SignCount is still prev and the passkey is not flagged cloned (a
	// compare-and-set: of two assertions counted from the same value, one
	// is recorded). It reports whether it recorded this one; ErrNotFound
	// if absent.
	UsePasskey(ctx context.Context, id string, prev, count uint32, backupState bool, at time.Time) (bool, error)
	// FlagPasskeyCloned sets ClonedAt unless it is set already and returns
	// the passkey as it is now with whether this call set it; ErrNotFound
	// if absent.
	FlagPasskeyCloned(ctx context.Context, id string, at time.Time) (Passkey, bool, error)
	// DeletePasskey deletes the user's passkey; ErrNotFound if the user
	// has no passkey with this ID.
	DeletePasskey(ctx context.Context, userID, id string) error
}
