package sqldb

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// InsertSigningKey inserts a key with every column of
// sqlrow.SigningKeyColumns; the backends' RotateSigningKeys, which take
// their engine's locks, use it too.
const InsertSigningKey = `INSERT INTO signing_keys (` + sqlrow.SigningKeyColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// CreateSigningKey implements store.SigningKeyStore.
func (t *Tables) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	k, err := sqlrow.PrepareSigningKey(k, t.now())
	if err != nil {
		return t.errorf("create signing key: %w", err)
	}
	tv := t.d.TimeValue
	_, err = t.x.Exec(ctx, InsertSigningKey, k.ID, k.Algorithm, k.PrivateKey, k.PublicKey,
		tv(k.CreatedAt), tv(k.ActivatedAt), tv(k.RetiredAt), tv(k.ExpiresAt))
	if err != nil {
		return t.errorf("create signing key: %w", t.d.MapErr(err))
	}
	return nil
}

// ListSigningKeys implements store.SigningKeyStore. It always reads the
// primary: a replica lagging behind a rotation would hide the new key.
func (t *Tables) ListSigningKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error) {
	keys, err := rows(ctx, t, Primary, t.scanSigningKey, `SELECT `+sqlrow.SigningKeyColumns+` FROM signing_keys
		WHERE expires_at IS NULL OR expires_at > $1
		ORDER BY activated_at DESC, created_at DESC, id DESC`, t.d.TimeValue(now))
	if err != nil {
		return nil, t.errorf("list signing keys: %w", err)
	}
	return keys, nil
}

func (t *Tables) scanSigningKey(r sqlrow.Scanner) (store.SigningKey, error) {
	return sqlrow.ScanSigningKey(r, t.d.TimeDest, t.d.NullTimeDest)
}

// PurgeSigningKeys implements store.SigningKeyStore.
func (t *Tables) PurgeSigningKeys(ctx context.Context, before time.Time) (int64, error) {
	n, err := t.x.Exec(ctx, "DELETE FROM signing_keys WHERE expires_at < $1", t.d.TimeValue(before))
	if err != nil {
		return 0, t.errorf("purge signing keys: %w", t.d.MapErr(err))
	}
	return n, nil
}
