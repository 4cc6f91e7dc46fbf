package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runIdentities(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testIdentityRoundTrip(t, migrated(t)) })
	t.Run("Invalid", func(t *testing.T) { testIdentityInvalid(t, migrated(t)) })
	t.Run("Duplicates", func(t *testing.T) { testIdentityDuplicates(t, migrated(t)) })
	t.Run("ListOrder", func(t *testing.T) { testIdentityListOrder(t, migrated(t)) })
	t.Run("Delete", func(t *testing.T) { testIdentityDelete(t, migrated(t)) })
	t.Run("ParallelLink", func(t *testing.T) { testIdentityParallelLink(t, migrated(t)) })
	t.Run("InTx", func(t *testing.T) { testIdentityInTx(t, migrated(t)) })
	t.Run("Cascades", func(t *testing.T) { testIdentityCascades(t, migrated(t)) })
}

func mustCreateIdentity(t *testing.T, s store.Store, i store.Identity) store.Identity {
	t.Helper()
	created, err := s.CreateIdentity(context.Background(), i)
	if err != nil {
		t.Fatalf("CreateIdentity(%s, %s): %v", i.Provider, i.Subject, err)
	}
	return created
}

func mustGetIdentity(t *testing.T, s store.Store, provider, subject string) store.Identity {
	t.Helper()
	i, err := s.GetIdentity(context.Background(), provider, subject)
	if err != nil {
		t.Fatalf("GetIdentity(%s, %s): %v", provider, subject, err)
	}
	return i
}

func identityIDs(t *testing.T, s store.Store, userID string) []string {
	t.Helper()
	list, err := s.ListIdentities(context.Background(), userID)
	if err != nil {
		t.Fatalf("ListIdentities(%s): %v", userID, err)
	}
	ids := make([]string, 0, len(list))
	for _, i := range list {
		ids = append(ids, i.ID)
	}
	return ids
}

func testIdentityRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("identity@example.com"))
	india := time.FixedZone("IST", 5*3600+30*60)
	in := store.Identity{
		ID:        strings.ToUpper(uuid.NewString()),
		UserID:    strings.ToUpper(user.ID),
		Provider:  "google",
		Subject:   "110169484474386276334",
		Email:     "Ada@Example.com",
		LinkedAt:  time.Date(2025, 5, 1, 12, 0, 0, 123456789, india),
		CreatedAt: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), // ignored
		UpdatedAt: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), // ignored
	}
	created, err := s.CreateIdentity(ctx, in)
	if err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	checkNow(t, "CreatedAt", created.CreatedAt)
	want := store.Identity{
		ID:        strings.ToLower(in.ID),
		UserID:    user.ID,
		Provider:  "google",
		Subject:   in.Subject,
		Email:     in.Email,
		LinkedAt:  time.Date(2025, 5, 1, 6, 30, 0, 123456000, time.UTC),
		CreatedAt: created.CreatedAt,
		UpdatedAt: created.CreatedAt,
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("CreateIdentity returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustGetIdentity(t, s, "google", in.Subject)); diff != "" {
		t.Errorf("GetIdentity (-want +got):\n%s", diff)
	}
	list, err := s.ListIdentities(ctx, strings.ToUpper(user.ID))
	if err != nil {
		t.Fatalf("ListIdentities: %v", err)
	}
	if diff := cmp.Diff([]store.Identity{want}, list); diff != "" {
		t.Errorf("ListIdentities (-want +got):\n%s", diff)
	}

	// Defaults: a UUIDv7, LinkedAt now, an empty email as NULL.
	minimal := mustCreateIdentity(t, s, store.Identity{UserID: user.ID, Provider: "github", Subject: "583231"})
	if id, err := uuid.Parse(minimal.ID); err != nil || id.Version() != 7 || id.String() != minimal.ID {
		t.Errorf("generated ID = %q, want a canonical UUIDv7", minimal.ID)
	}
	checkNow(t, "minimal CreatedAt", minimal.CreatedAt)
	wantMinimal := store.Identity{
		ID: minimal.ID, UserID: user.ID, Provider: "github", Subject: "583231",
		LinkedAt: minimal.CreatedAt, CreatedAt: minimal.CreatedAt, UpdatedAt: minimal.CreatedAt,
	}
	if diff := cmp.Diff(wantMinimal, mustGetIdentity(t, s, "github", "583231")); diff != "" {
		t.Errorf("minimal identity (-want +got):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM identities WHERE id = '"+minimal.ID+"' AND email IS NULL"); n != 1 {
		t.Error("empty Email of an identity not stored as NULL")
	}

	// Subjects and providers match exactly.
	for _, tc := range []struct{ provider, subject string }{
		{"google", strings.ToUpper("x" + in.Subject)},
		{"Google", in.Subject},
		{"google", in.Subject + " "},
		{"github", in.Subject},
		{"", in.Subject},
		{"google", ""},
		{"google", "nul\x00"},
		{"google", "\xff"},
	} {
		if _, err := s.GetIdentity(ctx, tc.provider, tc.subject); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetIdentity(%q, %q) err = %v, want ErrNotFound", tc.provider, tc.subject, err)
		}
	}
}

func testIdentityInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("invalid-identity@example.com"))
	valid := store.Identity{UserID: user.ID, Provider: "google", Subject: "s-1"}

	for _, tc := range []struct {
		name   string
		change func(i *store.Identity)
	}{
		{"no provider", func(i *store.Identity) { i.Provider = "" }},
		{"no subject", func(i *store.Identity) { i.Subject = "" }},
		{"NUL in subject", func(i *store.Identity) { i.Subject = "a\x00b" }},
		{"provider not UTF-8", func(i *store.Identity) { i.Provider = "\xff" }},
		{"email with NUL", func(i *store.Identity) { i.Email = "a\x00@example.com" }},
		{"ID not a UUID", func(i *store.Identity) { i.ID = "identity-1" }},
	} {
		i := valid
		tc.change(&i)
		_, err := s.CreateIdentity(ctx, i)
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: CreateIdentity err = %v, want a validation error", tc.name, err)
		}
	}
	for _, userID := range []string{uuid.NewString(), "not-a-uuid", ""} {
		i := valid
		i.UserID = userID
		if _, err := s.CreateIdentity(ctx, i); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateIdentity for user %q: err = %v, want ErrNotFound", userID, err)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM identities"); n != 0 {
		t.Errorf("%d identities stored by failed calls, want none", n)
	}
	mustCreateIdentity(t, s, valid)
}

func testIdentityDuplicates(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada-dup@example.com"))
	bob := mustCreateUser(t, s, newUser("bob-dup@example.com"))
	first := mustCreateIdentity(t, s, store.Identity{UserID: ada.ID, Provider: "google", Subject: "42", Email: "ada@example.com"})

	for _, tc := range []struct {
		name string
		i    store.Identity
	}{
		{"another user", store.Identity{UserID: bob.ID, Provider: "google", Subject: "42"}},
		{"the same user", store.Identity{UserID: ada.ID, Provider: "google", Subject: "42", Email: "new@example.com"}},
		{"taken ID", store.Identity{ID: strings.ToUpper(first.ID), UserID: bob.ID, Provider: "gitlab", Subject: "1"}},
	} {
		if _, err := s.CreateIdentity(ctx, tc.i); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: CreateIdentity err = %v, want ErrConflict", tc.name, err)
		}
	}
	if diff := cmp.Diff(first, mustGetIdentity(t, s, "google", "42")); diff != "" {
		t.Errorf("identity changed by conflicting calls (-before +after):\n%s", diff)
	}
	if ids := identityIDs(t, s, bob.ID); len(ids) != 0 {
		t.Errorf("conflicting calls linked %v to bob", ids)
	}

	// The same subject at another provider, or another subject at the same
	// provider, is another identity.
	github := mustCreateIdentity(t, s, store.Identity{UserID: bob.ID, Provider: "github", Subject: "42"})
	other := mustCreateIdentity(t, s, store.Identity{UserID: bob.ID, Provider: "google", Subject: "43"})
	if got := mustGetIdentity(t, s, "github", "42"); got.ID != github.ID || got.UserID != bob.ID {
		t.Errorf("GetIdentity(github, 42) = %+v, want bob's %s", got, github.ID)
	}
	if got := mustGetIdentity(t, s, "google", "43"); got.ID != other.ID {
		t.Errorf("GetIdentity(google, 43) = %+v, want %s", got, other.ID)
	}
	if got := mustGetIdentity(t, s, "google", "42"); got.ID != first.ID || got.UserID != ada.ID {
		t.Errorf("GetIdentity(google, 42) = %+v, want ada's %s", got, first.ID)
	}
}

func testIdentityListOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("list-identity@example.com"))
	other := mustCreateUser(t, s, newUser("other-list-identity@example.com"))
	base := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	link := func(provider string, linkedAt time.Time, id string) store.Identity {
		return mustCreateIdentity(t, s, store.Identity{ID: id, UserID: user.ID, Provider: provider, Subject: "sub", LinkedAt: linkedAt})
	}
	// Created in an order that is neither LinkedAt's nor the IDs'.
	late := link("late", base.Add(2*time.Hour), "")
	early := link("early", base, "")
	tieB := link("tie-b", base.Add(time.Hour), "bbbbbbbb-0000-4000-8000-000000000000")
	tieA := link("tie-a", base.Add(time.Hour), "aaaaaaaa-0000-4000-8000-000000000000")
	mustCreateIdentity(t, s, store.Identity{UserID: other.ID, Provider: "first", Subject: "sub", LinkedAt: base.Add(-time.Hour)})

	want := []string{early.ID, tieA.ID, tieB.ID, late.ID}
	if diff := cmp.Diff(want, identityIDs(t, s, user.ID)); diff != "" {
		t.Errorf("ListIdentities order (-want +got):\n%s", diff)
	}
	if ids := identityIDs(t, s, other.ID); len(ids) != 1 {
		t.Errorf("ListIdentities(other) = %v, want one identity", ids)
	}
	for _, userID := range []string{uuid.NewString(), "not-a-uuid", ""} {
		if list, err := s.ListIdentities(ctx, userID); err != nil || len(list) != 0 {
			t.Errorf("ListIdentities(%q) = %+v, %v; want none", userID, list, err)
		}
	}
}

func testIdentityDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	owner := mustCreateUser(t, s, newUser("owner-identity@example.com"))
	other := mustCreateUser(t, s, newUser("other-identity@example.com"))
	i := mustCreateIdentity(t, s, store.Identity{UserID: owner.ID, Provider: "google", Subject: "owned"})
	kept := mustCreateIdentity(t, s, store.Identity{UserID: owner.ID, Provider: "github", Subject: "owned"})

	for _, tc := range []struct{ name, userID, id string }{
		{"another user", other.ID, i.ID},
		{"unknown user", uuid.NewString(), i.ID},
		{"unknown identity", owner.ID, uuid.NewString()},
		{"user ID not a UUID", "owner", i.ID},
		{"identity ID not a UUID", owner.ID, "identity"},
	} {
		if err := s.DeleteIdentity(ctx, tc.userID, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: DeleteIdentity err = %v, want ErrNotFound", tc.name, err)
		}
	}
	if diff := cmp.Diff(i, mustGetIdentity(t, s, "google", "owned")); diff != "" {
		t.Errorf("identity changed by calls naming another user (-before +after):\n%s", diff)
	}

	if err := s.DeleteIdentity(ctx, strings.ToUpper(owner.ID), strings.ToUpper(i.ID)); err != nil {
		t.Fatalf("DeleteIdentity of the owner: %v", err)
	}
	if _, err := s.GetIdentity(ctx, "google", "owned"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetIdentity after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteIdentity(ctx, owner.ID, i.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteIdentity: err = %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff([]string{kept.ID}, identityIDs(t, s, owner.ID)); diff != "" {
		t.Errorf("identities left after delete (-want +got):\n%s", diff)
	}
	// Unlinked, the external account can be linked again, to anyone.
	relinked := mustCreateIdentity(t, s, store.Identity{UserID: other.ID, Provider: "google", Subject: "owned"})
	if got := mustGetIdentity(t, s, "google", "owned"); got.ID != relinked.ID || got.UserID != other.ID {
		t.Errorf("GetIdentity after relinking = %+v, want %s of the other user", got, relinked.ID)
	}
}

// Concurrent links of one external account to different users: exactly
// one wins, the others get ErrConflict.
func testIdentityParallelLink(t *testing.T, s store.Store) {
	ctx := context.Background()
	const goroutines = 10
	users := make([]store.User, goroutines)
	for n := range users {
		users[n] = mustCreateUser(t, s, newUser(fmt.Sprintf("parallel-link-%d@example.com", n)))
	}
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		created = make([]store.Identity, goroutines)
		errs    = make([]error, goroutines)
	)
	for n := range goroutines {
		wg.Go(func() {
			<-start
			created[n], errs[n] = s.CreateIdentity(ctx, store.Identity{UserID: users[n].ID, Provider: "google", Subject: "contested"})
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for n, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("goroutines %d and %d both linked the identity", winner, n)
		case err == nil:
			winner = n
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("goroutine %d: err = %v, want nil or ErrConflict", n, err)
		}
	}
	if winner < 0 {
		t.Fatal("no goroutine linked the identity")
	}
	got := mustGetIdentity(t, s, "google", "contested")
	if got.ID != created[winner].ID || got.UserID != users[winner].ID {
		t.Errorf("GetIdentity = %+v, want the winner's %+v", got, created[winner])
	}
	if n := count(t, s, "SELECT count(*) FROM identities"); n != 1 {
		t.Errorf("%d identities stored, want 1", n)
	}
}

func testIdentityInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("tx-identity@example.com"))
	other := mustCreateUser(t, s, newUser("other-tx-identity@example.com"))
	existing := mustCreateIdentity(t, s, store.Identity{UserID: user.ID, Provider: "google", Subject: "existing"})

	err := s.InTx(ctx, func(tx store.Store) error {
		i, err := tx.CreateIdentity(ctx, store.Identity{UserID: user.ID, Provider: "github", Subject: "in-tx"})
		if err != nil {
			return err
		}
		if got, err := tx.GetIdentity(ctx, "github", "in-tx"); err != nil || got.ID != i.ID {
			return fmt.Errorf("GetIdentity in the transaction = %+v, %v; want %s", got, err, i.ID)
		}
		// A conflict leaves the transaction usable: the caller can look up
		// who holds the identity.
		if _, err := tx.CreateIdentity(ctx, store.Identity{UserID: other.ID, Provider: "google", Subject: "existing"}); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("conflicting CreateIdentity in the transaction: err = %v, want ErrConflict", err)
		}
		if got, err := tx.GetIdentity(ctx, "google", "existing"); err != nil || got.UserID != user.ID {
			return fmt.Errorf("GetIdentity after a conflict in the transaction = %+v, %v", got, err)
		}
		if list, err := tx.ListIdentities(ctx, user.ID); err != nil || len(list) != 2 {
			return fmt.Errorf("ListIdentities in the transaction = %d identities, %v; want 2", len(list), err)
		}
		if err := tx.DeleteIdentity(ctx, user.ID, existing.ID); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx = %v, want the rollback error", err)
	}
	if diff := cmp.Diff([]string{existing.ID}, identityIDs(t, s, user.ID)); diff != "" {
		t.Errorf("identities after rollback (-want +got):\n%s", diff)
	}

	var linked store.Identity
	err = s.InTx(ctx, func(tx store.Store) error {
		var err error
		linked, err = tx.CreateIdentity(ctx, store.Identity{UserID: other.ID, Provider: "github", Subject: "committed"})
		return err
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if diff := cmp.Diff(linked, mustGetIdentity(t, s, "github", "committed")); diff != "" {
		t.Errorf("identity linked in a committed transaction (-in tx +after):\n%s", diff)
	}
}

func testIdentityCascades(t *testing.T, s store.Store) {
	ctx := context.Background()
	gone := mustCreateUser(t, s, newUser("gone-identity@example.com"))
	kept := mustCreateUser(t, s, newUser("kept-identity@example.com"))
	for _, u := range []store.User{gone, kept} {
		mustCreateIdentity(t, s, store.Identity{UserID: u.ID, Provider: "google", Subject: u.ID})
		mustCreateIdentity(t, s, store.Identity{UserID: u.ID, Provider: "github", Subject: u.ID})
	}
	rows := func(userID string) int64 {
		t.Helper()
		return count(t, s, "SELECT count(*) FROM identities WHERE user_id = '"+userID+"'")
	}

	if err := s.SoftDeleteUser(ctx, gone.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := rows(gone.ID); n != 2 {
		t.Errorf("after a soft delete: %d identities, want both kept", n)
	}
	if err := rawExec(t, s).RawExec(ctx, "DELETE FROM users WHERE id = '"+gone.ID+"'"); err != nil {
		t.Fatalf("delete user row: %v", err)
	}
	if n := rows(gone.ID); n != 0 {
		t.Errorf("after removing the user's row: %d identities, want none", n)
	}
	if _, err := s.GetIdentity(ctx, "google", gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetIdentity of a removed user's identity: err = %v, want ErrNotFound", err)
	}
	if n := rows(kept.ID); n != 2 {
		t.Errorf("another user's identities after removing a user: %d, want 2", n)
	}
}
