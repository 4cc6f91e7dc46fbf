package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/store"
)

// The RBAC methods are shared with the other backend (sqldb); these three
// only add the transaction their statements need. UpdateRole's first
// statement, and a forced DeleteRole's, lock the role's row until the
// transaction ends, so concurrent changes of one role run one after the
// other.

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
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	}
	return mapErr(err)
}
