package sqlrow

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

// TimeValue converts a time to the value a driver binds: nil for the zero
// time (NULL), otherwise the time in UTC to the microsecond in the
// backend's representation.
type TimeValue func(time.Time) any

// Micro returns t in UTC truncated to the microsecond, the precision every
// backend stores.
func Micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ParseID returns id in canonical UUID form, or false when it is not a UUID.
// Lookups by an ID that is not a UUID find nothing.
func ParseID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// newID returns id in canonical form, or a new UUIDv7 when id is empty.
func newID(id string) (string, error) {
	if id == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return "", fmt.Errorf("generate id: %w", err)
		}
		return u.String(), nil
	}
	canon, ok := ParseID(id)
	if !ok {
		return "", fmt.Errorf("id %q is not a UUID", id)
	}
	return canon, nil
}

// UserColumns is the column list ScanUser expects, in order.
const UserColumns = "id, email, email_normalized, email_verified_at, pending_email, password_hash, " +
	"name, given_name, family_name, locale, zoneinfo, phone_number, picture, metadata, app_metadata, " +
	"department, job_title, employee_id, status, is_admin, last_login_at, created_at, updated_at, deleted_at, " +
	"password_reset_required_at, kind"

// ScanUser scans one row selected with UserColumns. td scans a NOT NULL time
// column, ntd a nullable one (NULL becomes the zero time).
func ScanUser(s Scanner, td, ntd TimeDest) (store.User, error) {
	var (
		u                                                             store.User
		pending, hash, name, given, family, locale, zone, phone, pict *string
		dept, title, employee                                         *string
		status                                                        string
		meta, appMeta                                                 []byte
	)
	err := s.Scan(&u.ID, &u.Email, &u.EmailNormalized, ntd(&u.EmailVerifiedAt), &pending, &hash,
		&name, &given, &family, &locale, &zone, &phone, &pict, &meta, &appMeta,
		&dept, &title, &employee, &status, &u.IsAdmin, ntd(&u.LastLoginAt), td(&u.CreatedAt), td(&u.UpdatedAt), ntd(&u.DeletedAt),
		ntd(&u.PasswordResetRequiredAt), &u.Kind)
	if err != nil {
		return store.User{}, err
	}
	u.PendingEmail, u.PasswordHash = deref(pending), deref(hash)
	u.Name, u.GivenName, u.FamilyName = deref(name), deref(given), deref(family)
	u.Locale, u.Zoneinfo, u.PhoneNumber, u.Picture = deref(locale), deref(zone), deref(phone), deref(pict)
	u.Department, u.JobTitle, u.EmployeeID = deref(dept), deref(title), deref(employee)
	u.Status = store.UserStatus(status)
	for _, t := range []*time.Time{&u.EmailVerifiedAt, &u.LastLoginAt, &u.CreatedAt, &u.UpdatedAt, &u.DeletedAt, &u.PasswordResetRequiredAt} {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
	u.Metadata, u.AppMetadata = map[string]any{}, map[string]any{}
	if err := json.Unmarshal(meta, &u.Metadata); err != nil {
		return store.User{}, fmt.Errorf("decode metadata of user %s: %w", u.ID, err)
	}
	if err := json.Unmarshal(appMeta, &u.AppMetadata); err != nil {
		return store.User{}, fmt.Errorf("decode app_metadata of user %s: %w", u.ID, err)
	}
	return u, nil
}

// UserFields lists, in order, the columns UserFieldValues returns values
// for: every column of users except id, created_at, updated_at and
// deleted_at. CreateUser and UpdateUser write exactly these.
const UserFields = "email, email_normalized, email_verified_at, pending_email, password_hash, " +
	"name, given_name, family_name, locale, zoneinfo, phone_number, picture, metadata, app_metadata, " +
	"department, job_title, employee_id, status, is_admin, last_login_at, password_reset_required_at"

// PreparedUser is a validated user ready to be written.
type PreparedUser struct {
	ID string // canonical UUID
	// Kind is store.UserKindHuman or store.UserKindService. CreateUser
	// writes it; UpdateUser never changes it.
	Kind   string
	fields store.User
	meta   []byte
	app    []byte
}

// PrepareUser validates u for CreateUser (generateID true: an empty ID is
// replaced by a UUIDv7) or UpdateUser (generateID false: the ID must be
// given). For UpdateUser an ID that is not a UUID is store.ErrNotFound,
// since no user has it. An empty Status becomes active, nil metadata {}.
func PrepareUser(u store.User, generateID bool) (PreparedUser, error) {
	var p PreparedUser
	if generateID {
		id, err := newID(u.ID)
		if err != nil {
			return p, fmt.Errorf("user: %w", err)
		}
		p.ID = id
	} else {
		id, ok := ParseID(u.ID)
		if !ok {
			return p, fmt.Errorf("user %q: %w", u.ID, store.ErrNotFound)
		}
		p.ID = id
	}
	if u.Email == "" || u.EmailNormalized == "" {
		return p, errors.New("user: Email and EmailNormalized are required")
	}
	for name, v := range map[string]string{
		"Email": u.Email, "EmailNormalized": u.EmailNormalized, "PendingEmail": u.PendingEmail,
		"PasswordHash": u.PasswordHash, "Name": u.Name, "GivenName": u.GivenName, "FamilyName": u.FamilyName,
		"Locale": u.Locale, "Zoneinfo": u.Zoneinfo, "PhoneNumber": u.PhoneNumber, "Picture": u.Picture,
		"Department": u.Department, "JobTitle": u.JobTitle, "EmployeeID": u.EmployeeID,
	} {
		if !validText(v) {
			// Not quoting the value: it may be a password hash.
			return p, fmt.Errorf("user: %s is not valid UTF-8 text without NUL", name)
		}
	}
	if u.Status == "" {
		u.Status = store.UserActive
	}
	switch u.Kind {
	case "":
		p.Kind = store.UserKindHuman
	case store.UserKindHuman, store.UserKindService:
		p.Kind = u.Kind
	default:
		return p, fmt.Errorf("user: unknown kind %q", u.Kind)
	}
	if !validStatus(u.Status) {
		return p, fmt.Errorf("user: unknown status %q", u.Status)
	}
	var err error
	if p.meta, err = encodeObject(u.Metadata); err != nil {
		return p, fmt.Errorf("user: encode metadata: %w", err)
	}
	if p.app, err = encodeObject(u.AppMetadata); err != nil {
		return p, fmt.Errorf("user: encode app_metadata: %w", err)
	}
	p.fields = u
	return p, nil
}

// Values returns the values of the UserFields columns, in order, with
// times converted by tv and empty optional strings as NULL.
func (p PreparedUser) Values(tv TimeValue) []any {
	u := p.fields
	return []any{
		u.Email, u.EmailNormalized, tv(u.EmailVerifiedAt), Null(u.PendingEmail), Null(u.PasswordHash),
		Null(u.Name), Null(u.GivenName), Null(u.FamilyName), Null(u.Locale), Null(u.Zoneinfo), Null(u.PhoneNumber), Null(u.Picture),
		string(p.meta), string(p.app),
		Null(u.Department), Null(u.JobTitle), Null(u.EmployeeID), string(u.Status), u.IsAdmin, tv(u.LastLoginAt),
		tv(u.PasswordResetRequiredAt),
	}
}

// validText reports whether every backend stores s as it is: PostgreSQL
// text takes neither invalid UTF-8 nor NUL, SQLite would take both.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func validStatus(s store.UserStatus) bool {
	switch s {
	case store.UserActive, store.UserDisabled, store.UserLocked:
		return true
	}
	return false
}

