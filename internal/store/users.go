package store

import (
	"context"
	"time"
)

// Transactor runs work in one database transaction.
type Transactor interface {
	// InTx runs fn in a transaction with a Store bound to it: every method
	// called on tx runs inside the transaction. fn's error (or panic) rolls
	// back; nil commits. Calling InTx on a transaction-bound store runs fn
	// in the same transaction. On SQLite the transaction takes the write
	// lock at BEGIN (immediate), on PostgreSQL it is READ COMMITTED; methods
	// that must serialise read-modify-write use ...ForUpdate reads.
	// A nested InTx is not a savepoint: fn's error reaches the outer fn,
	// which decides. tx belongs to fn's goroutine and is unusable once InTx
	// returns. Inside fn, call tx, never the store InTx was called on: that
	// one works outside the transaction (on SQLite its writes wait for the
	// transaction's write lock and fail after the busy timeout).
	InTx(ctx context.Context, fn func(tx Store) error) error
	// DriverTx returns the driver's transaction (pgx.Tx or *sql.Tx) of a
	// transaction-bound store, so a job can be enqueued in the same
	// transaction (jobs.Queue.InsertTx); nil outside InTx.
	DriverTx() any
}

// UserStatus is the state of an account.
type UserStatus string

// Account states.
const (
	UserActive   UserStatus = "active"
	UserDisabled UserStatus = "disabled"
	UserLocked   UserStatus = "locked"
)

// User is an account. Zero times mean "not set"; empty strings are stored
// as NULL where the column is nullable.
type User struct {
	ID              string // UUIDv7, generated when empty
	Email           string // as the user typed it, for display
	EmailNormalized string // the unique key: trimmed and lower-cased; unique among users not deleted
	EmailVerifiedAt time.Time
	// PendingEmail is a requested new address that takes effect when it is
	// verified.
	PendingEmail string
	PasswordHash string // PHC string or an imported legacy hash; empty for accounts without a password
	Name         string
	GivenName    string
	FamilyName   string
	Locale       string
	Zoneinfo     string
	PhoneNumber  string // E.164
	Picture      string
	Metadata     map[string]any // the user may edit it; nil is stored as {}
	AppMetadata  map[string]any // only admins may edit it; nil is stored as {}
	Department   string
	JobTitle     string
	EmployeeID   string
	Status       UserStatus // empty is stored as active
	// Kind is UserKindHuman (empty is stored as it) or UserKindService.
	Kind        string
	IsAdmin     bool
	LastLoginAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeletedAt   time.Time

	// PasswordResetRequiredAt, when set, is when the user disowned a
	// sign-in ("this wasn't me"): password sign-in is refused until the
	// password is reset by email, which clears it.
	PasswordResetRequiredAt time.Time
}

// UserFilter selects users for ListUsers.
type UserFilter struct {
	Email  string     // case-insensitive substring of the normalised email
	Status UserStatus // exact match when set
	// AdminsOnly keeps only administrators (is_admin).
	AdminsOnly bool
	// Sort is "created_at" (default) or "email"; prefix "-" for descending.
	Sort   string
	Cursor string
	Limit  int // default 50, at most 200
}

// UserStore keeps accounts. Soft-deleted users are invisible to every
// method: the getters, UpdateUser and SoftDeleteUser return ErrNotFound for
// them and ListUsers leaves them out. An ID that is not a UUID belongs to
// no user (ErrNotFound).
type UserStore interface {
	// CreateUser stores u with CreatedAt and UpdatedAt set to now and returns
	// it as stored. ErrConflict when EmailNormalized belongs to another user
	// who is not deleted (or the ID is taken). Email and EmailNormalized are
	// required; DeletedAt is ignored.
	CreateUser(ctx context.Context, u User) (User, error)
	// GetUser returns the user with this ID, or ErrNotFound.
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserForUpdate is GetUser that also locks the row until the end of
	// the transaction (SELECT … FOR UPDATE on PostgreSQL; SQLite's
	// transaction already holds the write lock). Use it inside InTx.
	GetUserForUpdate(ctx context.Context, id string) (User, error)
	// GetUserByEmail returns the user whose EmailNormalized equals
	// emailNormalized, or ErrNotFound.
	GetUserByEmail(ctx context.Context, emailNormalized string) (User, error)
	// UpdateUser writes every field of u except ID, CreatedAt and DeletedAt,
	// sets UpdatedAt to now and returns the stored user. ErrNotFound when
	// the user does not exist (or is deleted); ErrConflict on an email clash.
	UpdateUser(ctx context.Context, u User) (User, error)
	// SoftDeleteUser marks the user deleted; ErrNotFound if absent.
	SoftDeleteUser(ctx context.Context, id string, at time.Time) error
	// ListUsers returns users matching f and the cursor of the next page
	// ("" on the last). A foreign cursor is ErrInvalidCursor.
	ListUsers(ctx context.Context, f UserFilter) ([]User, string, error)
}

