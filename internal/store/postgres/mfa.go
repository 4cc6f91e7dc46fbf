package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqldb"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// Lock order. The writes that must see every row of a user's second
// factors (a new default device, a new set of backup codes, a resent code)
// first lock the user's row (FOR NO KEY UPDATE, which foreign key checks
// and plain reads do not wait for), so that under READ COMMITTED two of them
// for one user run one after the other and the second sees what the first
// wrote. The one-time steps (AcceptTOTPStep, UseBackupCode,
// AttemptMFACode, ConsumeMFACode) are single guarded UPDATEs instead: a
// concurrent caller waits for the row and re-checks the guard against the
// committed row.

func scanMFADevice(row sqlrow.Scanner) (store.MFADevice, error) {
	return sqlrow.ScanMFADevice(row, timeDest, nullTimeDest)
}

func scanMFACode(row sqlrow.Scanner) (store.MFACode, error) {
	return sqlrow.ScanMFACode(row, timeDest, nullTimeDest)
}

func scanPasskey(row sqlrow.Scanner) (store.Passkey, error) {
	return sqlrow.ScanPasskey(row, timeDest, nullTimeDest, listDest)
}

// lockUser locks the user's row until the end of the transaction tx;
// ErrNotFound (pgx.ErrNoRows) when there is no such user.
func (tx *Store) lockUser(ctx context.Context, userID string) error {
	var one int
	return tx.q.QueryRow(ctx, "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", userID).Scan(&one)
}

// SecondFactors implements store.MFAStore: the four reads in one batch,
// from the primary (a device or passkey just added or removed must count).
func (s *Store) SecondFactors(ctx context.Context, userID string) (store.SecondFactors, error) {
	var f store.SecondFactors
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return f, nil // no user has this ID
	}
	b := &pgx.Batch{}
	b.Queue(userOrganizations, user)
	b.Queue(sqldb.ListMFADevices, user)
	b.Queue(sqldb.CountBackupCodes, user)
	b.Queue(sqldb.ListPasskeys, user)
	br := s.q.SendBatch(ctx, b)
	err := func() (err error) {
		rows, err := br.Query()
		if f.Organizations, err = collect(rows, err, scanOrganization); err != nil {
			return err
		}
		rows, err = br.Query()
		if f.Devices, err = collect(rows, err, scanMFADevice); err != nil {
			return err
		}
		if err := mapErr(br.QueryRow().Scan(&f.BackupCodes)); err != nil {
			return err
		}
		rows, err = br.Query()
		f.Passkeys, err = collect(rows, err, scanPasskey)
		return err
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = mapErr(cerr)
	}
	if err != nil {
		return store.SecondFactors{}, fmt.Errorf("postgres: second factors of user %s: %w", user, err)
	}
	return f, nil
}

const updateMFADevice = `UPDATE mfa_devices SET name = $3, confirmed_at = $4, is_default = $5, last_used_at = $6,
	phone_number = $7, email = $8, updated_at = $9
	WHERE id = $1 AND user_id = $2 RETURNING ` + sqlrow.MFADeviceColumns

// UpdateMFADevice implements store.MFAStore. Setting IsDefault runs in one
// transaction (the caller's, inside InTx) that locks the user's row,
// clears the flag on the user's other devices and sets it on this one, so
// concurrent calls for one user leave exactly one default: the last.
func (s *Store) UpdateMFADevice(ctx context.Context, d store.MFADevice) (store.MFADevice, error) {
	d, err := sqlrow.PrepareMFADeviceUpdate(d)
	if err != nil {
		return store.MFADevice{}, fmt.Errorf("postgres: update mfa device: %w", err)
	}
	now := sqlrow.Micro(s.now())
	args := []any{d.ID, d.UserID, sqlrow.Null(d.Name), timeValue(d.ConfirmedAt), d.IsDefault, timeValue(d.LastUsedAt),
		sqlrow.Null(d.PhoneNumber), sqlrow.Null(d.Email), now}
	var updated store.MFADevice
	if !d.IsDefault {
		updated, err = scanMFADevice(s.q.QueryRow(ctx, updateMFADevice, args...))
	} else {
		err = s.inTx(ctx, func(tx *Store) error {
			if err := tx.lockUser(ctx, d.UserID); err != nil {
				return err
			}
			// Only when the device exists: a failed update must not leave
			// the user without a default (an outer transaction may commit
			// anyway).
			if _, err := tx.q.Exec(ctx, `UPDATE mfa_devices SET is_default = false, updated_at = $3
				WHERE user_id = $1 AND id <> $2 AND is_default
				AND EXISTS (SELECT 1 FROM mfa_devices WHERE id = $2 AND user_id = $1)`, d.UserID, d.ID, now); err != nil {
				return err
			}
			var err error
			updated, err = scanMFADevice(tx.q.QueryRow(ctx, updateMFADevice, args...))
			return err
		})
	}
	if err != nil {
		return store.MFADevice{}, fmt.Errorf("postgres: update mfa device %s: %w", d.ID, mapErr(err))
	}
	return updated, nil
}

// AcceptTOTPStep implements store.MFAStore with one guarded UPDATE: of
// concurrent callers with the same step, the first moves last_step; the
// others wait for its row lock, re-check last_step < step against the
// committed row (READ COMMITTED) and update nothing. A device that does
// not exist (or is another user's) accepts nothing.
func (s *Store) AcceptTOTPStep(ctx context.Context, userID, id string, step int64, now time.Time) (bool, error) {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return false, nil
	}
	tag, err := s.q.Exec(ctx, `UPDATE mfa_devices SET last_step = $3, last_used_at = $4
		WHERE id = $1 AND user_id = $2 AND last_step < $3`, canon, user, step, sqlrow.Micro(now))
	if err != nil {
		return false, fmt.Errorf("postgres: accept totp step: %w", mapErr(err))
	}
	return tag.RowsAffected() == 1, nil
}