func encodeObject(m map[string]any) ([]byte, error) {
	if m == nil {
		m = map[string]any{}
	}
	return json.Marshal(m)
}

// User listing page sizes.
const (
	DefaultUserLimit = 50
	MaxUserLimit     = 200
)

// UserLimit applies the default and the maximum to a requested page size.
func UserLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultUserLimit
	case n > MaxUserLimit:
		return MaxUserLimit
	}
	return n
}

// UserSort is a parsed store.UserFilter.Sort.
type UserSort struct {
	ByEmail bool // sort by email_normalized; otherwise by created_at
	Desc    bool
}

// ParseUserSort parses "created_at" (also ""), "email", "-created_at" and
// "-email".
func ParseUserSort(s string) (UserSort, error) {
	var us UserSort
	key, desc := strings.CutPrefix(s, "-")
	us.Desc = desc
	switch key {
	case "created_at":
	case "":
		if desc {
			return us, fmt.Errorf("list users: unknown sort %q", s)
		}
	case "email":
		us.ByEmail = true
	default:
		return us, fmt.Errorf("list users: unknown sort %q", s)
	}
	return us, nil
}

// String returns the canonical form of the sort, which the cursor carries.
func (us UserSort) String() string {
	key := "created_at"
	if us.ByEmail {
		key = "email"
	}
	if us.Desc {
		return "-" + key
	}
	return key
}

