package store

import (
	"context"
	"time"
)

// User kinds.
const (
	// UserKindHuman is a person's account (the empty Kind is stored as it).
	UserKindHuman = "user"
	// UserKindService is a service account: a non-human principal that
	// holds roles and API keys and never signs in.
	UserKindService = "service_account"
)

// API key kinds.
const (
	APIKeyPersonal = "personal" // a user's own key, limited to Permissions
	APIKeyService  = "service"  // a service account's key, with its roles
)

// ServiceAccount is a non-human principal. It is a row of the users table
// (Kind UserKindService, no password, the synthetic address
// ServiceAccountEmail(ID)) so that it can be granted roles like anyone,
// plus what only service accounts have.
type ServiceAccount struct {
	ID   string // the user ID; a UUIDv7 when created with ""
	Name string
	// OrganizationID is the organisation that owns it, "" for a global
	// one. It never changes.
	OrganizationID string
	Description    string
	CreatedAt      time.Time
	CreatedBy      string // who created it (not a reference)
}

// ServiceAccountEmail is the synthetic, undeliverable address of a
// service account's user row (RFC 2606 .invalid).
func ServiceAccountEmail(id string) string { return id + "@service-accounts.invalid" }

// APIKey is a long-lived credential. Only a keyed hash of the secret is
// stored; Prefix keeps its first characters for display.
type APIKey struct {
	ID      string // UUIDv7 when created with ""
	OwnerID string // the user or service account the key acts as
	Kind    string // APIKeyPersonal or APIKeyService
	Name    string
	Prefix  string // e.g. "gh_pk_3Fz9Qa"
	Hash    []byte // 32 bytes, unique among keys
	// Permissions are what a personal key may use (a subset of what its
	// owner holds, re-checked at every use); nil for a service key, whose
	// owner's roles decide. Kept in the caller's order.
	Permissions   []string
	AllowedCIDRs  []string // nil: any address
	RateLimitTier string   // "" for the default
	ExpiresAt     time.Time
	RevokedAt     time.Time
	RevokedReason string
	// RotatedFrom is the ID of the key this one replaced ("" for none).
	RotatedFrom string
	CreatedAt   time.Time
	CreatedBy   string // who created it (not a reference)
	LastUsedAt  time.Time
	LastUsedIP  string
}

// APIKeyUse is what a node counted of one key since its last flush.
type APIKeyUse struct {
	KeyID    string
	At       time.Time // the last use counted; its UTC day is the usage row's
	IP       string    // the address of that use
	Requests int64
	Refusals int64 // requests refused by the key's rate limit
}

// APIKeyUsage is one key's use on one UTC day.
type APIKeyUsage struct {
	KeyID    string
	Day      time.Time // midnight UTC
	Requests int64
	Refusals int64
	LastIP   string
	LastAt   time.Time
}

// APIKeyStore keeps service accounts, API keys and their usage. Every
// method works inside InTx. Times are kept to the microsecond in UTC. An
// ID that is not a UUID finds nothing.
type APIKeyStore interface {
	// CreateServiceAccount stores the service account and its user row
	// (Kind UserKindService, Email and EmailNormalized
	// ServiceAccountEmail(ID), active, no password, Name as the user's
	// name). ErrNotFound for an organisation that does not exist.
	CreateServiceAccount(ctx context.Context, sa ServiceAccount) (ServiceAccount, error)
	// GetServiceAccount returns it, or ErrNotFound (also once its user
	// row is soft-deleted).
	GetServiceAccount(ctx context.Context, id string) (ServiceAccount, error)
	// ListServiceAccounts returns the service accounts of organisation
	// orgID ("" lists every one), oldest first, without deleted ones.
	ListServiceAccounts(ctx context.Context, orgID string) ([]ServiceAccount, error)

	// CreateAPIKey stores k (CreatedAt now when zero). ErrNotFound for an
	// owner that does not exist; ErrConflict on a taken ID or Hash.
	CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error)
	// GetAPIKey returns the key with this ID, or ErrNotFound.
	GetAPIKey(ctx context.Context, id string) (APIKey, error)
	// GetAPIKeyByHash returns the key whose Hash is one of hashes (one
	// per encryption key), revoked and expired ones included, in one
	// indexed lookup; ErrNotFound if none.
	GetAPIKeyByHash(ctx context.Context, hashes [][]byte) (APIKey, error)
	// ListAPIKeys returns every key of the owner, newest first (ties by
	// ID), revoked and expired ones included.
	ListAPIKeys(ctx context.Context, ownerID string) ([]APIKey, error)
	// RevokeAPIKey sets RevokedAt and RevokedReason unless the key is
	// already revoked, and returns the key as it is now with whether this
	// call revoked it; ErrNotFound if absent.
	RevokeAPIKey(ctx context.Context, id string, at time.Time, reason string) (APIKey, bool, error)
	// ShortenAPIKey sets ExpiresAt to at when the key does not expire
	// before it (rotation: the old key lives until the overlap ends) and
	// returns the key as it is now; ErrNotFound if absent.
	ShortenAPIKey(ctx context.Context, id string, at time.Time) (APIKey, error)
	// RecordAPIKeyUse adds each use to its key's usage row of that UTC
	// day (created as needed) and moves the key's LastUsedAt and
	// LastUsedIP forward (never back). Unknown keys are skipped.
	RecordAPIKeyUse(ctx context.Context, uses []APIKeyUse) error
	// ListAPIKeyUsage returns the key's usage rows with Day in [from, to],
	// oldest first.
	ListAPIKeyUsage(ctx context.Context, keyID string, from, to time.Time) ([]APIKeyUsage, error)
}
