package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// RotateSigningKeys implements store.SigningKeyStore. The transaction
// first locks the table against other writers (SHARE ROW EXCLUSIVE
// conflicts with itself and with every INSERT, UPDATE and DELETE), so that
// under READ COMMITTED a concurrent rotation waits and then retires the key
// this one inserted, instead of missing it and leaving two current keys.
// Readers are not blocked.
func (s *Store) RotateSigningKeys(ctx context.Context, newKey store.SigningKey, retireAt, expireOldAt time.Time) error {
	k, err := sqlrow.PrepareRotation(newKey, retireAt, s.now())
	if err != nil {
		return fmt.Errorf("postgres: rotate signing keys: %w", err)
	}
	err = s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.q.Exec(ctx, "LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		if _, err := tx.q.Exec(ctx, "UPDATE signing_keys SET retired_at = $1, expires_at = $2 WHERE retired_at IS NULL",
			timeValue(retireAt), timeValue(expireOldAt)); err != nil {
			return err
		}
		_, err := tx.q.Exec(ctx, sqldb.InsertSigningKey, k.ID, k.Algorithm, k.PrivateKey, k.PublicKey,
			k.CreatedAt, k.ActivatedAt, nil, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: rotate signing keys: %w", mapErr(err))
	}
	return nil
}
