package store

import (
	"context"
	"time"
)

// API is a registered resource server (RFC 8707 resource indicators): an
// access token asked for with resource=Identifier carries it as aud, so
// only that API accepts it.
type API struct {
	ID         string // "api_…", chosen by the caller
	Identifier string // absolute URI without fragment; unique
	Name       string
	Scopes     []string // the scopes the API defines
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// APIStore keeps the registered APIs.
type APIStore interface {
	// CreateAPI stores a; ErrConflict on a duplicate ID or Identifier.
	CreateAPI(ctx context.Context, a API) (API, error)
	// GetAPI returns the API with this ID, or ErrNotFound.
	GetAPI(ctx context.Context, id string) (API, error)
	// GetAPIByIdentifier returns the API with this identifier (compared
	// exactly), or ErrNotFound.
	GetAPIByIdentifier(ctx context.Context, identifier string) (API, error)
	// ListAPIs returns every API, oldest first.
	ListAPIs(ctx context.Context) ([]API, error)
	// UpdateAPI replaces the Name and Scopes of the API with a.ID and sets
	// its UpdatedAt (now when zero); ErrNotFound if absent. The
	// Identifier never changes: tokens already carry it.
	UpdateAPI(ctx context.Context, a API) (API, error)
	// DeleteAPI removes the API; ErrNotFound if absent.
	DeleteAPI(ctx context.Context, id string) error
}
