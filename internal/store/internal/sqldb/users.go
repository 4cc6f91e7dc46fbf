package sqldb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func (t *Tables) scanUser(r sqlrow.Scanner) (store.User, error) {
	return sqlrow.ScanUser(r, t.d.TimeDest, t.d.NullTimeDest)
}

const insertUser = `INSERT INTO users (id, ` + sqlrow.UserFields + `, created_at, updated_at, kind)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $23, $24)
	RETURNING ` + sqlrow.UserColumns

// CreateUser implements store.UserStore.
func (t *Tables) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	p, err := sqlrow.PrepareUser(u, true)
	if err != nil {
		return store.User{}, t.errorf("create user: %w", err)
	}
	args := append([]any{p.ID}, p.Values(t.d.TimeValue)...)
	args = append(args, t.d.TimeValue(t.now()), p.Kind)
	created, err := row(ctx, t, Write, t.scanUser, insertUser, args...)
	if err != nil {
		return store.User{}, t.errorf("create user: %w", t.d.MapErr(err))
	}
	return created, nil
}

// GetUser implements store.UserStore. It reads from the primary (or the
// transaction): login and token flows must see their own writes.
func (t *Tables) GetUser(ctx context.Context, id string) (store.User, error) {
	return t.getUser(ctx, id, "")
}

// GetUserForUpdate implements store.UserStore with SELECT … FOR UPDATE: on
// PostgreSQL the row stays locked until the transaction ends (outside InTx
// only for the statement). SQLite has no row locks: inside InTx the
// transaction already holds the database's write lock, so there it is
// GetUser.
func (t *Tables) GetUserForUpdate(ctx context.Context, id string) (store.User, error) {
	return t.getUser(ctx, id, t.d.ForUpdate)
}

func (t *Tables) getUser(ctx context.Context, id, lock string) (store.User, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.User{}, t.errorf("get user %q: %w", id, store.ErrNotFound)
	}
	u, err := row(ctx, t, Primary, t.scanUser, "SELECT "+sqlrow.UserColumns+
		" FROM users WHERE id = $1 AND deleted_at IS NULL"+lock, canon)
	if err != nil {
		return store.User{}, t.errorf("get user %s: %w", canon, t.d.MapErr(err))
	}
	return u, nil
}

// GetUserByEmail implements store.UserStore. It reads from the primary (or
// the transaction).
func (t *Tables) GetUserByEmail(ctx context.Context, emailNormalized string) (store.User, error) {
	u, err := row(ctx, t, Primary, t.scanUser, "SELECT "+sqlrow.UserColumns+
		" FROM users WHERE email_normalized = $1 AND deleted_at IS NULL", emailNormalized)
	if err != nil {
		return store.User{}, t.errorf("get user by email: %w", t.d.MapErr(err))
	}
	return u, nil
}

const updateUser = `UPDATE users SET
	email = $2, email_normalized = $3, email_verified_at = $4, pending_email = $5, password_hash = $6,
	name = $7, given_name = $8, family_name = $9, locale = $10, zoneinfo = $11, phone_number = $12, picture = $13,
	metadata = $14, app_metadata = $15,
	department = $16, job_title = $17, employee_id = $18, status = $19, is_admin = $20, last_login_at = $21,
	password_reset_required_at = $22, updated_at = $23
	WHERE id = $1 AND deleted_at IS NULL
	RETURNING ` + sqlrow.UserColumns

// UpdateUser implements store.UserStore.
func (t *Tables) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	p, err := sqlrow.PrepareUser(u, false)
	if err != nil {
		return store.User{}, t.errorf("update user: %w", err)
	}
	args := append([]any{p.ID}, p.Values(t.d.TimeValue)...)
	args = append(args, t.d.TimeValue(t.now()))
	updated, err := row(ctx, t, Write, t.scanUser, updateUser, args...)
	if err != nil {
		return store.User{}, t.errorf("update user %s: %w", p.ID, t.d.MapErr(err))
	}
	return updated, nil
}

// SoftDeleteUser implements store.UserStore. A zero at means now.
func (t *Tables) SoftDeleteUser(ctx context.Context, id string, at time.Time) error {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return t.errorf("delete user %q: %w", id, store.ErrNotFound)
	}
	if at.IsZero() {
		at = t.now()
	}
	return t.deleteOne(ctx, "delete user "+canon,
		"UPDATE users SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL", canon, t.d.TimeValue(at))
}

// ListUsers implements store.UserStore. Outside a transaction it reads from
// a replica when one is configured and healthy: an admin listing tolerates
// replication lag.
func (t *Tables) ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, string, error) {
	limit := sqlrow.UserLimit(f.Limit)
	sort, err := sqlrow.ParseUserSort(f.Sort)
	if err == nil {
		err = sqlrow.ValidateUserFilter(f)
	}
	if err != nil {
		return nil, "", t.errorf("%w", err)
	}
	var (
		where = []string{"deleted_at IS NULL"}
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Email != "" {
		where = append(where, `email_normalized LIKE `+arg(sqlrow.EmailPattern(f.Email))+` ESCAPE '\'`)
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(string(f.Status)))
	}
	if f.AdminsOnly {
		where = append(where, "is_admin = "+arg(true))
	}
	if f.Cursor != "" {
		c, err := sqlrow.DecodeUserCursor(f.Cursor, sort)
		if err != nil {
			return nil, "", t.errorf("list users: %w", err)
		}
		after := t.d.TimeValue(c.CreatedAt)
		if sort.ByEmail {
			after = c.Email
		}
		where = append(where, fmt.Sprintf("(%s, id) %s (%s, %s)", sort.Column(), sort.After(), arg(after), arg(c.ID)))
	}
	q := "SELECT " + sqlrow.UserColumns + " FROM users WHERE " + strings.Join(where, " AND ") +
		fmt.Sprintf(" ORDER BY %[1]s %[2]s, id %[2]s LIMIT %[3]s", sort.Column(), sort.Direction(), arg(limit+1))
	users := make([]store.User, 0, limit+1)
	err = t.x.Rows(ctx, Replica, q, args, func(r sqlrow.Scanner) error {
		u, err := t.scanUser(r)
		if err != nil {
			return err
		}
		users = append(users, u)
		return nil
	})
	if err != nil {
		return nil, "", t.errorf("list users: %w", t.d.MapErr(err))
	}
	users, next := sqlrow.UserPage(users, limit, sort)
	return users, next, nil
}
