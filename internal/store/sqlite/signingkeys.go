package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

const insertSigningKey = `INSERT INTO signing_keys (` + sqlrow.SigningKeyColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

// CreateSigningKey implements store.SigningKeyStore.
func (s *Store) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	k, err := sqlrow.PrepareSigningKey(k, s.now())
	if err != nil {
		return fmt.Errorf("sqlite: create signing key: %w", err)
	}
	err = s.write(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, insertSigningKey, k.ID, k.Algorithm, k.PrivateKey, k.PublicKey,
			timeValue(k.CreatedAt), timeValue(k.ActivatedAt), timeValue(k.RetiredAt), timeValue(k.ExpiresAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: create signing key: %w", mapErr(err))
	}
	return nil
}

// ListSigningKeys implements store.SigningKeyStore.
func (s *Store) ListSigningKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error) {
	rows, err := s.read().QueryContext(ctx, `SELECT `+sqlrow.SigningKeyColumns+` FROM signing_keys
		WHERE expires_at IS NULL OR expires_at > ?
		ORDER BY activated_at DESC, created_at DESC, id DESC`, timeValue(now))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list signing keys: %w", mapErr(err))
	}
	defer rows.Close()
	var keys []store.SigningKey
	for rows.Next() {
		k, err := sqlrow.ScanSigningKey(rows, timeDest, nullTimeDest)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list signing keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list signing keys: %w", mapErr(err))
	}
	return keys, nil
}

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
		_, err := tx.tx.ExecContext(ctx, insertSigningKey, k.ID, k.Algorithm, k.PrivateKey, k.PublicKey,
			timeValue(k.CreatedAt), timeValue(k.ActivatedAt), nil, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: rotate signing keys: %w", mapErr(err))
	}
	return nil
}

// PurgeSigningKeys implements store.SigningKeyStore.
func (s *Store) PurgeSigningKeys(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, "DELETE FROM signing_keys WHERE expires_at < ?", timeValue(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge signing keys: %w", mapErr(err))
	}
	return n, nil
}
