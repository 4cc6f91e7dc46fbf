package store

import (
	"context"
	"time"
)

// MFA device types.
const (
	MFATOTP  = "totp"
	MFASMS   = "sms"
	MFAEmail = "email"
)

// SecondFactors is what a sign-in reads to decide on a second factor.
type SecondFactors struct {
	Organizations []Organization // the user's, with their policies
	Devices       []MFADevice    // oldest first, confirmed or not
	BackupCodes   int            // unused backup codes
	Passkeys      []Passkey      // as ListPasskeys returns them (cloned ones included)
}

// MFADevice is a second factor of a user.
type MFADevice struct {
	ID     string // UUIDv7, generated when empty
	UserID string
	Type   string // MFATOTP, MFASMS or MFAEmail
	Name   string
	// Secret is the TOTP secret sealed with the keyring (never plaintext).
	Secret      string
	PhoneNumber string    // E.164, for SMS
	Email       string    // for email codes
	ConfirmedAt time.Time // zero while enrolment is pending
	IsDefault   bool
	// LastStep is the last TOTP time step accepted (0: none), so that each
	// step is accepted once.
	LastStep   int64
	LastUsedAt time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// MFACode is a one-time code sent by email or SMS (or held for enrolment
// confirmation). Only a keyed hash of the code is stored.
type MFACode struct {
	ID         string // UUIDv7, generated when empty
	UserID     string
	DeviceID   string // the device it was sent for; empty when none
	Channel    string // MFASMS or MFAEmail
	CodeHash   string
	Attempts   int
	ExpiresAt  time.Time
	ConsumedAt time.Time
	CreatedAt  time.Time
}

// MFAStore keeps second factors, backup codes and sent codes.
type MFAStore interface {
	// CreateMFADevice stores d (CreatedAt/UpdatedAt set to now).
	CreateMFADevice(ctx context.Context, d MFADevice) (MFADevice, error)
	// GetMFADevice returns the user's device, or ErrNotFound (also when it
	// belongs to another user).
	GetMFADevice(ctx context.Context, userID, id string) (MFADevice, error)
	// ListMFADevices returns the user's devices, oldest first.
	ListMFADevices(ctx context.Context, userID string) ([]MFADevice, error)
	// UpdateMFADevice writes Name, ConfirmedAt, IsDefault, LastUsedAt and
	// PhoneNumber/Email of d; setting IsDefault clears it on the user's
	// other devices in the same step. ErrNotFound if absent.
	UpdateMFADevice(ctx context.Context, d MFADevice) (MFADevice, error)
	// DeleteMFADevice removes the user's device; ErrNotFound if absent.
	DeleteMFADevice(ctx context.Context, userID, id string) error
	// AcceptTOTPStep records step as used on the device if it is later than
	// the last accepted one, in one atomic statement, and reports whether it
	// did: of parallel calls with the same step exactly one gets true.
	AcceptTOTPStep(ctx context.Context, userID, id string, step int64, now time.Time) (bool, error)

	// ReplaceBackupCodes voids the user's backup codes and stores the new
	// set (hashes) in one step.
	ReplaceBackupCodes(ctx context.Context, userID string, hashes []string, now time.Time) error
	// UseBackupCode marks the user's unused code with this hash used, in one
	// atomic statement, and reports whether it did.
	UseBackupCode(ctx context.Context, userID, hash string, now time.Time) (bool, error)
	// CountBackupCodes returns how many of the user's backup codes are
	// unused (0 when none were generated).
	CountBackupCodes(ctx context.Context, userID string) (int, error)
	// SecondFactors returns, in one read, what deciding on a user's second
	// factor at sign-in needs: what UserOrganizations, ListMFADevices,
	// CountBackupCodes and ListPasskeys would return (one round trip on
	// PostgreSQL).
	SecondFactors(ctx context.Context, userID string) (SecondFactors, error)

	// CreateMFACode stores c, deleting the user's earlier unconsumed codes
	// of the same channel and device (a resend supersedes them).
	CreateMFACode(ctx context.Context, c MFACode) (MFACode, error)
	// AttemptMFACode counts one attempt on the user's latest unconsumed,
	// unexpired code for channel and device — if it has had fewer than
	// maxAttempts — and returns it with Attempts incremented, in one atomic
	// statement; ErrNotFound when there is none or it is out of attempts.
	// The caller compares the hash, then consumes with ConsumeMFACode.
	AttemptMFACode(ctx context.Context, userID, channel, deviceID string, maxAttempts int, now time.Time) (MFACode, error)
	// ConsumeMFACode marks the code consumed if it is not yet, and reports
	// whether this call did.
	ConsumeMFACode(ctx context.Context, id string, now time.Time) (bool, error)
}

// Organization roles.
const (
	OrgOwner  = "owner"
	OrgAdmin  = "admin"
	OrgMember = "member"
)

// Organization is a group of users with a policy.
type Organization struct {
	ID        string // UUIDv7, generated when empty
	Name      string
	Slug      string // unique
	Policy    map[string]any
	CreatedAt time.Time
	UpdatedAt time.Time
}

// OrgMembership is a user's role in an organisation.
type OrgMembership struct {
	OrgID     string
	UserID    string
	Role      string // OrgOwner, OrgAdmin or OrgMember
	CreatedAt time.Time
}

// OrgStore keeps organisations and memberships.
type OrgStore interface {
	// CreateOrganization stores o; ErrConflict on a taken slug.
	CreateOrganization(ctx context.Context, o Organization) (Organization, error)
	// GetOrganization returns the organisation, or ErrNotFound.
	GetOrganization(ctx context.Context, id string) (Organization, error)
	// ListOrganizations returns every organisation, by name.
	ListOrganizations(ctx context.Context) ([]Organization, error)
	// UpdateOrganization writes Name, Slug and Policy; ErrNotFound,
	// ErrConflict on a taken slug.
	UpdateOrganization(ctx context.Context, o Organization) (Organization, error)
	// DeleteOrganization removes it with its memberships.
	DeleteOrganization(ctx context.Context, id string) error
	// SetMembership adds the user or changes their role.
	SetMembership(ctx context.Context, m OrgMembership) error
	// RemoveMembership removes the user; ErrNotFound if not a member.
	RemoveMembership(ctx context.Context, orgID, userID string) error
	// ListMembers returns the organisation's members.
	ListMembers(ctx context.Context, orgID string) ([]OrgMembership, error)
	// UserOrganizations returns the organisations the user belongs to,
	// with their policies.
	UserOrganizations(ctx context.Context, userID string) ([]Organization, error)
}
