package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func scanIdentity(row sqlrow.Scanner) (store.Identity, error) {
	return sqlrow.ScanIdentity(row, timeDest)
}

// insertIdentity skips the row on a unique clash (provider and subject, or
// ID) instead of failing, so that a conflict inside InTx does not abort the
// caller's transaction: it can still look up who holds the identity.
var insertIdentity = `INSERT INTO identities (` + sqlrow.IdentityColumns + `)
	VALUES (` + placeholders(8) + `) ON CONFLICT DO NOTHING RETURNING ` + sqlrow.IdentityColumns

// CreateIdentity implements store.IdentityStore with one INSERT: of
// concurrent callers linking the same provider and subject, the unique
// index lets exactly one through and the others, having waited for it to
// commit, insert nothing (ErrConflict). A user that does not exist is
// ErrNotFound.
func (s *Store) CreateIdentity(ctx context.Context, i store.Identity) (store.Identity, error) {
	i, err := sqlrow.PrepareIdentity(i, s.now())
	if err != nil {
		return store.Identity{}, fmt.Errorf("postgres: create identity: %w", err)
	}
	created, err := scanIdentity(s.q.QueryRow(ctx, insertIdentity, sqlrow.IdentityValues(i, timeValue)...))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Identity{}, fmt.Errorf("postgres: create identity %s: subject of %s linked already: %w", i.ID, i.Provider, store.ErrConflict)
	}
	if err != nil {
		return store.Identity{}, fmt.Errorf("postgres: create identity: %w", mapRefErr(err))
	}
	return created, nil
}

// GetIdentity implements store.IdentityStore, reading the primary (or the
// transaction): a login right after linking must find the link.
func (s *Store) GetIdentity(ctx context.Context, provider, subject string) (store.Identity, error) {
	if !sqlrow.Storable(provider) || !sqlrow.Storable(subject) {
		return store.Identity{}, fmt.Errorf("postgres: get identity: %w", store.ErrNotFound)
	}
	i, err := scanIdentity(s.q.QueryRow(ctx, "SELECT "+sqlrow.IdentityColumns+
		" FROM identities WHERE provider = $1 AND subject = $2", provider, subject))
	if err != nil {
		return store.Identity{}, fmt.Errorf("postgres: get identity of %s: %w", provider, mapErr(err))
	}
	return i, nil
}

// ListIdentities implements store.IdentityStore: oldest link (LinkedAt)
// first, ties broken by ID, from the primary.
func (s *Store) ListIdentities(ctx context.Context, userID string) ([]store.Identity, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID, so none has identities
	}
	rows, err := s.q.Query(ctx, "SELECT "+sqlrow.IdentityColumns+
		" FROM identities WHERE user_id = $1 ORDER BY linked_at, id", user)
	if err != nil {
		return nil, fmt.Errorf("postgres: list identities: %w", mapErr(err))
	}
	defer rows.Close()
	var list []store.Identity
	for rows.Next() {
		i, err := scanIdentity(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list identities: %w", err)
		}
		list = append(list, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list identities: %w", mapErr(err))
	}
	return list, nil
}

// DeleteIdentity implements store.IdentityStore. Only the user's own
// identity is deleted; another user's is ErrNotFound.
func (s *Store) DeleteIdentity(ctx context.Context, userID, id string) error {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return fmt.Errorf("postgres: delete identity %q: %w", id, store.ErrNotFound)
	}
	tag, err := s.q.Exec(ctx, "DELETE FROM identities WHERE id = $1 AND user_id = $2", canon, user)
	if err != nil {
		return fmt.Errorf("postgres: delete identity %s: %w", canon, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete identity %s: %w", canon, store.ErrNotFound)
	}
	return nil
}
