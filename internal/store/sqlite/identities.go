package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func scanIdentity(row sqlrow.Scanner) (store.Identity, error) {
	return sqlrow.ScanIdentity(row, timeDest)
}

// insertIdentity skips the row on a unique clash (provider and subject, or
// ID), which CreateIdentity reports as ErrConflict.
var insertIdentity = `INSERT INTO identities (` + sqlrow.IdentityColumns + `)
	VALUES (` + strings.Repeat("?, ", 7) + `?) ON CONFLICT DO NOTHING RETURNING ` + sqlrow.IdentityColumns

// CreateIdentity implements store.IdentityStore with one INSERT under the
// database's write lock: of concurrent callers linking the same provider
// and subject, exactly one inserts and the others find it taken
// (ErrConflict). A user that does not exist is ErrNotFound.
func (s *Store) CreateIdentity(ctx context.Context, i store.Identity) (store.Identity, error) {
	i, err := sqlrow.PrepareIdentity(i, s.now())
	if err != nil {
		return store.Identity{}, fmt.Errorf("sqlite: create identity: %w", err)
	}
	var created store.Identity
	err = s.write(ctx, func(q querier) error {
		created, err = scanIdentity(q.QueryRowContext(ctx, insertIdentity, sqlrow.IdentityValues(i, timeValue)...))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Identity{}, fmt.Errorf("sqlite: create identity %s: subject of %s linked already: %w", i.ID, i.Provider, store.ErrConflict)
	}
	if err != nil {
		return store.Identity{}, fmt.Errorf("sqlite: create identity: %w", mapRefErr(err))
	}
	return created, nil
}

// GetIdentity implements store.IdentityStore. The reader pool sees every
// committed write (WAL), so a login right after linking finds the link.
func (s *Store) GetIdentity(ctx context.Context, provider, subject string) (store.Identity, error) {
	if !sqlrow.Storable(provider) || !sqlrow.Storable(subject) {
		return store.Identity{}, fmt.Errorf("sqlite: get identity: %w", store.ErrNotFound)
	}
	i, err := scanIdentity(s.read().QueryRowContext(ctx, "SELECT "+sqlrow.IdentityColumns+
		" FROM identities WHERE provider = ? AND subject = ?", provider, subject))
	if err != nil {
		return store.Identity{}, fmt.Errorf("sqlite: get identity of %s: %w", provider, mapErr(err))
	}
	return i, nil
}

// ListIdentities implements store.IdentityStore: oldest link (LinkedAt)
// first, ties broken by ID.
func (s *Store) ListIdentities(ctx context.Context, userID string) ([]store.Identity, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID, so none has identities
	}
	rows, err := s.read().QueryContext(ctx, "SELECT "+sqlrow.IdentityColumns+
		" FROM identities WHERE user_id = ? ORDER BY linked_at, id", user)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list identities: %w", mapErr(err))
	}
	defer rows.Close()
	var list []store.Identity
	for rows.Next() {
		i, err := scanIdentity(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list identities: %w", err)
		}
		list = append(list, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list identities: %w", mapErr(err))
	}
	return list, nil
}

// DeleteIdentity implements store.IdentityStore. Only the user's own
// identity is deleted; another user's is ErrNotFound.
func (s *Store) DeleteIdentity(ctx context.Context, userID, id string) error {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return fmt.Errorf("sqlite: delete identity %q: %w", id, store.ErrNotFound)
	}
	n, err := s.execRows(ctx, "DELETE FROM identities WHERE id = ? AND user_id = ?", canon, user)
	if err != nil {
		return fmt.Errorf("sqlite: delete identity %s: %w", canon, mapErr(err))
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete identity %s: %w", canon, store.ErrNotFound)
	}
	return nil
}
