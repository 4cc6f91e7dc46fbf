package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// nullTime scans a nullable timestamptz: NULL becomes the zero time.
type nullTime struct{ t *time.Time }

func (n nullTime) ScanTimestamptz(v pgtype.Timestamptz) error {
	switch {
	case !v.Valid:
		*n.t = time.Time{}
	case v.InfinityModifier != pgtype.Finite:
		return errors.New("postgres: infinite timestamp")
	default:
		*n.t = v.Time.UTC()
	}
	return nil
}

func nullTimeDest(t *time.Time) any { return nullTime{t: t} }

// timeValue binds t as a timestamptz to the microsecond, and the zero time
// as NULL.
func timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return sqlrow.Micro(t)
}

func scanUser(row sqlrow.Scanner) (store.User, error) {
	return sqlrow.ScanUser(row, timeDest, nullTimeDest)
}

const insertUser = `INSERT INTO users (id, ` + sqlrow.UserFields + `, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22)
	RETURNING ` + sqlrow.UserColumns

// CreateUser implements store.UserStore.
func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	p, err := sqlrow.PrepareUser(u, true)
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: create user: %w", err)
	}
	args := append([]any{p.ID}, p.Values(timeValue)...)
	args = append(args, sqlrow.Micro(s.now()))
	created, err := scanUser(s.q.QueryRow(ctx, insertUser, args...))
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: create user: %w", mapErr(err))
	}
	return created, nil
}

// GetUser implements store.UserStore. It reads from the primary (or the
// transaction): login and token flows must see their own writes.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	return s.getUser(ctx, id, "")
}

// GetUserForUpdate implements store.UserStore with SELECT … FOR UPDATE: the
// row stays locked until the transaction ends. Outside InTx the lock only
// lasts for the statement.
func (s *Store) GetUserForUpdate(ctx context.Context, id string) (store.User, error) {
	return s.getUser(ctx, id, " FOR UPDATE")
}

func (s *Store) getUser(ctx context.Context, id, lock string) (store.User, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.User{}, fmt.Errorf("postgres: get user %q: %w", id, store.ErrNotFound)
	}
	u, err := scanUser(s.q.QueryRow(ctx, "SELECT "+sqlrow.UserColumns+
		" FROM users WHERE id = $1 AND deleted_at IS NULL"+lock, canon))
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: get user %s: %w", canon, mapErr(err))
	}
	return u, nil
}

// GetUserByEmail implements store.UserStore. It reads from the primary (or
// the transaction).
func (s *Store) GetUserByEmail(ctx context.Context, emailNormalized string) (store.User, error) {
	u, err := scanUser(s.q.QueryRow(ctx, "SELECT "+sqlrow.UserColumns+
		" FROM users WHERE email_normalized = $1 AND deleted_at IS NULL", emailNormalized))
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: get user by email: %w", mapErr(err))
	}
	return u, nil
}

const updateUser = `UPDATE users SET
	email = $2, email_normalized = $3, email_verified_at = $4, pending_email = $5, password_hash = $6,
	name = $7, given_name = $8, family_name = $9, locale = $10, zoneinfo = $11, phone_number = $12, picture = $13,
	metadata = $14, app_metadata = $15,
	department = $16, job_title = $17, employee_id = $18, status = $19, is_admin = $20, last_login_at = $21,
	updated_at = $22
	WHERE id = $1 AND deleted_at IS NULL
	RETURNING ` + sqlrow.UserColumns

// UpdateUser implements store.UserStore.
func (s *Store) UpdateUser(ctx context.Context, u store.User) (store.User, error) {
	p, err := sqlrow.PrepareUser(u, false)
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: update user: %w", err)
	}
	args := append([]any{p.ID}, p.Values(timeValue)...)
	args = append(args, sqlrow.Micro(s.now()))
	updated, err := scanUser(s.q.QueryRow(ctx, updateUser, args...))
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: update user %s: %w", p.ID, mapErr(err))
	}
	return updated, nil
}

// SoftDeleteUser implements store.UserStore. A zero at means now.
func (s *Store) SoftDeleteUser(ctx context.Context, id string, at time.Time) error {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return fmt.Errorf("postgres: delete user %q: %w", id, store.ErrNotFound)
	}
	if at.IsZero() {
		at = s.now()
	}
	tag, err := s.q.Exec(ctx, "UPDATE users SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL", canon, sqlrow.Micro(at))
	if err != nil {
		return fmt.Errorf("postgres: delete user %s: %w", canon, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete user %s: %w", canon, store.ErrNotFound)
	}
	return nil
}

// ListUsers implements store.UserStore. Outside a transaction it reads from
// a replica when one is configured and healthy: an admin listing tolerates
// replication lag.
func (s *Store) ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, string, error) {
	limit := sqlrow.UserLimit(f.Limit)
	sort, err := sqlrow.ParseUserSort(f.Sort)
	if err == nil {
		err = sqlrow.ValidateUserFilter(f)
	}
	if err != nil {
		return nil, "", fmt.Errorf("postgres: %w", err)
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
	if f.Cursor != "" {
		c, err := sqlrow.DecodeUserCursor(f.Cursor, sort)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list users: %w", err)
		}
		var after any = c.CreatedAt
		if sort.ByEmail {
			after = c.Email
		}
		where = append(where, fmt.Sprintf("(%s, id) %s (%s, %s::uuid)", sort.Column(), sort.After(), arg(after), arg(c.ID)))
	}
	q := "SELECT " + sqlrow.UserColumns + " FROM users WHERE " + strings.Join(where, " AND ") +
		fmt.Sprintf(" ORDER BY %[1]s %[2]s, id %[2]s LIMIT %[3]s", sort.Column(), sort.Direction(), arg(limit+1))

	rows, err := s.reader(ctx).Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list users: %w", mapErr(err))
	}
	defer rows.Close()
	users := make([]store.User, 0, limit+1)
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("postgres: list users: %w", mapErr(err))
	}
	users, next := sqlrow.UserPage(users, limit, sort)
	return users, next, nil
}
