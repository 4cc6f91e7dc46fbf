package storetest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runUsers(t *testing.T, open, migrated func(t *testing.T) store.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testUserRoundTrip(t, migrated(t)) })
	t.Run("Defaults", func(t *testing.T) { testUserDefaults(t, migrated(t)) })
	t.Run("Invalid", func(t *testing.T) { testUserInvalid(t, migrated(t)) })
	t.Run("Update", func(t *testing.T) { testUserUpdate(t, migrated(t)) })
	t.Run("EmailUniqueAndSoftDelete", func(t *testing.T) { testUserEmailUnique(t, migrated(t)) })
	t.Run("List", func(t *testing.T) { testListUsers(t, migrated(t)) })
	t.Run("ListLimits", func(t *testing.T) { testListUsersLimits(t, migrated(t)) })
	t.Run("ListInvalid", func(t *testing.T) { testListUsersInvalid(t, migrated(t)) })
	t.Run("MigrationDown", func(t *testing.T) { testUsersMigrationDown(t, open(t)) })
}

// fullUser sets every field a caller may set, with times in another zone
// and below the microsecond.
func fullUser() store.User {
	nepal := time.FixedZone("NPT", 5*3600+45*60)
	return store.User{
		ID:              uuid.NewString(),
		Email:           "Ada.Lovelace@Example.COM",
		EmailNormalized: "ada.lovelace@example.com",
		EmailVerifiedAt: time.Date(2024, 2, 29, 23, 59, 59, 123456789, nepal),
		PendingEmail:    "ada@analytical.engine",
		PasswordHash:    "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Name:            "Ada Lovelace",
		GivenName:       "Ada",
		FamilyName:      "Lovelace",
		Locale:          "en-GB",
		Zoneinfo:        "Europe/London",
		PhoneNumber:     "+442071234567",
		Picture:         "https://example.com/ada.png",
		Metadata: map[string]any{
			"theme":  "dark",
			"n":      3.5,
			"big":    float64(1 << 40),
			"ok":     true,
			"null":   nil,
			"list":   []any{"a", 1.0, false},
			"nested": map[string]any{"k": "x'; DROP TABLE users; --", "deeper": map[string]any{}},
		},
		AppMetadata: map[string]any{"plan": "pro", "roles": []any{"admin", "billing"}},
		Department:  "Mathematics",
		JobTitle:    "Analyst",
		EmployeeID:  "E-1815",
		Status:      store.UserLocked,
		IsAdmin:     true,
		LastLoginAt: time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC),
		// Disowned a sign-in at 09:30:00.000000999 Nepal time.
		PasswordResetRequiredAt: time.Date(2025, 5, 6, 9, 30, 0, 999, nepal),
		// CreatedAt and UpdatedAt are set by the store, DeletedAt ignored.
		CreatedAt: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		UpdatedAt: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		DeletedAt: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func testUserRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := fullUser()
	created, err := s.CreateUser(ctx, in)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	checkNow(t, "CreatedAt", created.CreatedAt)
	if !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("UpdatedAt = %v, CreatedAt = %v; want equal on create", created.UpdatedAt, created.CreatedAt)
	}
	want := in
	want.Kind = store.UserKindHuman // the empty Kind is stored as it
	want.EmailVerifiedAt = time.Date(2024, 2, 29, 18, 14, 59, 123456000, time.UTC)
	want.LastLoginAt = time.Date(1969, 7, 20, 20, 17, 40, 999999000, time.UTC)
	want.PasswordResetRequiredAt = time.Date(2025, 5, 6, 3, 45, 0, 0, time.UTC)
	want.CreatedAt, want.UpdatedAt, want.DeletedAt = created.CreatedAt, created.CreatedAt, time.Time{}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Fatalf("CreateUser returned (-want +got):\n%s", diff)
	}
	for _, l := range []time.Time{created.EmailVerifiedAt, created.LastLoginAt, created.PasswordResetRequiredAt} {
		if l.Location() != time.UTC {
			t.Errorf("time %v not in UTC", l)
		}
	}

	got, err := s.GetUser(ctx, in.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetUser (-want +got):\n%s", diff)
	}
	// IDs are UUIDs: other spellings of the same UUID find the user.
	if got, err := s.GetUser(ctx, strings.ToUpper(in.ID)); err != nil || got.ID != in.ID {
		t.Errorf("GetUser(upper-case ID) = %s, %v; want %s", got.ID, err, in.ID)
	}
	got, err = s.GetUserByEmail(ctx, in.EmailNormalized)
	if err != nil {
		t.Fatalf("GetUserByEmail: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetUserByEmail (-want +got):\n%s", diff)
	}
	// The display address is not the key.
	if _, err := s.GetUserByEmail(ctx, in.Email); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUserByEmail(display address) err = %v, want ErrNotFound", err)
	}

	for _, id := range []string{uuid.NewString(), "not-a-uuid", ""} {
		if _, err := s.GetUser(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetUser(%q) err = %v, want ErrNotFound", id, err)
		}
		if _, err := s.GetUserForUpdate(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetUserForUpdate(%q) err = %v, want ErrNotFound", id, err)
		}
	}
	for _, email := range []string{"nobody@example.com", "", "ADA.LOVELACE@EXAMPLE.COM", "ada.lovelace@example.co"} {
		if _, err := s.GetUserByEmail(ctx, email); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetUserByEmail(%q) err = %v, want ErrNotFound", email, err)
		}
	}
}

