package sqlite

import (
	"context"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse/gatehouse/internal/store"
)

// The RBAC methods are shared with the other backend (sqldb); these three
// only add the transaction their statements need. The transaction holds
// SQLite's write lock from BEGIN IMMEDIATE, so concurrent changes run one
// after the other.

// CreateRole implements store.AuthzStore: the role, its permissions and
// its parents in one transaction (the caller's, inside InTx).
func (s *Store) CreateRole(ctx context.Context, r store.Role) (store.Role, error) {
	var created store.Role
	err := s.inTx(ctx, func(tx *Store) error {
		var err error
		created, err = tx.tables.CreateRoleTx(ctx, r)
		return err
	})
	return created, err
}

// UpdateRole implements store.AuthzStore in one transaction (the
// caller's, inside InTx).
func (s *Store) UpdateRole(ctx context.Context, r store.Role) (store.Role, error) {
	var updated store.Role
	err := s.inTx(ctx, func(tx *Store) error {
		var err error
		updated, err = tx.tables.UpdateRoleTx(ctx, r)
		return err
	})
	return updated, err
}

// DeleteRole implements store.AuthzStore: without force a single
// statement, with force a transaction (the caller's, inside InTx).
func (s *Store) DeleteRole(ctx context.Context, id string, force bool) (store.RoleDeletion, error) {
	if !force {
		return s.tables.DeleteRoleTx(ctx, id, false)
	}
	var del store.RoleDeletion
	err := s.inTx(ctx, func(tx *Store) error {
		var err error
		del, err = tx.tables.DeleteRoleTx(ctx, id, true)
		return err
	})
	return del, err
}

// mapInUseErr is mapErr that also maps a foreign key violation (a row
// deleted while others still refer to it) to store.ErrConflict.
func mapInUseErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	}
	return mapErr(err)
}
