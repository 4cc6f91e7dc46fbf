package store

import (
	"context"
	"time"
)

// Identity is an external account (Google, GitHub, …) linked to a user.
type Identity struct {
	ID        string // UUIDv7, generated when empty
	UserID    string
	Provider  string // the configured provider ID, e.g. "google"
	Subject   string // the provider's stable user ID
	Email     string // the provider's email at link time (may be empty)
	LinkedAt  time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// IdentityStore keeps linked external identities (table identities).
type IdentityStore interface {
	// CreateIdentity links i; ErrConflict when (Provider, Subject) is linked
	// already (to anyone), ErrNotFound when the user does not exist.
	CreateIdentity(ctx context.Context, i Identity) (Identity, error)
	// GetIdentity returns the identity with this provider and subject, or
	// ErrNotFound.
	GetIdentity(ctx context.Context, provider, subject string) (Identity, error)
	// ListIdentities returns the user's identities, oldest first.
	ListIdentities(ctx context.Context, userID string) ([]Identity, error)
	// DeleteIdentity unlinks the user's identity; ErrNotFound if absent (or
	// another user's).
	DeleteIdentity(ctx context.Context, userID, id string) error
}
