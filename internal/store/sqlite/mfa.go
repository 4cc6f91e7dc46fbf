package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// Every write below is one statement or one transaction, and SQLite runs
// each under the database's write lock: the one-time steps
// (AcceptTOTPStep, UseBackupCode, AttemptMFACode, ConsumeMFACode) are
// guarded UPDATEs that one caller at a time evaluates against the latest
// committed row, so they need no row locks.

func scanMFADevice(row sqlrow.Scanner) (store.MFADevice, error) {
	return sqlrow.ScanMFADevice(row, timeDest, nullTimeDest)
}

func scanMFACode(row sqlrow.Scanner) (store.MFACode, error) {
	return sqlrow.ScanMFACode(row, timeDest, nullTimeDest)
}

var insertMFACode = `INSERT INTO mfa_codes (` + sqlrow.MFACodeColumns + `)
	VALUES (` + strings.Repeat("?, ", 8) + `?) RETURNING ` + sqlrow.MFACodeColumns

// execRows runs one write statement (on the transaction inside InTx,
// otherwise on the writer connection) and returns how many rows it
// changed.
func (s *Store) execRows(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.write(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// userExists returns nil when the user's row exists (deleted or not), and
// sql.ErrNoRows otherwise, in the transaction tx.
func (tx *Store) userExists(ctx context.Context, userID string) error {
	var one int
	return tx.tx.QueryRowContext(ctx, "SELECT 1 FROM users WHERE id = ?", userID).Scan(&one)
}

const updateMFADevice = `UPDATE mfa_devices SET name = ?3, confirmed_at = ?4, is_default = ?5, last_used_at = ?6,
	phone_number = ?7, email = ?8, updated_at = ?9
	WHERE id = ?1 AND user_id = ?2 RETURNING ` + sqlrow.MFADeviceColumns

// UpdateMFADevice implements store.MFAStore. Setting IsDefault clears the
// flag on the user's other devices and sets it on this one in one
// transaction (the caller's, inside InTx).
func (s *Store) UpdateMFADevice(ctx context.Context, d store.MFADevice) (store.MFADevice, error) {
	d, err := sqlrow.PrepareMFADeviceUpdate(d)
	if err != nil {
		return store.MFADevice{}, fmt.Errorf("sqlite: update mfa device: %w", err)
	}
	now := timeValue(s.now())
	args := []any{d.ID, d.UserID, sqlrow.Null(d.Name), timeValue(d.ConfirmedAt), d.IsDefault, timeValue(d.LastUsedAt),
		sqlrow.Null(d.PhoneNumber), sqlrow.Null(d.Email), now}
	var updated store.MFADevice
	err = s.inTx(ctx, func(tx *Store) error {
		if d.IsDefault {
			// Only when the device exists: a failed update must not leave
			// the user without a default (an outer transaction may commit
			// anyway).
			if _, err := tx.tx.ExecContext(ctx, `UPDATE mfa_devices SET is_default = 0, updated_at = ?3
				WHERE user_id = ?1 AND id <> ?2 AND is_default
				AND EXISTS (SELECT 1 FROM mfa_devices WHERE id = ?2 AND user_id = ?1)`, d.UserID, d.ID, now); err != nil {
				return err
			}
		}
		var err error
		updated, err = scanMFADevice(tx.tx.QueryRowContext(ctx, updateMFADevice, args...))
		return err
	})
	if err != nil {
		return store.MFADevice{}, fmt.Errorf("sqlite: update mfa device %s: %w", d.ID, mapErr(err))
	}
	return updated, nil
}

// AcceptTOTPStep implements store.MFAStore with one guarded UPDATE. A
// device that does not exist (or is another user's) accepts nothing.
func (s *Store) AcceptTOTPStep(ctx context.Context, userID, id string, step int64, now time.Time) (bool, error) {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return false, nil
	}
	n, err := s.execRows(ctx, `UPDATE mfa_devices SET last_step = ?3, last_used_at = ?4
		WHERE id = ?1 AND user_id = ?2 AND last_step < ?3`, canon, user, step, timeValue(now))
	if err != nil {
		return false, fmt.Errorf("sqlite: accept totp step: %w", mapErr(err))
	}
	return n == 1, nil
}

// ReplaceBackupCodes implements store.MFAStore in one transaction (the
// caller's, inside InTx). A user that does not exist is ErrNotFound; a
// hash given twice is ErrConflict.
func (s *Store) ReplaceBackupCodes(ctx context.Context, userID string, hashes []string, now time.Time) error {
	user, ids, at, err := sqlrow.PrepareBackupCodes(userID, hashes, now)
	if err != nil {
		return fmt.Errorf("sqlite: replace backup codes: %w", err)
	}
	pairs := make([][2]string, len(ids))
	for i := range ids {
		pairs[i] = [2]string{ids[i], hashes[i]}
	}
	codes, err := json.Marshal(pairs)
	if err != nil {
		return fmt.Errorf("sqlite: replace backup codes: %w", err)
	}
	err = s.inTx(ctx, func(tx *Store) error {
		if err := tx.userExists(ctx, user); err != nil {
			return err
		}
		if _, err := tx.tx.ExecContext(ctx, "DELETE FROM mfa_backup_codes WHERE user_id = ?", user); err != nil {
			return err
		}
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO mfa_backup_codes (id, user_id, code_hash, created_at)
			SELECT value ->> 0, ?1, value ->> 1, ?2 FROM json_each(?3)`, user, timeValue(at), string(codes))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: replace backup codes: %w", mapRefErr(err))
	}
	return nil
}

// UseBackupCode implements store.MFAStore with one guarded UPDATE.
func (s *Store) UseBackupCode(ctx context.Context, userID, hash string, now time.Time) (bool, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok || !sqlrow.Storable(hash) {
		return false, nil
	}
	n, err := s.execRows(ctx, `UPDATE mfa_backup_codes SET used_at = ?3
		WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL`, user, hash, timeValue(now))
	if err != nil {
		return false, fmt.Errorf("sqlite: use backup code: %w", mapErr(err))
	}
	return n == 1, nil
}

// SecondFactors implements store.MFAStore with the four reads it stands
// for; in process they cost no round trips.
func (s *Store) SecondFactors(ctx context.Context, userID string) (store.SecondFactors, error) {
	var (
		f   store.SecondFactors
		err error
	)
	if f.Organizations, err = s.UserOrganizations(ctx, userID); err != nil {
		return store.SecondFactors{}, err
	}
	if f.Devices, err = s.ListMFADevices(ctx, userID); err != nil {
		return store.SecondFactors{}, err
	}
	if f.BackupCodes, err = s.CountBackupCodes(ctx, userID); err != nil {
		return store.SecondFactors{}, err
	}
	if f.Passkeys, err = s.ListPasskeys(ctx, userID); err != nil {
		return store.SecondFactors{}, err
	}
	return f, nil
}

// CreateMFACode implements store.MFAStore in one transaction (the
// caller's, inside InTx) that deletes the user's unconsumed codes of the
// same channel and device and inserts c. A user that does not exist, or a
// device that is not the user's, is ErrNotFound; a taken ID is
// ErrConflict.
func (s *Store) CreateMFACode(ctx context.Context, c store.MFACode) (store.MFACode, error) {
	c, err := sqlrow.PrepareMFACode(c, s.now())
	if err != nil {
		return store.MFACode{}, fmt.Errorf("sqlite: create mfa code: %w", err)
	}
	var created store.MFACode
	err = s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM mfa_codes
			WHERE user_id = ? AND channel = ? AND device_id IS ? AND consumed_at IS NULL`,
			c.UserID, c.Channel, sqlrow.Null(c.DeviceID)); err != nil {
			return err
		}
		var err error
		created, err = scanMFACode(tx.tx.QueryRowContext(ctx, insertMFACode, sqlrow.MFACodeValues(c, timeValue)...))
		return err
	})
	if err != nil {
		return store.MFACode{}, fmt.Errorf("sqlite: create mfa code: %w", mapRefErr(err))
	}
	return created, nil
}

