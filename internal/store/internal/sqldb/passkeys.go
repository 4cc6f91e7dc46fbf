package sqldb

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// ListPasskeys selects a user's ($1) passkeys, oldest first (ties by ID);
// PostgreSQL's SecondFactors batches it.
const ListPasskeys = "SELECT " + sqlrow.PasskeyColumns + " FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"

const insertPasskey = `INSERT INTO passkeys (` + sqlrow.PasskeyColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING ` + sqlrow.PasskeyColumns

func (t *Tables) scanPasskey(r sqlrow.Scanner) (store.Passkey, error) {
	return sqlrow.ScanPasskey(r, t.d.TimeDest, t.d.NullTimeDest, t.d.ListDest)
}

// CreatePasskey implements store.PasskeyStore. A user that does not exist
// is ErrNotFound (the foreign key); a taken ID or credential ID is
// ErrConflict (the primary key, the unique index).
func (t *Tables) CreatePasskey(ctx context.Context, p store.Passkey) (store.Passkey, error) {
	p, err := sqlrow.PreparePasskey(p, t.now())
	if err != nil {
		return store.Passkey{}, t.errorf("create passkey: %w", err)
	}
	created, err := row(ctx, t, Write, t.scanPasskey, insertPasskey, sqlrow.PasskeyValues(p, t.d.TimeValue, t.d.ListValue)...)
	if err != nil {
		return store.Passkey{}, t.errorf("create passkey %s: %w", p.ID, t.d.MapRefErr(err))
	}
	return created, nil
}

// GetPasskey implements store.PasskeyStore, reading the primary.
func (t *Tables) GetPasskey(ctx context.Context, userID, id string) (store.Passkey, error) {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return store.Passkey{}, t.errorf("get passkey %q: %w", id, store.ErrNotFound)
	}
	p, err := row(ctx, t, Primary, t.scanPasskey, "SELECT "+sqlrow.PasskeyColumns+
		" FROM passkeys WHERE id = $1 AND user_id = $2", canon, user)
	if err != nil {
		return store.Passkey{}, t.errorf("get passkey %s: %w", canon, t.d.MapErr(err))
	}
	return p, nil
}

// getPasskeyByID returns the passkey with this canonical ID, whoever
// holds it.
func (t *Tables) getPasskeyByID(ctx context.Context, canon string) (store.Passkey, error) {
	p, err := row(ctx, t, Primary, t.scanPasskey, "SELECT "+sqlrow.PasskeyColumns+" FROM passkeys WHERE id = $1", canon)
	if err != nil {
		return store.Passkey{}, t.errorf("get passkey %s: %w", canon, t.d.MapErr(err))
	}
	return p, nil
}

// GetPasskeyByCredentialID implements store.PasskeyStore with one lookup
// in the unique index, reading the primary (a passkey just registered must
// sign in).
func (t *Tables) GetPasskeyByCredentialID(ctx context.Context, credentialID []byte) (store.Passkey, error) {
	if len(credentialID) == 0 || len(credentialID) > sqlrow.MaxCredentialIDLen {
		return store.Passkey{}, t.errorf("get passkey by credential id: %w", store.ErrNotFound)
	}
	p, err := row(ctx, t, Primary, t.scanPasskey, "SELECT "+sqlrow.PasskeyColumns+
		" FROM passkeys WHERE credential_id = $1", credentialID)
	if err != nil {
		return store.Passkey{}, t.errorf("get passkey by credential id: %w", t.d.MapErr(err))
	}
	return p, nil
}

// ListPasskeys implements store.PasskeyStore: oldest first, ties broken
// by ID, cloned ones included, from the primary.
func (t *Tables) ListPasskeys(ctx context.Context, userID string) ([]store.Passkey, error) {
	user, ok := sqlrow.ParseID(userID)
	if !ok {
		return nil, nil // no user has this ID, so none has passkeys
	}
	list, err := rows(ctx, t, Primary, t.scanPasskey, ListPasskeys, user)
	if err != nil {
		return nil, t.errorf("list passkeys of %s: %w", user, err)
	}
	return list, nil
}

// RenamePasskey implements store.PasskeyStore.
func (t *Tables) RenamePasskey(ctx context.Context, userID, id, name string) (store.Passkey, error) {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return store.Passkey{}, t.errorf("rename passkey %q: %w", id, store.ErrNotFound)
	}
	if err := sqlrow.PasskeyName(name); err != nil {
		return store.Passkey{}, t.errorf("rename passkey %s: %w", canon, err)
	}
	p, err := row(ctx, t, Write, t.scanPasskey, `UPDATE passkeys SET name = $3
		WHERE id = $1 AND user_id = $2 RETURNING `+sqlrow.PasskeyColumns, canon, user, name)
	if err != nil {
		return store.Passkey{}, t.errorf("rename passkey %s: %w", canon, t.d.MapErr(err))
	}
	return p, nil
}

// UsePasskey implements store.PasskeyStore with one guarded UPDATE, the
// compare-and-set: on PostgreSQL a concurrent caller waits for the row
// lock of the one that got there first and re-checks sign_count = prev
// and cloned_at IS NULL against the committed row (READ COMMITTED); on
// SQLite the statements run one at a time under the write lock. Of the
// callers moving the count on from the same prev, exactly one changes the
// row. (An authenticator without a counter reports 0 every time: count =
// prev = 0 matches again, so each such assertion is recorded; what keeps
// it from being replayed is the single-use challenge, not the count.)
// Only when no row changed does a second read tell a lost race or a
// cloned passkey (false) from an absent one (ErrNotFound). A zero at
// means now.
func (t *Tables) UsePasskey(ctx context.Context, id string, prev, count uint32, backupState bool, at time.Time) (bool, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return false, t.errorf("use passkey %q: %w", id, store.ErrNotFound)
	}
	if at.IsZero() {
		at = t.now()
	}
	n, err := t.x.Exec(ctx, `UPDATE passkeys SET sign_count = $3, backup_state = $4, last_used_at = $5
		WHERE id = $1 AND sign_count = $2 AND cloned_at IS NULL`,
		canon, int64(prev), int64(count), backupState, t.d.TimeValue(at))
	if err != nil {
		return false, t.errorf("use passkey %s: %w", canon, t.d.MapErr(err))
	}
	if n == 1 {
		return true, nil
	}
	var one int
	if err := t.x.Row(ctx, Primary, "SELECT 1 FROM passkeys WHERE id = $1", canon).Scan(&one); err != nil {
		return false, t.errorf("use passkey %s: %w", canon, t.d.MapErr(err))
	}
	return false, nil
}

// FlagPasskeyCloned implements store.PasskeyStore with one guarded
// UPDATE: of concurrent callers exactly one sets ClonedAt; the others
// read the passkey as that one left it. A zero at means now.
func (t *Tables) FlagPasskeyCloned(ctx context.Context, id string, at time.Time) (store.Passkey, bool, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.Passkey{}, false, t.errorf("flag passkey %q cloned: %w", id, store.ErrNotFound)
	}
	if at.IsZero() {
		at = t.now()
	}
	p, err := row(ctx, t, Write, t.scanPasskey, `UPDATE passkeys SET cloned_at = $2
		WHERE id = $1 AND cloned_at IS NULL RETURNING `+sqlrow.PasskeyColumns, canon, t.d.TimeValue(at))
	if err == nil {
		return p, true, nil
	}
	if err = t.d.MapErr(err); !notFound(err) {
		return store.Passkey{}, false, t.errorf("flag passkey %s cloned: %w", canon, err)
	}
	// Flagged already, or absent.
	p, err = t.getPasskeyByID(ctx, canon)
	return p, false, err
}

// DeletePasskey implements store.PasskeyStore.
func (t *Tables) DeletePasskey(ctx context.Context, userID, id string) error {
	user, okUser := sqlrow.ParseID(userID)
	canon, okID := sqlrow.ParseID(id)
	if !okUser || !okID {
		return t.errorf("delete passkey %q: %w", id, store.ErrNotFound)
	}
	return t.deleteOne(ctx, "delete passkey "+canon, "DELETE FROM passkeys WHERE id = $1 AND user_id = $2", canon, user)
}
