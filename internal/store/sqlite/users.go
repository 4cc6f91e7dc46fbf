package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func scanUser(row sqlrow.Scanner) (store.User, error) {
	return sqlrow.ScanUser(row, timeDest, nullTimeDest)
}

const insertUser = `INSERT INTO users (id, ` + sqlrow.UserFields + `, created_at, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	RETURNING ` + sqlrow.UserColumns

// CreateUser implements store.UserStore.
func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	p, err := sqlrow.PrepareUser(u, true)
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: create user: %w", err)
	}
	now := timeValue(s.now())
	args := append([]any{p.ID}, p.Values(timeValue)...)
	args = append(args, now, now)
	var created store.User
	err = s.write(ctx, func(q querier) error {
		created, err = scanUser(q.QueryRowContext(ctx, insertUser, args...))
		return err
	})
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: create user: %w", mapErr(err))
	}
	return created, nil
}

// GetUser implements store.UserStore.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.User{}, fmt.Errorf("sqlite: get user %q: %w", id, store.ErrNotFound)
	}
	u, err := scanUser(s.read().QueryRowContext(ctx, "SELECT "+sqlrow.UserColumns+
		" FROM users WHERE id = ? AND deleted_at IS NULL", canon))
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: get user %s: %w", canon, mapErr(err))
	}
	return u, nil
}

// GetUserForUpdate implements store.UserStore. SQLite has no row locks:
// inside InTx the transaction already holds the database's write lock, so
// this is GetUser.
func (s *Store) GetUserForUpdate(ctx context.Context, id string) (store.User, error) {
	return s.GetUser(ctx, id)
}

// GetUserByEmail implements store.UserStore.
func (s *Store) GetUserByEmail(ctx context.Context, emailNormalized string) (store.User, error) {
	u, err := scanUser(s.read().QueryRowContext(ctx, "SELECT "+sqlrow.UserColumns+
		" FROM users WHERE email_normalized = ? AND deleted_at IS NULL", emailNormalized))
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: get user by email: %w", mapErr(err))
	}
	return u, nil
}

const updateUser = `UPDATE users SET
	email = ?, email_normalized = ?, email_verified_at = ?, pending_email = ?, password_hash = ?,
	name = ?, given_name = ?, family_name = ?, locale = ?, zoneinfo = ?, phone_number = ?, picture = ?,
	metadata = ?, app_metadata = ?,
	department = ?, job_title = ?, employee_id = ?, status = ?, is_admin = ?, last_login_at = ?,
	updated_at = ?
	WHERE id = ? AND deleted_at IS NULL
	RETURNING ` + sqlrow.UserColumns

// UpdateUser implements store.UserStore.
func (s *Store) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	p, err := sqlrow.PrepareUser(u, false)
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: update user: %w", err)
	}
	args := append(p.Values(timeValue), timeValue(s.now()), p.ID)
	var updated store.User
	err = s.write(ctx, func(q querier) error {
		updated, err = scanUser(q.QueryRowContext(ctx, updateUser, args...))
		return err
	})
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: update user %s: %w", p.ID, mapErr(err))
	}
	return updated, nil
}

// SoftDeleteUser implements store.UserStore. A zero at means now.
func (s *Store) SoftDeleteUser(ctx context.Context, id string, at time.Time) error {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return fmt.Errorf("sqlite: delete user %q: %w", id, store.ErrNotFound)
	}
	if at.IsZero() {
		at = s.now()
	}
	var n int64
	err := s.write(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, "UPDATE users SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", timeValue(at), canon)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete user %s: %w", canon, mapErr(err))
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete user %s: %w", canon, store.ErrNotFound)
	}
	return nil
}

// ListUsers implements store.UserStore. It reads through the reader pool,
// or the transaction inside InTx.
func (s *Store) ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, string, error) {
	limit := sqlrow.UserLimit(f.Limit)
	sort, err := sqlrow.ParseUserSort(f.Sort)
	if err == nil {
		err = sqlrow.ValidateUserFilter(f)
	}
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: %w", err)
	}
	var (
		where = []string{"deleted_at IS NULL"}
		args  []any
	)
	if f.Email != "" {
		where = append(where, `email_normalized LIKE ? ESCAPE '\'`)
		args = append(args, sqlrow.EmailPattern(f.Email))
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	if f.Cursor != "" {
		c, err := sqlrow.DecodeUserCursor(f.Cursor, sort)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list users: %w", err)
		}
		var after any = c.CreatedAt.UnixMicro()
		if sort.ByEmail {
			after = c.Email
		}
		where = append(where, fmt.Sprintf("(%s, id) %s (?, ?)", sort.Column(), sort.After()))
		args = append(args, after, c.ID)
	}
	q := "SELECT " + sqlrow.UserColumns + " FROM users WHERE " + strings.Join(where, " AND ") +
		fmt.Sprintf(" ORDER BY %[1]s %[2]s, id %[2]s LIMIT ?", sort.Column(), sort.Direction())
	args = append(args, limit+1)

	rows, err := s.read().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list users: %w", mapErr(err))
	}
	defer rows.Close()
	users := make([]store.User, 0, limit+1)
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list users: %w", mapErr(err))
	}
	users, next := sqlrow.UserPage(users, limit, sort)
	return users, next, nil
}
