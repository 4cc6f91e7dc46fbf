package sqldb

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// The MFA CRUD. The steps whose concurrency each engine guards its own way
// (UpdateMFADevice's default flag, the TOTP step, backup and one-time codes)
// stay in the backends.

// ListMFADevices and CountBackupCodes select a user's ($1) devices, oldest
// first, and unused backup codes; PostgreSQL's SecondFactors batches them.
const (
	ListMFADevices   = "SELECT " + sqlrow.MFADeviceColumns + " FROM mfa_devices WHERE user_id = $1 ORDER BY created_at, id"
	CountBackupCodes = "SELECT count(*) FROM mfa_backup_codes WHERE user_id = $1 AND used_at IS NULL"
)

func (t *Tables) scanMFADevice(r sqlrow.Scanner) (store.MFADevice, error) {
	return sqlrow.ScanMFADevice(r, t.d.TimeDest, t.d.NullTimeDest)
}

// CreateMFADevice implements store.MFAStore. A user that does not exist is
// ErrNotFound; a taken ID, or IsDefault while the user has a default
// device already, is ErrConflict.
func (t *Tables) CreateMFADevice(ctx context.Context, d store.MFADevice) (store.MFADevice, error) {
	d, err := sqlrow.PrepareMFADevice(d, t.now())
	if err != nil {
		return store.MFADevice{}, t.errorf("create mfa device: %w", err)
	}
	created, err := row(ctx, t, Write, t.scanMFADevice, `INSERT INTO mfa_devices (`+sqlrow.MFADeviceColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING `+sqlrow.MFADeviceColumns,
		sqlrow.MFADeviceValues(d, t.d.TimeValue)...)
	if err != nil {
		return store.MFADevice{}, t.errorf("create mfa device: %w", t.d.MapRefErr(err))
	}
	return created, nil
}

// GetMFADevice implements store.MFAStore, reading the primary.
func (t *Tables) GetMFADevice(ctx context.Context, userID, id string) (store.MFADevice, error) {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return store.MFADevice{}, t.errorf("get mfa device %q: %w", id, store.ErrNotFound)
	}
	d, err := row(ctx, t, Primary, t.scanMFADevice, "SELECT "+sqlrow.MFADeviceColumns+
		" FROM mfa_devices WHERE id = $1 AND user_id = $2", canon, user)
	if err != nil {
		return store.MFADevice{}, t.errorf("get mfa device %s: %w", canon, t.d.MapErr(err))
	}
	return d, nil
}

// ListMFADevices implements store.MFAStore: oldest first, ties broken by
// ID, from the primary.
func (t *Tables) ListMFADevices(ctx context.Context, userID string) ([]store.MFADevice, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID, so none has devices
	}
	list, err := rows(ctx, t, Primary, t.scanMFADevice, ListMFADevices, user)
	if err != nil {
		return nil, t.errorf("list mfa devices: %w", err)
	}
	return list, nil
}

// DeleteMFADevice implements store.MFAStore. The codes sent for the device
// go with it.
func (t *Tables) DeleteMFADevice(ctx context.Context, userID, id string) error {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return t.errorf("delete mfa device %q: %w", id, store.ErrNotFound)
	}
	return t.deleteOne(ctx, "delete mfa device "+canon, "DELETE FROM mfa_devices WHERE id = $1 AND user_id = $2", canon, user)
}

// CountBackupCodes implements store.MFAStore, reading the primary.
func (t *Tables) CountBackupCodes(ctx context.Context, userID string) (int, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return 0, nil
	}
	var n int
	err := t.x.Row(ctx, Primary, CountBackupCodes, user).Scan(&n)
	if err != nil {
		return 0, t.errorf("count backup codes: %w", t.d.MapErr(err))
	}
	return n, nil
}
