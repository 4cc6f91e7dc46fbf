package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// RotateSigningKeys implements store.SigningKeyStore. The transaction
// holds SQLite's write lock from BEGIN IMMEDIATE, so rotations run one
// after the other.
func (s *Store) RotateSigningKeys(ctx context.Context, newKey store.SigningKey, retireAt, expireOldAt time.Time) error {
	k, err := sqlrow.PrepareRotation(newKey, retireAt, s.now())
	if err != nil {
		return fmt.Errorf("sqlite: rotate signing keys: %w", err)
	}
	err = s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.tx.ExecContext(ctx, "UPDATE signing_keys SET retired_at = ?, expires_at = ? WHERE retired_at IS NULL",
			timeValue(retireAt), timeValue(expireOldAt)); err != nil {
			return err
		}
		_, err := tx.tx.ExecContext(ctx, sqldb.InsertSigningKey, k.ID, k.Algorithm, k.PrivateKey, k.PublicKey,
			timeValue(k.CreatedAt), timeValue(k.ActivatedAt), nil, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: rotate signing keys: %w", mapErr(err))
	}
	return nil
}
