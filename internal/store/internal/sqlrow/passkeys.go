package sqlrow

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// MaxCredentialIDLen is the longest credential ID WebAuthn allows (and
// the passkeys table accepts), in bytes.
const MaxCredentialIDLen = 1023

// AAGUIDLen is the length of an authenticator's AAGUID.
const AAGUIDLen = 16

// PasskeyColumns is the column list ScanPasskey expects, in order; the
// values PasskeyValues returns are in the same order.
const PasskeyColumns = "id, user_id, credential_id, public_key, attestation_type, aaguid, sign_count, transports, " +
	"backup_eligible, backup_state, user_verified, name, created_at, last_used_at, cloned_at"

// PasskeyColumnCount is how many columns PasskeyColumns lists.
const PasskeyColumnCount = 15

// ScanPasskey scans one row selected with PasskeyColumns. td scans a NOT
// NULL time column, ntd a nullable one, ld a list column. An empty list of
// transports is read back as nil.
func ScanPasskey(s Scanner, td, ntd TimeDest, ld ListDest) (store.Passkey, error) {
	var (
		p     store.Passkey
		count int64
	)
	err := s.Scan(&p.ID, &p.UserID, &p.CredentialID, &p.PublicKey, &p.AttestationType, &p.AAGUID, &count,
		ld(&p.Transports), &p.BackupEligible, &p.BackupState, &p.UserVerified, &p.Name,
		td(&p.CreatedAt), ntd(&p.LastUsedAt), ntd(&p.ClonedAt))
	if err != nil {
		return store.Passkey{}, err
	}
	if count < 0 || count > math.MaxUint32 {
		return store.Passkey{}, fmt.Errorf("passkey %s: sign count %d out of range", p.ID, count)
	}
	p.SignCount = uint32(count)
	p.Transports = nilIfEmpty(p.Transports)
	utc(&p.CreatedAt, &p.LastUsedAt, &p.ClonedAt)
	return p, nil
}

// PreparePasskey validates p for CreatePasskey: a UUIDv7 replaces an empty
// ID, CreatedAt becomes now when zero, an empty AAGUID becomes 16 zero
// bytes (the authenticator did not say), nil Transports an empty list;
// times are in UTC to the microsecond. A UserID that is not a UUID is
// store.ErrNotFound.
func PreparePasskey(p store.Passkey, now time.Time) (store.Passkey, error) {
	id, err := newID(p.ID)
	if err != nil {
		return p, fmt.Errorf("passkey: %w", err)
	}
	p.ID = id
	user, ok := ParseID(p.UserID)
	if !ok {
		return p, fmt.Errorf("passkey: user %q: %w", p.UserID, store.ErrNotFound)
	}
	p.UserID = user
	switch {
	case len(p.CredentialID) == 0:
		return p, errors.New("passkey: CredentialID is required")
	case len(p.CredentialID) > MaxCredentialIDLen:
		return p, fmt.Errorf("passkey: CredentialID is %d bytes, longer than %d", len(p.CredentialID), MaxCredentialIDLen)
	case len(p.PublicKey) == 0:
		return p, errors.New("passkey: PublicKey is required")
	case len(p.AAGUID) != 0 && len(p.AAGUID) != AAGUIDLen:
		return p, fmt.Errorf("passkey: AAGUID is %d bytes, want %d", len(p.AAGUID), AAGUIDLen)
	}
	if len(p.AAGUID) == 0 {
		p.AAGUID = make([]byte, AAGUIDLen)
	}
	for name, v := range map[string]string{"AttestationType": p.AttestationType, "Name": p.Name} {
		if !validText(v) {
			return p, fmt.Errorf("passkey: %s is not valid UTF-8 text without NUL", name)
		}
	}
	if p.Transports, err = prepareList("passkey: Transports", p.Transports); err != nil {
		return p, err
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	p.CreatedAt = Micro(p.CreatedAt)
	p.LastUsedAt, p.ClonedAt = microOrZero(p.LastUsedAt), microOrZero(p.ClonedAt)
	return p, nil
}

// PasskeyName validates a name for RenamePasskey.
func PasskeyName(name string) error {
	if !validText(name) {
		return errors.New("passkey: Name is not valid UTF-8 text without NUL")
	}
	return nil
}

// PasskeyValues returns the values of PasskeyColumns for a passkey
// PreparePasskey returned, in order, with times converted by tv and lists
// by lv.
func PasskeyValues(p store.Passkey, tv TimeValue, lv ListValue) []any {
	return []any{
		p.ID, p.UserID, p.CredentialID, p.PublicKey, p.AttestationType, p.AAGUID, int64(p.SignCount), lv(p.Transports),
		p.BackupEligible, p.BackupState, p.UserVerified, p.Name, tv(p.CreatedAt), tv(p.LastUsedAt), tv(p.ClonedAt),
	}
}