// AttemptMFACode implements store.MFAStore with one UPDATE whose subquery
// picks the latest live code; SQLite runs it under the write lock, so of N
// concurrent attempts on a code with k attempts left exactly k succeed.
func (s *Store) AttemptMFACode(ctx context.Context, userID, channel, deviceID string, maxAttempts int, now time.Time) (store.MFACode, error) {
	user, device, ok := sqlrow.MFACodeTarget(userID, channel, deviceID)
	if !ok {
		return store.MFACode{}, fmt.Errorf("sqlite: attempt mfa code: %w", store.ErrNotFound)
	}
	var c store.MFACode
	err := s.write(ctx, func(q querier) error {
		var err error
		c, err = scanMFACode(q.QueryRowContext(ctx, `UPDATE mfa_codes SET attempts = attempts + 1
			WHERE id = (
				SELECT id FROM mfa_codes
				WHERE user_id = ?1 AND channel = ?2 AND device_id IS ?3
					AND consumed_at IS NULL AND expires_at > ?4
				ORDER BY created_at DESC, id DESC LIMIT 1
			) AND attempts < ?5
			RETURNING `+sqlrow.MFACodeColumns,
			user, channel, sqlrow.Null(device), timeValue(now), maxAttempts))
		return err
	})
	if err != nil {
		return store.MFACode{}, fmt.Errorf("sqlite: attempt mfa code: %w", mapErr(err))
	}
	return c, nil
}

// ConsumeMFACode implements store.MFAStore with one guarded UPDATE.
func (s *Store) ConsumeMFACode(ctx context.Context, id string, now time.Time) (bool, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return false, nil
	}
	n, err := s.execRows(ctx, "UPDATE mfa_codes SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL",
		timeValue(now), canon)
	if err != nil {
		return false, fmt.Errorf("sqlite: consume mfa code %s: %w", canon, mapErr(err))
	}
	return n == 1, nil
}