// TokenPurpose says what a one-time token is for.
type TokenPurpose string

// One-time token purposes.
const (
	PurposeVerifyEmail   TokenPurpose = "verify_email"
	PurposeEmailChange   TokenPurpose = "email_change"
	PurposePasswordReset TokenPurpose = "password_reset"
	// PurposeNotMe is the "this wasn't me" link of a new-sign-in email.
	// Unlike the others, a new one does not supersede the older ones:
	// every such email keeps a working link (see CreateOneTimeToken).
	PurposeNotMe TokenPurpose = "not_me"
)

// OneTimeToken is a single-use token sent by email. Only the SHA-256 hash
// of the token is stored.
type OneTimeToken struct {
	ID         string // UUIDv7, generated when empty
	UserID     string
	Purpose    TokenPurpose
	TokenHash  string // hex SHA-256 of the token; unique
	Email      string // the address the token was sent to (for email_change: the new address)
	ExpiresAt  time.Time
	ConsumedAt time.Time
	CreatedAt  time.Time
}

// OneTimeTokenStore keeps one-time tokens.
type OneTimeTokenStore interface {
	// CreateOneTimeToken stores t and, in the same step, deletes every
	// unconsumed token of the same user and purpose: a new link supersedes
	// the older ones. PurposeNotMe is the exception: its tokens accumulate
	// (each new-sign-in email keeps a working link) until they are
	// consumed, deleted (DeleteUserOneTimeTokens) or expire. An empty ID
	// becomes a UUIDv7, a zero CreatedAt now;
	// ExpiresAt is required and ConsumedAt must be zero. A TokenHash that
	// another remaining token has is ErrConflict (a not_me token's is
	// checked against the other not_me tokens, which the SQL backends keep
	// in a table of their own).
	CreateOneTimeToken(ctx context.Context, t OneTimeToken) error
	// ConsumeOneTimeToken marks the unconsumed, unexpired (ExpiresAt > now)
	// token with this purpose and hash consumed, in one atomic statement,
	// and returns it. ErrNotFound when there is no such token, so of several
	// parallel callers exactly one succeeds.
	ConsumeOneTimeToken(ctx context.Context, purpose TokenPurpose, tokenHash string, now time.Time) (OneTimeToken, error)
	// GetOneTimeToken returns the unconsumed, unexpired (ExpiresAt > now)
	// token with this purpose and hash without consuming it — to check what
	// a token is for before doing expensive work; the change itself must
	// still consume it with ConsumeOneTimeToken. ErrNotFound otherwise.
	GetOneTimeToken(ctx context.Context, purpose TokenPurpose, tokenHash string, now time.Time) (OneTimeToken, error)
	// DeleteUserOneTimeTokens deletes every unconsumed token of the user for
	// the purpose (e.g. all reset links once the password changed).
	DeleteUserOneTimeTokens(ctx context.Context, userID string, purpose TokenPurpose) error
	// PurgeOneTimeTokens deletes tokens that expired or were consumed before
	// before, and returns how many.
	PurgeOneTimeTokens(ctx context.Context, before time.Time) (int64, error)
}

// ForEachActiveAdmin calls fn for every active administrator of us, page
// after page, and returns how many there were; the first error of a page
// or of fn stops it. What tells the administrators of something (an alert,
// a webhook endpoint disabled) goes through it.
func ForEachActiveAdmin(ctx context.Context, us UserStore, fn func(User) error) (int, error) {
	f := UserFilter{AdminsOnly: true, Status: UserActive, Limit: 200}
	n := 0
	for {
		admins, next, err := us.ListUsers(ctx, f)
		if err != nil {
			return n, err
		}
		for _, a := range admins {
			if err := fn(a); err != nil {
				return n, err
			}
			n++
		}
		if next == "" {
			return n, nil
		}
		f.Cursor = next
	}
}