// Column returns the sort column.
func (us UserSort) Column() string {
	if us.ByEmail {
		return "email_normalized"
	}
	return "created_at"
}

// Direction returns ASC or DESC.
func (us UserSort) Direction() string {
	if us.Desc {
		return "DESC"
	}
	return "ASC"
}

// After returns the row-value comparison operator that selects rows after a
// cursor position in this order.
func (us UserSort) After() string {
	if us.Desc {
		return "<"
	}
	return ">"
}

// ValidateUserFilter checks the status filter.
func ValidateUserFilter(f store.UserFilter) error {
	if f.Status != "" && !validStatus(f.Status) {
		return fmt.Errorf("list users: unknown status %q", f.Status)
	}
	return nil
}

// EmailPattern returns the LIKE pattern (escape character \) matching
// email_normalized values that contain sub, case-insensitively: sub is
// lower-cased, as normalised emails are, and its wildcards match
// literally.
func EmailPattern(sub string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(sub)) + "%"
}

// userCursorVersion tells user cursors apart from other cursors (an audit
// cursor starts with "1.") and lets their format change later.
const userCursorVersion = "u1"

// UserCursor is a decoded user-list cursor: the position after the user
// with this ID and sort value.
type UserCursor struct {
	ID        string
	CreatedAt time.Time // when sorted by created_at
	Email     string    // when sorted by email
}

// EncodeUserCursor returns the opaque cursor positioned after u in order us.
func EncodeUserCursor(us UserSort, u store.User) string {
	value := u.EmailNormalized
	if !us.ByEmail {
		value = strconv.FormatInt(u.CreatedAt.UnixMicro(), 10)
	}
	payload := userCursorVersion + "." + us.String() + "." + u.ID + "." + value
	return base64.RawURLEncoding.EncodeToString([]byte(payload))
}

// DecodeUserCursor reverses EncodeUserCursor for the sort us. Malformed
// input, another kind of cursor or a cursor handed out for another sort is
// an error wrapping store.ErrInvalidCursor.
func DecodeUserCursor(s string, us UserSort) (UserCursor, error) {
	var c UserCursor
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return c, fmt.Errorf("%w: not base64url", store.ErrInvalidCursor)
	}
	parts := strings.SplitN(string(raw), ".", 4)
	if len(parts) != 4 || parts[0] != userCursorVersion {
		return c, fmt.Errorf("%w: unknown format", store.ErrInvalidCursor)
	}
	if parts[1] != us.String() {
		return c, fmt.Errorf("%w: cursor is for sort %q, not %q", store.ErrInvalidCursor, parts[1], us.String())
	}
	id, err := uuid.Parse(parts[2])
	if err != nil || id.String() != parts[2] {
		return c, fmt.Errorf("%w: bad id", store.ErrInvalidCursor)
	}
	c.ID = parts[2]
	value := parts[3]
	if us.ByEmail {
		// Every backend must be able to compare against it: text columns
		// take neither invalid UTF-8 nor NUL.
		if value == "" || !validText(value) {
			return c, fmt.Errorf("%w: bad email", store.ErrInvalidCursor)
		}
		c.Email = value
		return c, nil
	}
	micros, err := strconv.ParseInt(value, 10, 64)
	if err != nil || strconv.FormatInt(micros, 10) != value || micros < minCursorMicros || micros > maxCursorMicros {
		return c, fmt.Errorf("%w: bad time", store.ErrInvalidCursor)
	}
	c.CreatedAt = time.UnixMicro(micros).UTC()
	return c, nil
}

