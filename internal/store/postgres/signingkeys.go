package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

const insertSigningKey = `INSERT INTO signing_keys (` + sqlrow.SigningKeyColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// CreateSigningKey implements store.SigningKeyStore.
func (s *Store) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	k, err := sqlrow.PrepareSigningKey(k, s.now())
	if err != nil {
		return fmt.Errorf("postgres: create signing key: %w", err)
	}
	_, err = s.q.Exec(ctx, insertSigningKey, k.ID, k.Algorithm, k.PrivateKey, k.PublicKey,
		k.CreatedAt, k.ActivatedAt, timeValue(k.RetiredAt), timeValue(k.ExpiresAt))
	if err != nil {
		return fmt.Errorf("postgres: create signing key: %w", mapErr(err))
	}
	return nil
}

// ListSigningKeys implements store.SigningKeyStore. It always reads the
// primary: a replica lagging behind a rotation would hide the new key.
func (s *Store) ListSigningKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error) {
	rows, err := s.q.Query(ctx, `SELECT `+sqlrow.SigningKeyColumns+` FROM signing_keys
		WHERE expires_at IS NULL OR expires_at > $1
		ORDER BY activated_at DESC, created_at DESC, id DESC`, sqlrow.Micro(now))
	if err != nil {
		return nil, fmt.Errorf("postgres: list signing keys: %w", mapErr(err))
	}
	defer rows.Close()
	var keys []store.SigningKey
	for rows.Next() {
		k, err := sqlrow.ScanSigningKey(rows, timeDest, nullTimeDest)
		if err != nil {
			return nil, fmt.Errorf("postgres: list signing keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list signing keys: %w", mapErr(err))
	}
	return keys, nil
}

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
		_, err := tx.q.Exec(ctx, insertSigningKey, k.ID, k.Algorithm, k.PrivateKey, k.PublicKey,
			k.CreatedAt, k.ActivatedAt, nil, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: rotate signing keys: %w", mapErr(err))
	}
	return nil
}

// PurgeSigningKeys implements store.SigningKeyStore.
func (s *Store) PurgeSigningKeys(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.q.Exec(ctx, "DELETE FROM signing_keys WHERE expires_at < $1", sqlrow.Micro(before))
	if err != nil {
		return 0, fmt.Errorf("postgres: purge signing keys: %w", mapErr(err))
	}
	return tag.RowsAffected(), nil
}
