package sqldb

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func (t *Tables) scanIdentity(r sqlrow.Scanner) (store.Identity, error) {
	return sqlrow.ScanIdentity(r, t.d.TimeDest)
}

// insertIdentity skips the row on a unique clash (provider and subject, or
// ID) instead of failing, so that a conflict inside InTx does not abort the
// caller's PostgreSQL transaction: it can still look up who holds the
// identity.
const insertIdentity = `INSERT INTO identities (` + sqlrow.IdentityColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING ` + sqlrow.IdentityColumns

// CreateIdentity implements store.IdentityStore with one INSERT: of
// concurrent callers linking the same provider and subject, the unique
// index (on SQLite, the write lock) lets exactly one through and the
// others insert nothing (ErrConflict). A user that does not exist is
// ErrNotFound.
func (t *Tables) CreateIdentity(ctx context.Context, i store.Identity) (store.Identity, error) {
	i, err := sqlrow.PrepareIdentity(i, t.now())
	if err != nil {
		return store.Identity{}, t.errorf("create identity: %w", err)
	}
	created, err := row(ctx, t, Write, t.scanIdentity, insertIdentity, sqlrow.IdentityValues(i, t.d.TimeValue)...)
	if err != nil && notFound(t.d.MapErr(err)) { // no row: the insert was skipped
		return store.Identity{}, t.errorf("create identity %s: subject of %s linked already: %w", i.ID, i.Provider, store.ErrConflict)
	}
	if err != nil {
		return store.Identity{}, t.errorf("create identity: %w", t.d.MapRefErr(err))
	}
	return created, nil
}

// GetIdentity implements store.IdentityStore, reading the primary (or the
// transaction): a login right after linking must find the link.
func (t *Tables) GetIdentity(ctx context.Context, provider, subject string) (store.Identity, error) {
	if !sqlrow.Storable(provider) || !sqlrow.Storable(subject) {
		return store.Identity{}, t.errorf("get identity: %w", store.ErrNotFound)
	}
	i, err := row(ctx, t, Primary, t.scanIdentity, "SELECT "+sqlrow.IdentityColumns+
		" FROM identities WHERE provider = $1 AND subject = $2", provider, subject)
	if err != nil {
		return store.Identity{}, t.errorf("get identity of %s: %w", provider, t.d.MapErr(err))
	}
	return i, nil
}

// ListIdentities implements store.IdentityStore: oldest link (LinkedAt)
// first, ties broken by ID, from the primary.
func (t *Tables) ListIdentities(ctx context.Context, userID string) ([]store.Identity, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID, so none has identities
	}
	list, err := rows(ctx, t, Primary, t.scanIdentity, "SELECT "+sqlrow.IdentityColumns+
		" FROM identities WHERE user_id = $1 ORDER BY linked_at, id", user)
	if err != nil {
		return nil, t.errorf("list identities: %w", err)
	}
	return list, nil
}

// DeleteIdentity implements store.IdentityStore. Only the user's own
// identity is deleted; another user's is ErrNotFound.
func (t *Tables) DeleteIdentity(ctx context.Context, userID, id string) error {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return t.errorf("delete identity %q: %w", id, store.ErrNotFound)
	}
	return t.deleteOne(ctx, "delete identity "+canon, "DELETE FROM identities WHERE id = $1 AND user_id = $2", canon, user)
}