func testUserDefaults(t *testing.T, s store.Store) {
	ctx := context.Background()
	created, err := s.CreateUser(ctx, store.User{Email: "Min@Example.com", EmailNormalized: "min@example.com"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	id, err := uuid.Parse(created.ID)
	if err != nil || id.Version() != 7 || id.String() != created.ID {
		t.Errorf("generated ID = %q, want a canonical UUIDv7", created.ID)
	}
	checkNow(t, "CreatedAt", created.CreatedAt)
	want := store.User{
		ID: created.ID, Email: "Min@Example.com", EmailNormalized: "min@example.com",
		Metadata: map[string]any{}, AppMetadata: map[string]any{},
		Status: store.UserActive, Kind: store.UserKindHuman,
		CreatedAt: created.CreatedAt, UpdatedAt: created.CreatedAt,
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("CreateUser returned (-want +got):\n%s", diff)
	}
	got, err := s.GetUser(ctx, created.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetUser (-want +got):\n%s", diff)
	}
	if got.Metadata == nil || got.AppMetadata == nil {
		t.Errorf("Metadata = %#v, AppMetadata = %#v; want empty non-nil maps", got.Metadata, got.AppMetadata)
	}
	// Empty strings and zero times are NULL in the database, not '' or 0.
	nulls := count(t, s, "SELECT count(*) FROM users WHERE id = '"+created.ID+"'"+
		" AND email_verified_at IS NULL AND pending_email IS NULL AND password_hash IS NULL"+
		" AND name IS NULL AND given_name IS NULL AND family_name IS NULL AND locale IS NULL"+
		" AND zoneinfo IS NULL AND phone_number IS NULL AND picture IS NULL AND department IS NULL"+
		" AND job_title IS NULL AND employee_id IS NULL AND last_login_at IS NULL AND deleted_at IS NULL"+
		" AND password_reset_required_at IS NULL")
	if nulls != 1 {
		t.Error("empty optional fields are not stored as NULL")
	}
}

func testUserInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	valid := mustCreateUser(t, s, newUser("valid@example.com"))
	for _, tc := range []struct {
		name string
		mod  func(u *store.User)
	}{
		{"no email", func(u *store.User) { u.Email = "" }},
		{"no normalised email", func(u *store.User) { u.EmailNormalized = "" }},
		{"unknown status", func(u *store.User) { u.Status = "banned" }},
		{"invalid UTF-8", func(u *store.User) { u.Name = "\xc3" }},
		{"NUL", func(u *store.User) { u.PasswordHash = "a\x00b" }},
		{"metadata not JSON-encodable", func(u *store.User) { u.Metadata = map[string]any{"f": func() {}} }},
		{"app metadata not JSON-encodable", func(u *store.User) { u.AppMetadata = map[string]any{"c": make(chan int)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser("invalid@example.com")
			tc.mod(&u)
			if _, err := s.CreateUser(ctx, u); err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				t.Errorf("CreateUser: err = %v, want a validation error", err)
			}
			u = valid
			tc.mod(&u)
			if _, err := s.UpdateUser(ctx, u); err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				t.Errorf("UpdateUser: err = %v, want a validation error", err)
			}
		})
	}
	u := newUser("bad-id@example.com")
	u.ID = "not-a-uuid"
	if _, err := s.CreateUser(ctx, u); err == nil || errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser with ID %q: err = %v, want a validation error", u.ID, err)
	}
	users, _, err := s.ListUsers(ctx, store.UserFilter{})
	if err != nil || len(users) != 1 {
		t.Errorf("after invalid creates ListUsers = %d users, %v; want only the valid one", len(users), err)
	}
	if got, err := s.GetUser(ctx, valid.ID); err != nil || !cmp.Equal(valid, got) {
		t.Errorf("after invalid updates GetUser = %+v, %v; want it unchanged", got, err)
	}
}

func testUserUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	orig := mustCreateUser(t, s, fullUser())
	other := mustCreateUser(t, s, newUser("other@example.com"))

	// Set every field to something else; CreatedAt and DeletedAt are not
	// the caller's to change.
	u := orig
	u.Email, u.EmailNormalized = "ADA@new.example", "ada@new.example"
	u.EmailVerifiedAt = time.Date(2025, 6, 1, 12, 0, 0, 1500, time.FixedZone("X", -7*3600))
	u.PendingEmail, u.PasswordHash = "", "$2a$10$legacy"
	u.Name, u.GivenName, u.FamilyName = "Augusta Ada King", "Augusta", "King"
	u.Locale, u.Zoneinfo, u.PhoneNumber, u.Picture = "fr", "Europe/Paris", "+33123456789", ""
	u.Metadata = map[string]any{"theme": "light"}
	u.AppMetadata = nil
	u.Department, u.JobTitle, u.EmployeeID = "", "Countess", "E-1"
	u.Status, u.IsAdmin = store.UserDisabled, false
	u.LastLoginAt = time.Time{}
	u.PasswordResetRequiredAt = time.Time{} // the password was reset
	u.CreatedAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	u.DeletedAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	updated, err := s.UpdateUser(ctx, u)
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	checkNow(t, "UpdatedAt", updated.UpdatedAt)
	if updated.UpdatedAt.Before(orig.UpdatedAt) {
		t.Errorf("UpdatedAt went back from %v to %v", orig.UpdatedAt, updated.UpdatedAt)
	}
	want := u
	want.EmailVerifiedAt = time.Date(2025, 6, 1, 19, 0, 0, 1000, time.UTC)
	want.AppMetadata = map[string]any{}
	want.CreatedAt, want.UpdatedAt, want.DeletedAt = orig.CreatedAt, updated.UpdatedAt, time.Time{}
	if diff := cmp.Diff(want, updated); diff != "" {
		t.Errorf("UpdateUser returned (-want +got):\n%s", diff)
	}
	got, err := s.GetUser(ctx, orig.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetUser after UpdateUser (-want +got):\n%s", diff)
	}
	if _, err := s.GetUserByEmail(ctx, orig.EmailNormalized); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old email still finds the user: err = %v", err)
	}
	if got, err := s.GetUserByEmail(ctx, "ada@new.example"); err != nil || got.ID != orig.ID {
		t.Errorf("GetUserByEmail(new address) = %s, %v; want %s", got.ID, err, orig.ID)
	}

	// An email clash leaves the user unchanged.
	clash := got
	clash.EmailNormalized, clash.Name = other.EmailNormalized, "changed"
	if _, err := s.UpdateUser(ctx, clash); !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateUser to another user's email: err = %v, want ErrConflict", err)
	}
	if after, err := s.GetUser(ctx, orig.ID); err != nil || !cmp.Equal(got, after) {
		t.Errorf("after a conflicting update GetUser = %+v, %v; want it unchanged", after, err)
	}
	// Changing only the display case of the own address is no clash.
	same := got
	same.Email = "Ada@New.Example"
	if _, err := s.UpdateUser(ctx, same); err != nil {
		t.Errorf("UpdateUser keeping its own email: %v", err)
	}

	for _, id := range []string{uuid.NewString(), "not-a-uuid", ""} {
		missing := newUser("missing@example.com")
		missing.ID = id
		if _, err := s.UpdateUser(ctx, missing); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateUser(ID %q) err = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.GetUserByEmail(ctx, "missing@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser of a missing user created one: err = %v", err)
	}
}