// ReplaceBackupCodes implements store.MFAStore in one transaction (the
// caller's, inside InTx) that locks the user's row, deletes every code of
// the user and inserts the new ones. A user that does not exist is
// ErrNotFound; a hash given twice is ErrConflict.
func (s *Store) ReplaceBackupCodes(ctx context.Context, userID string, hashes []string, now time.Time) error {
	user, ids, at, err := sqlrow.PrepareBackupCodes(userID, hashes, now)
	if err != nil {
		return fmt.Errorf("postgres: replace backup codes: %w", err)
	}
	err = s.inTx(ctx, func(tx *Store) error {
		if err := tx.lockUser(ctx, user); err != nil {
			return err
		}
		if _, err := tx.q.Exec(ctx, "DELETE FROM mfa_backup_codes WHERE user_id = $1", user); err != nil {
			return err
		}
		_, err := tx.q.Exec(ctx, `INSERT INTO mfa_backup_codes (id, user_id, code_hash, created_at)
			SELECT id, $1, code_hash, $2 FROM unnest($3::uuid[], $4::text[]) AS t (id, code_hash)`,
			user, at, ids, hashes)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: replace backup codes: %w", mapRefErr(err))
	}
	return nil
}

// UseBackupCode implements store.MFAStore with one guarded UPDATE: of
// concurrent callers, exactly one marks the code used.
func (s *Store) UseBackupCode(ctx context.Context, userID, hash string, now time.Time) (bool, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok || !sqlrow.Storable(hash) {
		return false, nil
	}
	tag, err := s.q.Exec(ctx, `UPDATE mfa_backup_codes SET used_at = $3
		WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL`, user, hash, sqlrow.Micro(now))
	if err != nil {
		return false, fmt.Errorf("postgres: use backup code: %w", mapErr(err))
	}
	return tag.RowsAffected() == 1, nil
}

// CreateMFACode implements store.MFAStore in one transaction (the
// caller's, inside InTx) that locks the user's row, deletes the user's
// unconsumed codes of the same channel and device and inserts c, so that of
// concurrent resends only the last one's code stays. A user that does not
// exist, or a device that is not the user's, is ErrNotFound; a taken ID is
// ErrConflict.
func (s *Store) CreateMFACode(ctx context.Context, c store.MFACode) (store.MFACode, error) {
	c, err := sqlrow.PrepareMFACode(c, s.now())
	if err != nil {
		return store.MFACode{}, fmt.Errorf("postgres: create mfa code: %w", err)
	}
	var created store.MFACode
	err = s.inTx(ctx, func(tx *Store) error {
		if err := tx.lockUser(ctx, c.UserID); err != nil {
			return err
		}
		if _, err := tx.q.Exec(ctx, `DELETE FROM mfa_codes
			WHERE user_id = $1 AND channel = $2 AND device_id IS NOT DISTINCT FROM $3::uuid AND consumed_at IS NULL`,
			c.UserID, c.Channel, sqlrow.Null(c.DeviceID)); err != nil {
			return err
		}
		var err error
		created, err = scanMFACode(tx.q.QueryRow(ctx, `INSERT INTO mfa_codes (`+sqlrow.MFACodeColumns+`)
			VALUES (`+placeholders(9)+`) RETURNING `+sqlrow.MFACodeColumns, sqlrow.MFACodeValues(c, timeValue)...))
		return err
	})
	if err != nil {
		return store.MFACode{}, fmt.Errorf("postgres: create mfa code: %w", mapRefErr(err))
	}
	return created, nil
}

// AttemptMFACode implements store.MFAStore with one UPDATE whose subquery
// picks the latest live code. The outer WHERE repeats every guard, so a
// caller that waited for a concurrent attempt's row lock re-checks them
// all against the committed row (READ COMMITTED): of N concurrent attempts
// on a code with k attempts left, exactly k succeed.
func (s *Store) AttemptMFACode(ctx context.Context, userID, channel, deviceID string, maxAttempts int, now time.Time) (store.MFACode, error) {
	user, device, ok := sqlrow.MFACodeTarget(userID, channel, deviceID)
	if !ok {
		return store.MFACode{}, fmt.Errorf("postgres: attempt mfa code: %w", store.ErrNotFound)
	}
	c, err := scanMFACode(s.q.QueryRow(ctx, `UPDATE mfa_codes SET attempts = attempts + 1
		WHERE id = (
			SELECT id FROM mfa_codes
			WHERE user_id = $1 AND channel = $2 AND device_id IS NOT DISTINCT FROM $3::uuid
				AND consumed_at IS NULL AND expires_at > $4
			ORDER BY created_at DESC, id DESC LIMIT 1
		) AND consumed_at IS NULL AND expires_at > $4 AND attempts < $5
		RETURNING `+sqlrow.MFACodeColumns,
		user, channel, sqlrow.Null(device), sqlrow.Micro(now), maxAttempts))
	if err != nil {
		return store.MFACode{}, fmt.Errorf("postgres: attempt mfa code: %w", mapErr(err))
	}
	return c, nil
}

// ConsumeMFACode implements store.MFAStore with one guarded UPDATE: of
// concurrent callers, exactly one gets true.
func (s *Store) ConsumeMFACode(ctx context.Context, id string, now time.Time) (bool, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return false, nil
	}
	tag, err := s.q.Exec(ctx, "UPDATE mfa_codes SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL",
		canon, sqlrow.Micro(now))
	if err != nil {
		return false, fmt.Errorf("postgres: consume mfa code %s: %w", canon, mapErr(err))
	}
	return tag.RowsAffected() == 1, nil
}
