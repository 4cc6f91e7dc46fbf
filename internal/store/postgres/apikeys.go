package postgres

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/store"
)

// The API key methods are shared with the other backend (sqldb); these two
// only add the transaction their statements need.

// CreateServiceAccount implements store.APIKeyStore: the user row and the
// service account's in one transaction (the caller's, inside InTx).
func (s *Store) CreateServiceAccount(ctx context.Context, sa store.ServiceAccount) (store.ServiceAccount, error) {
	var created store.ServiceAccount
	err := s.inTx(ctx, func(tx *Store) error {
		var err error
		created, err = tx.tables.CreateServiceAccountTx(ctx, sa)
		return err
	})
	return created, err
}

// RecordAPIKeyUse implements store.APIKeyStore: every use in one
// transaction (the caller's, inside InTx). On PostgreSQL the
// first statement for each key locks the key's row until the transaction
// ends.
func (s *Store) RecordAPIKeyUse(ctx context.Context, uses []store.APIKeyUse) error {
	if len(uses) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *Store) error { return tx.tables.RecordAPIKeyUseTx(ctx, uses) })
}