func testUserEmailUnique(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := mustCreateUser(t, s, newUser("shared@example.com"))

	dup := newUser("shared@example.com")
	dup.Email = "SHARED@Example.com"
	if _, err := s.CreateUser(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser with a taken email: err = %v, want ErrConflict", err)
	}
	sameID := newUser("different@example.com")
	sameID.ID = strings.ToUpper(first.ID)
	if _, err := s.CreateUser(ctx, sameID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser with a taken ID: err = %v, want ErrConflict", err)
	}
	mustCreateUser(t, s, newUser("shared@example.org"))

	deletedAt := time.Date(2025, 5, 5, 5, 5, 5, 555555555, time.UTC)
	if err := s.SoftDeleteUser(ctx, first.ID, deletedAt); err != nil {
		t.Fatalf("SoftDeleteUser: %v", err)
	}
	if n := count(t, s, fmt.Sprintf("SELECT count(*) FROM users WHERE id = '%s' AND deleted_at IS NOT NULL", first.ID)); n != 1 {
		t.Errorf("soft-deleted row: found %d, want it kept with deleted_at set", n)
	}
	// Deleted users are invisible to every method.
	if _, err := s.GetUser(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(deleted) err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetUserForUpdate(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUserForUpdate(deleted) err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetUserByEmail(ctx, "shared@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUserByEmail(deleted) err = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateUser(ctx, first); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser(deleted) err = %v, want ErrNotFound", err)
	}
	if err := s.SoftDeleteUser(ctx, first.ID, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SoftDeleteUser twice: err = %v, want ErrNotFound", err)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if err := s.SoftDeleteUser(ctx, id, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SoftDeleteUser(%q) err = %v, want ErrNotFound", id, err)
		}
	}
	users, _, err := s.ListUsers(ctx, store.UserFilter{})
	if err != nil || len(users) != 1 || users[0].EmailNormalized != "shared@example.org" {
		t.Errorf("ListUsers after soft delete = %+v, %v; want only shared@example.org", users, err)
	}

	// The address is free again, for a new user and for an update.
	second := mustCreateUser(t, s, newUser("shared@example.com"))
	if got, err := s.GetUserByEmail(ctx, "shared@example.com"); err != nil || got.ID != second.ID {
		t.Errorf("GetUserByEmail after reuse = %s, %v; want %s", got.ID, err, second.ID)
	}
	if err := s.SoftDeleteUser(ctx, second.ID, time.Time{}); err != nil {
		t.Fatalf("SoftDeleteUser with zero time: %v", err)
	}
	third := mustCreateUser(t, s, newUser("third@example.com"))
	third.EmailNormalized = "shared@example.com"
	if _, err := s.UpdateUser(ctx, third); err != nil {
		t.Errorf("UpdateUser to the address of two deleted users: %v", err)
	}
}

// sortUsers orders users the way ListUsers must for sort.
func sortUsers(users []store.User, sortBy string) []store.User {
	out := append([]store.User(nil), users...)
	desc := strings.HasPrefix(sortBy, "-")
	byEmail := strings.TrimPrefix(sortBy, "-") == "email"
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if desc {
			a, b = b, a
		}
		if byEmail && a.EmailNormalized != b.EmailNormalized {
			return a.EmailNormalized < b.EmailNormalized
		}
		if !byEmail && !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	return out
}

// listAllUsers pages through every user matching f and fails on a page
// that is too big, an empty page with a cursor or a repeated cursor.
func listAllUsers(t *testing.T, s store.Store, f store.UserFilter) []store.User {
	t.Helper()
	var all []store.User
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
		users, next, err := s.ListUsers(context.Background(), f)
		if err != nil {
			t.Fatalf("ListUsers(%+v) page %d: %v", f, page, err)
		}
		if f.Limit > 0 && len(users) > f.Limit {
			t.Fatalf("page %d has %d users, limit %d", page, len(users), f.Limit)
		}
		all = append(all, users...)
		if next == "" {
			return all
		}
		if len(users) == 0 {
			t.Fatalf("page %d is empty but has a next cursor", page)
		}
		if seen[next] {
			t.Fatalf("cursor %q handed out twice", next)
		}
		seen[next] = true
		f.Cursor = next
	}
}

func testListUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	emails := []string{
		"alice@example.com", "bob@example.com", "carol@example.org", "dave@example.net",
		"erin@sub.example.com", "frank@example.com", "grace@example.org", "heidi@example.com",
		"ivan@example.com", "judy@example.org", "mallory@example.com", "niaj@example.com",
		"olivia@example.com", "peggy@example.org", "rupert@example.com", "sybil@example.com",
		"trent@example.com", "victor@example.com", "walter@example.com", "zoe@example.com",
		// LIKE wildcards and the escape character are ordinary characters
		// of a filter.
		"100%off@example.com", "a_b@example.com", "axb@example.com", `back\slash@example.com`,
		"tie1@example.com", "tie2@example.com", "tie3@example.com", "tie4@example.com",
		"émile@example.com", "deleted@example.com",
	}
	statuses := []store.UserStatus{store.UserActive, store.UserActive, store.UserDisabled, store.UserLocked}
	var created []store.User
	for i, email := range emails {
		u := newUser(email)
		u.Email = strings.ToUpper(email) // the display address is not what the filter looks at
		u.Status = statuses[i%len(statuses)]
		u.IsAdmin = i%5 == 0
		created = append(created, mustCreateUser(t, s, u))
	}
	deleted := created[len(created)-1]
	if err := s.SoftDeleteUser(ctx, deleted.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Users created within the same microsecond sort by ID; make sure some
	// do, whatever the clock's resolution.
	if err := rawExec(t, s).RawExec(ctx, "UPDATE users SET created_at = (SELECT min(created_at) FROM users WHERE email_normalized LIKE 'tie%') WHERE email_normalized LIKE 'tie%'"); err != nil {
		t.Fatal(err)
	}
	var users []store.User
	for _, u := range created[:len(created)-1] {
		got, err := s.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, got)
	}

	match := func(f store.UserFilter) []store.User {
		var out []store.User
		for _, u := range users {
			if strings.Contains(u.EmailNormalized, strings.ToLower(f.Email)) && (f.Status == "" || u.Status == f.Status) && (!f.AdminsOnly || u.IsAdmin) {
				out = append(out, u)
			}
		}
		return sortUsers(out, f.Sort)
	}
	filters := []struct {
		name string
		f    store.UserFilter
		want int // matches, to catch a filter that matches everything or nothing
	}{
		{"all", store.UserFilter{}, 29},
		{"email substring", store.UserFilter{Email: "example.org"}, 4},
		{"email case-insensitive", store.UserFilter{Email: "EXAMPLE.ORG"}, 4},
		{"email non-ASCII", store.UserFilter{Email: "émile"}, 1},
		{"email non-ASCII upper-case", store.UserFilter{Email: "ÉMILE@"}, 1},
		{"percent is literal", store.UserFilter{Email: "%"}, 1},
		{"underscore is literal", store.UserFilter{Email: "a_b"}, 1},
		{"lone underscore", store.UserFilter{Email: "_"}, 1},
		{"backslash is literal", store.UserFilter{Email: `\`}, 1},
		{"status", store.UserFilter{Status: store.UserDisabled}, 7},
		{"email and status", store.UserFilter{Email: "example.com", Status: store.UserActive}, 13},
		{"admins", store.UserFilter{AdminsOnly: true}, 6},
		{"active admins", store.UserFilter{AdminsOnly: true, Status: store.UserActive}, 4},
		{"deleted user", store.UserFilter{Email: "deleted"}, 0},
		{"no match", store.UserFilter{Email: "nobody"}, 0},
	}
	for _, tc := range filters {
		for _, sortBy := range []string{"", "created_at", "-created_at", "email", "-email"} {
			limits := []int{0, 3} // 3 splits the four users created at the same instant
			if tc.f == (store.UserFilter{}) {
				limits = append(limits, 1)
			}
			for _, limit := range limits {
				f := tc.f
				f.Sort, f.Limit = sortBy, limit
				t.Run(fmt.Sprintf("%s/sort %q/limit %d", tc.name, sortBy, limit), func(t *testing.T) {
					want := match(f)
					if len(want) != tc.want {
						t.Fatalf("test bug: %d users match, want %d", len(want), tc.want)
					}
					got := listAllUsers(t, s, f)
					if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("pages concatenated (-want +got):\n%s", diff)
					}
				})
			}
		}
	}

	// A page that ends exactly on the last user has no next cursor.
	page, next, err := s.ListUsers(ctx, store.UserFilter{Limit: len(users)})
	if err != nil || len(page) != len(users) || next != "" {
		t.Errorf("limit %d of %d: %d users, next %q, err %v; want all, no cursor", len(users), len(users), len(page), next, err)
	}

	// Keyset pages stay stable when users arrive or leave between requests.
	for _, sortBy := range []string{"-created_at", "email"} {
		want := sortUsers(users, sortBy)
		first, next, err := s.ListUsers(ctx, store.UserFilter{Sort: sortBy, Limit: 10})
		if err != nil || next == "" {
			t.Fatalf("first page: next %q, err %v", next, err)
		}
		// Sorts before everything already listed, in both orders.
		newcomer := mustCreateUser(t, s, newUser("aaa-"+strings.TrimPrefix(sortBy, "-")+"@example.com"))
		rest := listAllUsers(t, s, store.UserFilter{Sort: sortBy, Limit: 10, Cursor: next})
		if diff := cmp.Diff(want, append(first, rest...)); diff != "" {
			t.Errorf("sort %s: pages with a user created in between (-want +got):\n%s", sortBy, diff)
		}
		if err := s.SoftDeleteUser(ctx, newcomer.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// The user a cursor points at may be deleted before the next page.
	want := sortUsers(users, "email")
	first, next, err := s.ListUsers(ctx, store.UserFilter{Sort: "email", Limit: 3})
	if err != nil || next == "" {
		t.Fatalf("first page: next %q, err %v", next, err)
	}
	if err := s.SoftDeleteUser(ctx, first[2].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	rest := listAllUsers(t, s, store.UserFilter{Sort: "email", Limit: 3, Cursor: next})
	if diff := cmp.Diff(want, append(first, rest...)); diff != "" {
		t.Errorf("pages with the cursor's user deleted in between (-want +got):\n%s", diff)
	}
}

func testListUsersLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 205
	err := s.InTx(ctx, func(tx store.Store) error {
		for i := range n {
			if _, err := tx.CreateUser(ctx, newUser(fmt.Sprintf("user%03d@example.com", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("creating %d users: %v", n, err)
	}
	for _, tc := range []struct{ limit, want int }{
		{0, 50},
		{-1, 50},
		{7, 7},
		{200, 200},
		{201, 200},
		{1 << 30, 200},
	} {
		page, next, err := s.ListUsers(ctx, store.UserFilter{Limit: tc.limit})
		if err != nil || len(page) != tc.want || next == "" {
			t.Errorf("Limit %d: %d users, next %q, err %v; want %d and a cursor", tc.limit, len(page), next, err, tc.want)
		}
	}
	if all := listAllUsers(t, s, store.UserFilter{Limit: 1000, Sort: "-email"}); len(all) != n {
		t.Errorf("listed %d users, want %d", len(all), n)
	}
}

func testListUsersInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 3 {
		mustCreateUser(t, s, newUser(fmt.Sprintf("u%d@example.com", i)))
	}
	for _, f := range []store.UserFilter{
		{Sort: "name"},
		{Sort: "-"},
		{Sort: "+email"},
		{Sort: "Email"},
		{Sort: "created_at; DROP TABLE users"},
		{Status: "banned"},
	} {
		if _, _, err := s.ListUsers(ctx, f); err == nil || errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ListUsers(%+v): err = %v, want a validation error", f, err)
		}
	}

	_, byCreated, err := s.ListUsers(ctx, store.UserFilter{Limit: 1})
	if err != nil || byCreated == "" {
		t.Fatalf("ListUsers: next %q, err %v", byCreated, err)
	}
	_, byEmail, err := s.ListUsers(ctx, store.UserFilter{Limit: 1, Sort: "email"})
	if err != nil || byEmail == "" {
		t.Fatalf("ListUsers: next %q, err %v", byEmail, err)
	}
	// A cursor stays valid across the spellings of the same sort.
	if _, _, err := s.ListUsers(ctx, store.UserFilter{Limit: 1, Sort: "created_at", Cursor: byCreated}); err != nil {
		t.Errorf("cursor of sort \"\" with sort created_at: %v", err)
	}
	mustAppend(t, s, store.AuditEvent{Action: "a"})
	mustAppend(t, s, store.AuditEvent{Action: "b"})
	_, auditCursor, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 1})
	if err != nil || auditCursor == "" {
		t.Fatalf("ListAuditEvents: next %q, err %v", auditCursor, err)
	}
	if _, _, err := s.ListAuditEvents(ctx, store.AuditFilter{Cursor: byCreated}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("user cursor given to ListAuditEvents: err = %v, want ErrInvalidCursor", err)
	}

	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	id := uuid.NewString()
	for _, tc := range []struct {
		name, sort, cursor string
	}{
		{"garbage", "", "!!!"},
		{"audit cursor", "", auditCursor},
		{"other sort", "-created_at", byCreated},
		{"created_at cursor for email", "email", byCreated},
		{"email cursor for created_at", "", byEmail},
		{"email cursor for -email", "-email", byEmail},
		{"unknown version", "", b64("u2.created_at." + id + ".12345")},
		{"bad id", "", b64("u1.created_at.not-a-uuid.12345")},
		{"upper-case id", "", b64("u1.created_at." + strings.ToUpper(id) + ".12345")},
		{"bad time", "", b64("u1.created_at." + id + ".noon")},
		{"time out of range", "", b64("u1.created_at." + id + ".99999999999999999999")},
		{"missing value", "", b64("u1.created_at." + id)},
		{"empty email", "email", b64("u1.email." + id + ".")},
		{"NUL in email", "email", b64("u1.email." + id + ".a\x00b")},
		{"invalid UTF-8 email", "email", b64("u1.email." + id + ".a\xffb")},
		{"padded", "", base64.URLEncoding.EncodeToString([]byte("u1.created_at." + id + ".12345"))},
	} {
		_, _, err := s.ListUsers(ctx, store.UserFilter{Sort: tc.sort, Cursor: tc.cursor})
		if !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("%s: cursor %q with sort %q: err = %v, want ErrInvalidCursor", tc.name, tc.cursor, tc.sort, err)
		}
	}
	// Well-formed cursors of the right sort work even when they point at no
	// user.
	for _, tc := range []struct{ sort, cursor string }{
		{"email", b64("u1.email." + id + ".a.b.c@example.com")},
		{"-created_at", b64("u1.-created_at." + id + ".0")},
	} {
		if _, _, err := s.ListUsers(ctx, store.UserFilter{Sort: tc.sort, Cursor: tc.cursor}); err != nil {
			t.Errorf("cursor %q with sort %q: %v", tc.cursor, tc.sort, err)
		}
	}
}

// Rolling back 0002 removes the user tables and nothing else; applying it
// again brings them back.
func testUsersMigrationDown(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := s.Migrator()
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	status, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) < 2 || status[1].Version != 2 || status[1].Name != "users" {
		t.Fatalf("Status = %+v, want migration 2 named users", status)
	}
	for len(status) > 2 { // later migrations first
		if _, err := m.Down(ctx); err != nil {
			t.Fatal(err)
		}
		status = status[:len(status)-1]
	}
	// A row in the table as 0002 made it (CreateUser writes the columns
	// later migrations added).
	created := "0"
	if s.Dialect() == store.DialectPostgres {
		created = "now()"
	}
	if err := rawExec(t, s).RawExec(ctx, "INSERT INTO users (id, email, email_normalized, created_at, updated_at) VALUES ('"+
		uuid.NewString()+"', 'before-down@example.com', 'before-down@example.com', "+created+", "+created+")"); err != nil {
		t.Fatalf("insert a user at 0002: %v", err)
	}
	if got, err := m.Down(ctx); err != nil || got.Version != 2 {
		t.Fatalf("Down = %+v, %v; want version 2", got, err)
	}
	if _, err := s.CreateUser(ctx, newUser("after-down@example.com")); err == nil {
		t.Error("CreateUser succeeded after 0002_users was rolled back")
	}
	for _, table := range []string{"users", "identities", "one_time_tokens"} {
		if err := rawExec(t, s).RawExec(ctx, "CREATE TABLE "+table+" (x INTEGER)"); err != nil {
			t.Errorf("table %s survived the down migration: %v", table, err)
		}
		if err := rawExec(t, s).RawExec(ctx, "DROP TABLE "+table); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, s, store.AuditEvent{Action: "test.after_down"})
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("Up again: %v", err)
	}
	mustCreateUser(t, s, newUser("before-down@example.com"))
}
