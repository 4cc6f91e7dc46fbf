package sqlrow

import (
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// IdentityColumns is the column list ScanIdentity expects, in order; the
// values IdentityValues returns are in the same order.
const IdentityColumns = "id, user_id, provider, subject, email, linked_at, created_at, updated_at"

// ScanIdentity scans one row selected with IdentityColumns. td scans a NOT
// NULL time column.
func ScanIdentity(s Scanner, td TimeDest) (store.Identity, error) {
	var (
		i     store.Identity
		email *string
	)
	err := s.Scan(&i.ID, &i.UserID, &i.Provider, &i.Subject, &email, td(&i.LinkedAt), td(&i.CreatedAt), td(&i.UpdatedAt))
	if err != nil {
		return store.Identity{}, err
	}
	i.Email = deref(email)
	utc(&i.LinkedAt, &i.CreatedAt, &i.UpdatedAt)
	return i, nil
}

// IdentityValues returns the values of the IdentityColumns columns of an
// identity PrepareIdentity returned, in order.
func IdentityValues(i store.Identity, tv TimeValue) []any {
	return []any{i.ID, i.UserID, i.Provider, i.Subject, Null(i.Email), tv(i.LinkedAt), tv(i.CreatedAt), tv(i.UpdatedAt)}
}

// PrepareIdentity validates i for CreateIdentity and fills in what the
// store sets: the ID (a UUIDv7 when empty), LinkedAt (now when zero) and
// CreatedAt = UpdatedAt = now. A user ID that is not a UUID is
// store.ErrNotFound: no user has it. IDs come back in canonical form and
// times in UTC to the microsecond.
func PrepareIdentity(i store.Identity, now time.Time) (store.Identity, error) {
	id, err := newID(i.ID)
	if err != nil {
		return i, fmt.Errorf("identity: %w", err)
	}
	i.ID = id
	user, ok := ParseID(i.UserID)
	if !ok {
		return i, fmt.Errorf("identity: user %q: %w", i.UserID, store.ErrNotFound)
	}
	i.UserID = user
	switch {
	case !Storable(i.Provider) || !Storable(i.Subject):
		return i, errors.New("identity: Provider and Subject are required (UTF-8 text without NUL)")
	case !validText(i.Email):
		return i, errors.New("identity: Email is not valid UTF-8 text without NUL")
	}
	if i.LinkedAt.IsZero() {
		i.LinkedAt = now
	}
	i.LinkedAt = Micro(i.LinkedAt)
	i.CreatedAt = Micro(now)
	i.UpdatedAt = i.CreatedAt
	return i, nil
}