// UserPage trims users, fetched with limit+1 rows, to limit and returns the
// cursor of the next page ("" when there is none).
func UserPage(users []store.User, limit int, us UserSort) ([]store.User, string) {
	if len(users) <= limit {
		return users, ""
	}
	users = users[:limit]
	return users, EncodeUserCursor(us, users[limit-1])
}

// TokenColumns is the column list ScanToken expects, in order.
const TokenColumns = "id, user_id, purpose, token_hash, email, expires_at, consumed_at, created_at"

// ScanToken scans one row selected with TokenColumns.
func ScanToken(s Scanner, td, ntd TimeDest) (store.OneTimeToken, error) {
	var (
		t       store.OneTimeToken
		purpose string
		email   *string
	)
	if err := s.Scan(&t.ID, &t.UserID, &purpose, &t.TokenHash, &email, td(&t.ExpiresAt), ntd(&t.ConsumedAt), td(&t.CreatedAt)); err != nil {
		return store.OneTimeToken{}, err
	}
	t.Purpose, t.Email = store.TokenPurpose(purpose), deref(email)
	t.ExpiresAt, t.CreatedAt = t.ExpiresAt.UTC(), t.CreatedAt.UTC()
	if !t.ConsumedAt.IsZero() {
		t.ConsumedAt = t.ConsumedAt.UTC()
	}
	return t, nil
}

// TokenTable is the table that keeps the tokens of purpose p: not_me
// tokens have a table of their own, of the same columns, where they do not
// replace each other (migration 0015); the others are in one_time_tokens.
// An unknown purpose is looked up in one_time_tokens, which has none.
func TokenTable(p store.TokenPurpose) string {
	if p == store.PurposeNotMe {
		return "not_me_tokens"
	}
	return "one_time_tokens"
}

// ValidPurpose reports whether p is one of the token purposes.
func ValidPurpose(p store.TokenPurpose) bool {
	switch p {
	case store.PurposeVerifyEmail, store.PurposeEmailChange, store.PurposePasswordReset, store.PurposeNotMe:
		return true
	}
	return false
}

// PrepareToken validates t for CreateOneTimeToken and fills in what the
// caller may leave out: a UUIDv7 ID and CreatedAt = now. IDs come back in
// canonical form and times in UTC to the microsecond. A new token cannot be
// consumed already.
func PrepareToken(t store.OneTimeToken, now time.Time) (store.OneTimeToken, error) {
	id, err := newID(t.ID)
	if err != nil {
		return t, fmt.Errorf("one-time token: %w", err)
	}
	t.ID = id
	user, ok := ParseID(t.UserID)
	if !ok {
		return t, fmt.Errorf("one-time token: user id %q is not a UUID", t.UserID)
	}
	t.UserID = user
	switch {
	case !ValidPurpose(t.Purpose):
		return t, fmt.Errorf("one-time token: unknown purpose %q", t.Purpose)
	case t.TokenHash == "":
		return t, errors.New("one-time token: TokenHash is required")
	case !validText(t.TokenHash) || !validText(t.Email):
		return t, errors.New("one-time token: TokenHash and Email must be valid UTF-8 text")
	case t.ExpiresAt.IsZero():
		return t, errors.New("one-time token: ExpiresAt is required")
	case !t.ConsumedAt.IsZero():
		return t, errors.New("one-time token: a new token cannot be consumed")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	t.ExpiresAt, t.CreatedAt = Micro(t.ExpiresAt), Micro(t.CreatedAt)
	return t, nil
}
