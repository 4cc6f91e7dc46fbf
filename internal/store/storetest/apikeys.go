package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runAPIKeys(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("UserKind", func(t *testing.T) { testUserKind(t, migrated(t)) })
	t.Run("ServiceAccounts", func(t *testing.T) { testServiceAccounts(t, migrated(t)) })
	t.Run("KeyRoundTrip", func(t *testing.T) { testAPIKeyRoundTrip(t, migrated(t)) })
	t.Run("KeyErrors", func(t *testing.T) { testAPIKeyErrors(t, migrated(t)) })
	t.Run("KeyByHash", func(t *testing.T) { testAPIKeyByHash(t, migrated(t)) })
	t.Run("KeyList", func(t *testing.T) { testAPIKeyList(t, migrated(t)) })
	t.Run("RevokeAndShorten", func(t *testing.T) { testAPIKeyRevokeShorten(t, migrated(t)) })
	t.Run("Usage", func(t *testing.T) { testAPIKeyUsage(t, migrated(t)) })
	t.Run("Concurrent", func(t *testing.T) { testAPIKeyConcurrent(t, migrated(t)) })
	t.Run("Cascades", func(t *testing.T) { testAPIKeyCascades(t, migrated(t)) })
	t.Run("InTx", func(t *testing.T) { testAPIKeyInTx(t, migrated(t)) })
}

// keyHash returns a random 32-byte hash.
func keyHash() []byte {
	h := make([]byte, 32)
	_, _ = rand.Read(h)
	return h
}

func mustCreateAPIKey(t *testing.T, s store.Store, k store.APIKey) store.APIKey {
	t.Helper()
	if k.Kind == "" {
		k.Kind = store.APIKeyPersonal
	}
	if k.Hash == nil {
		k.Hash = keyHash()
	}
	if k.Prefix == "" {
		k.Prefix = "gh_pk_test"
	}
	created, err := s.CreateAPIKey(context.Background(), k)
	if err != nil {
		t.Fatalf("CreateAPIKey(%s): %v", k.Name, err)
	}
	return created
}

func apiKeyIDs(keys []store.APIKey) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

// testUserKind: ordinary users read back as UserKindHuman whether Kind was
// left empty or given; an unknown kind is refused; UpdateUser never
// changes the kind.
func testUserKind(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	if ada.Kind != store.UserKindHuman {
		t.Errorf("CreateUser without Kind: Kind = %q, want %q", ada.Kind, store.UserKindHuman)
	}
	bob := newUser("bob@example.com")
	bob.Kind = store.UserKindHuman
	bob = mustCreateUser(t, s, bob)
	for _, id := range []string{ada.ID, bob.ID} {
		u, err := s.GetUser(ctx, id)
		if err != nil || u.Kind != store.UserKindHuman {
			t.Errorf("GetUser(%s) = Kind %q, %v; want %q", id, u.Kind, err, store.UserKindHuman)
		}
	}
	if u, err := s.GetUserByEmail(ctx, "ada@example.com"); err != nil || u.Kind != store.UserKindHuman {
		t.Errorf("GetUserByEmail = Kind %q, %v", u.Kind, err)
	}
	odd := newUser("odd@example.com")
	odd.Kind = "robot"
	if _, err := s.CreateUser(ctx, odd); err == nil {
		t.Error("CreateUser with an unknown kind succeeded")
	}
	ada.Kind = store.UserKindService
	ada.Name = "Ada"
	if u, err := s.UpdateUser(ctx, ada); err != nil || u.Kind != store.UserKindHuman || u.Name != "Ada" {
		t.Errorf("UpdateUser with another Kind = %q %q, %v; want the kind kept", u.Kind, u.Name, err)
	}
}

func testServiceAccounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	other := mustCreateOrg(t, s, "Other", "other", nil)
	created := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	ci, err := s.CreateServiceAccount(ctx, store.ServiceAccount{
		Name: "ci", Description: "The CI pipeline", OrganizationID: acme.ID, CreatedAt: created, CreatedBy: "admin:1",
	})
	if err != nil {
		t.Fatalf("CreateServiceAccount: %v", err)
	}
	if v, err := uuid.Parse(ci.ID); err != nil || v.Version() != 7 {
		t.Errorf("ID %q is not a UUIDv7 (%v)", ci.ID, err)
	}
	want := store.ServiceAccount{ID: ci.ID, Name: "ci", Description: "The CI pipeline", OrganizationID: acme.ID,
		CreatedAt: micro(created), CreatedBy: "admin:1"}
	if diff := cmp.Diff(want, ci); diff != "" {
		t.Errorf("CreateServiceAccount (-want +got):\n%s", diff)
	}
	got, err := s.GetServiceAccount(ctx, ci.ID)
	if err != nil {
		t.Fatalf("GetServiceAccount: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetServiceAccount (-want +got):\n%s", diff)
	}
	u, err := s.GetUser(ctx, ci.ID)
	if err != nil {
		t.Fatalf("GetUser(service account): %v", err)
	}
	email := store.ServiceAccountEmail(ci.ID)
	if u.Kind != store.UserKindService || u.Email != email || u.EmailNormalized != email || u.Status != store.UserActive ||
		u.PasswordHash != "" || u.Name != "ci" {
		t.Errorf("service account's user = %+v", u)
	}
	if u, err := s.GetUserByEmail(ctx, email); err != nil || u.ID != ci.ID {
		t.Errorf("GetUserByEmail(synthetic address) = %s, %v", u.ID, err)
	}

	// A global one, with a given ID and CreatedAt now.
	gid := uuid.NewString()
	global, err := s.CreateServiceAccount(ctx, store.ServiceAccount{ID: gid, Name: "global"})
	if err != nil || global.ID != gid || global.OrganizationID != "" || global.Description != "" || global.CreatedBy != "" {
		t.Fatalf("CreateServiceAccount(global) = %+v, %v", global, err)
	}
	checkNow(t, "CreatedAt", global.CreatedAt)
	if _, err := s.CreateServiceAccount(ctx, store.ServiceAccount{ID: gid, Name: "again"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateServiceAccount(taken ID): err = %v, want ErrConflict", err)
	}
	third, err := s.CreateServiceAccount(ctx, store.ServiceAccount{Name: "third", OrganizationID: acme.ID, CreatedAt: created.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServiceAccount(ctx, store.ServiceAccount{Name: "elsewhere", OrganizationID: other.ID}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		sa   store.ServiceAccount
		want error
	}{
		{store.ServiceAccount{Name: "x", OrganizationID: uuid.NewString()}, store.ErrNotFound},
		{store.ServiceAccount{Name: "x", OrganizationID: "not-a-uuid"}, store.ErrNotFound},
	} {
		if _, err := s.CreateServiceAccount(ctx, c.sa); !errors.Is(err, c.want) {
			t.Errorf("CreateServiceAccount(%+v): err = %v, want %v", c.sa, err, c.want)
		}
	}
	if _, err := s.CreateServiceAccount(ctx, store.ServiceAccount{}); err == nil {
		t.Error("CreateServiceAccount without a name succeeded")
	}
	// Refused creations leave no user row behind.
	if n := count(t, s, "SELECT count(*) FROM users WHERE kind = 'service_account'"); n != 4 {
		t.Errorf("%d service account users, want 4", n)
	}

	ids := func(l []store.ServiceAccount) []string {
		var out []string
		for _, sa := range l {
			out = append(out, sa.ID)
		}
		return out
	}
	list, err := s.ListServiceAccounts(ctx, acme.ID)
	if err != nil || !cmp.Equal([]string{ci.ID, third.ID}, ids(list)) {
		t.Errorf("ListServiceAccounts(acme) = %v, %v; want ci, third", ids(list), err)
	}
	if len(list) > 0 {
		if diff := cmp.Diff(want, list[0]); diff != "" {
			t.Errorf("listed (-want +got):\n%s", diff)
		}
	}
	if all, err := s.ListServiceAccounts(ctx, ""); err != nil || len(all) != 4 {
		t.Errorf("ListServiceAccounts(\"\") = %v, %v; want 4", ids(all), err)
	}
	for _, org := range []string{uuid.NewString(), "not-a-uuid"} {
		if l, err := s.ListServiceAccounts(ctx, org); err != nil || len(l) != 0 {
			t.Errorf("ListServiceAccounts(%s) = %v, %v; want none", org, ids(l), err)
		}
	}

	// An ordinary user is no service account; a soft-deleted one is gone.
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	for _, id := range []string{ada.ID, uuid.NewString(), "not-a-uuid"} {
		if _, err := s.GetServiceAccount(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetServiceAccount(%s): err = %v, want ErrNotFound", id, err)
		}
	}
	if err := s.SoftDeleteUser(ctx, third.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetServiceAccount(ctx, third.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetServiceAccount(deleted): err = %v, want ErrNotFound", err)
	}
	if list, err := s.ListServiceAccounts(ctx, acme.ID); err != nil || !cmp.Equal([]string{ci.ID}, ids(list)) {
		t.Errorf("ListServiceAccounts(acme) after a deletion = %v, %v; want ci", ids(list), err)
	}
}

func testAPIKeyRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	zone := time.FixedZone("X", -7200)
	at := func(d time.Duration) time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 987654321, zone).Add(d) }
	full := store.APIKey{
		ID: uuid.NewString(), OwnerID: ada.ID, Kind: store.APIKeyPersonal, Name: "laptop", Prefix: "gh_pk_3Fz9Qa",
		Hash: keyHash(), Permissions: []string{"users:read", "apis:write", "audit:read"},
		AllowedCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}, RateLimitTier: "gold",
		ExpiresAt: at(90 * 24 * time.Hour), RevokedAt: at(time.Hour), RevokedReason: "lost",
		RotatedFrom: uuid.NewString(), CreatedAt: at(0), CreatedBy: "user:" + ada.ID,
		LastUsedAt: at(time.Minute), LastUsedIP: "192.0.2.1",
	}
	created, err := s.CreateAPIKey(ctx, full)
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	want := full
	for _, p := range []*time.Time{&want.ExpiresAt, &want.RevokedAt, &want.CreatedAt, &want.LastUsedAt} {
		*p = micro(*p)
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("CreateAPIKey (-want +got):\n%s", diff)
	}
	got, err := s.GetAPIKey(ctx, full.ID)
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetAPIKey (-want +got):\n%s", diff)
	}

	// The least: a service key with nil lists and no optional field; an
	// empty list reads back as nil like a nil one.
	for _, lists := range [][]string{nil, {}} {
		minimal, err := s.CreateAPIKey(ctx, store.APIKey{OwnerID: ada.ID, Kind: store.APIKeyService, Hash: keyHash(),
			Permissions: lists, AllowedCIDRs: lists})
		if err != nil {
			t.Fatalf("CreateAPIKey(minimal): %v", err)
		}
		if v, err := uuid.Parse(minimal.ID); err != nil || v.Version() != 7 {
			t.Errorf("ID %q is not a UUIDv7 (%v)", minimal.ID, err)
		}
		checkNow(t, "CreatedAt", minimal.CreatedAt)
		got, err := s.GetAPIKey(ctx, minimal.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Permissions != nil || got.AllowedCIDRs != nil || got.RateLimitTier != "" || !got.ExpiresAt.IsZero() ||
			!got.RevokedAt.IsZero() || got.RevokedReason != "" || got.RotatedFrom != "" || got.CreatedBy != "" ||
			!got.LastUsedAt.IsZero() || got.LastUsedIP != "" || got.Name != "" || got.Prefix != "" {
			t.Errorf("minimal key read back as %+v", got)
		}
		if diff := cmp.Diff(minimal, got); diff != "" {
			t.Errorf("GetAPIKey(minimal) (-created +got):\n%s", diff)
		}
	}
}

func testAPIKeyErrors(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	k := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID, Name: "first"})
	for _, c := range []struct {
		name string
		k    store.APIKey
		want error
	}{
		{"taken hash", store.APIKey{OwnerID: ada.ID, Kind: store.APIKeyPersonal, Hash: k.Hash}, store.ErrConflict},
		{"taken ID", store.APIKey{ID: k.ID, OwnerID: ada.ID, Kind: store.APIKeyPersonal, Hash: keyHash()}, store.ErrConflict},
		{"unknown owner", store.APIKey{OwnerID: uuid.NewString(), Kind: store.APIKeyPersonal, Hash: keyHash()}, store.ErrNotFound},
		{"owner not a UUID", store.APIKey{OwnerID: "ada", Kind: store.APIKeyPersonal, Hash: keyHash()}, store.ErrNotFound},
	} {
		if _, err := s.CreateAPIKey(ctx, c.k); !errors.Is(err, c.want) {
			t.Errorf("CreateAPIKey(%s): err = %v, want %v", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		k    store.APIKey
	}{
		{"unknown kind", store.APIKey{OwnerID: ada.ID, Kind: "other", Hash: keyHash()}},
		{"no hash", store.APIKey{OwnerID: ada.ID, Kind: store.APIKeyPersonal}},
		{"ID not a UUID", store.APIKey{ID: "x", OwnerID: ada.ID, Kind: store.APIKeyPersonal, Hash: keyHash()}},
		{"empty permission", store.APIKey{OwnerID: ada.ID, Kind: store.APIKeyPersonal, Hash: keyHash(), Permissions: []string{""}}},
		{"NUL in name", store.APIKey{OwnerID: ada.ID, Kind: store.APIKeyPersonal, Hash: keyHash(), Name: "a\x00b"}},
		{"rotated from not a UUID", store.APIKey{OwnerID: ada.ID, Kind: store.APIKeyPersonal, Hash: keyHash(), RotatedFrom: "x"}},
	} {
		if _, err := s.CreateAPIKey(ctx, c.k); err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateAPIKey(%s): err = %v, want a validation error", c.name, err)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM api_keys"); n != 1 {
		t.Errorf("%d keys stored, want only the first", n)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if _, err := s.GetAPIKey(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetAPIKey(%s): err = %v, want ErrNotFound", id, err)
		}
		if _, _, err := s.RevokeAPIKey(ctx, id, time.Now(), "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeAPIKey(%s): err = %v, want ErrNotFound", id, err)
		}
		if _, err := s.ShortenAPIKey(ctx, id, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ShortenAPIKey(%s): err = %v, want ErrNotFound", id, err)
		}
	}
}

func testAPIKeyByHash(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	k := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID, Name: "one"})
	revoked := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID, Name: "revoked", ExpiresAt: time.Now().Add(-time.Hour)})
	if _, _, err := s.RevokeAPIKey(ctx, revoked.ID, time.Now(), "gone"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		hashes [][]byte
		want   string
	}{
		{"only hash", [][]byte{k.Hash}, k.ID},
		{"first of several", [][]byte{k.Hash, keyHash(), keyHash()}, k.ID},
		{"last of several", [][]byte{keyHash(), keyHash(), k.Hash}, k.ID},
		{"revoked and expired", [][]byte{keyHash(), revoked.Hash}, revoked.ID},
	} {
		got, err := s.GetAPIKeyByHash(ctx, c.hashes)
		if err != nil || got.ID != c.want {
			t.Errorf("GetAPIKeyByHash(%s) = %s, %v; want %s", c.name, got.ID, err, c.want)
		}
		if want := map[string][]byte{k.ID: k.Hash, revoked.ID: revoked.Hash}[c.want]; err == nil && !bytes.Equal(got.Hash, want) {
			t.Errorf("GetAPIKeyByHash(%s) returned hash %x", c.name, got.Hash)
		}
	}
	for _, hashes := range [][][]byte{nil, {}, {keyHash()}, {keyHash(), keyHash()}, {nil}, {k.Hash[:16]}} {
		if _, err := s.GetAPIKeyByHash(ctx, hashes); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetAPIKeyByHash(%d unknown hashes): err = %v, want ErrNotFound", len(hashes), err)
		}
	}
}

func testAPIKeyList(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	oldest := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID, Name: "oldest", CreatedAt: base})
	// Two at the same time: the greater ID first.
	tieA := mustCreateAPIKey(t, s, store.APIKey{ID: "00000000-0000-4000-8000-00000000000a", OwnerID: ada.ID, CreatedAt: base.Add(time.Hour)})
	tieB := mustCreateAPIKey(t, s, store.APIKey{ID: "00000000-0000-4000-8000-00000000000b", OwnerID: ada.ID, CreatedAt: base.Add(time.Hour)})
	newest := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID, Name: "newest", CreatedAt: base.Add(2 * time.Hour)})
	if _, _, err := s.RevokeAPIKey(ctx, newest.ID, time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	mustCreateAPIKey(t, s, store.APIKey{OwnerID: bob.ID, CreatedAt: base.Add(3 * time.Hour)})
	list, err := s.ListAPIKeys(ctx, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{newest.ID, tieB.ID, tieA.ID, oldest.ID}; !cmp.Equal(want, apiKeyIDs(list)) {
		t.Errorf("ListAPIKeys = %v, want %v", apiKeyIDs(list), want)
	}
	if len(list) == 4 && list[0].RevokedAt.IsZero() {
		t.Error("the listed revoked key has no RevokedAt")
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if l, err := s.ListAPIKeys(ctx, id); err != nil || len(l) != 0 {
			t.Errorf("ListAPIKeys(%s) = %v, %v; want none", id, apiKeyIDs(l), err)
		}
	}
}

func testAPIKeyRevokeShorten(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	k := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID})
	first := time.Date(2026, 6, 1, 8, 0, 0, 123456789, time.UTC)
	got, revoked, err := s.RevokeAPIKey(ctx, k.ID, first, "compromised")
	if err != nil || !revoked || !got.RevokedAt.Equal(micro(first)) || got.RevokedReason != "compromised" || got.ID != k.ID {
		t.Fatalf("RevokeAPIKey = %+v, %v, %v; want revoked now", got, revoked, err)
	}
	got, revoked, err = s.RevokeAPIKey(ctx, k.ID, first.Add(time.Hour), "again")
	if err != nil || revoked || !got.RevokedAt.Equal(micro(first)) || got.RevokedReason != "compromised" {
		t.Errorf("second RevokeAPIKey = %v %q, %v, %v; want the first time and reason, false", got.RevokedAt, got.RevokedReason, revoked, err)
	}
	if got, err := s.GetAPIKey(ctx, k.ID); err != nil || !got.RevokedAt.Equal(micro(first)) || got.RevokedReason != "compromised" {
		t.Errorf("GetAPIKey after two revocations = %v %q, %v", got.RevokedAt, got.RevokedReason, err)
	}
	// A zero time is now.
	k2 := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID})
	if got, revoked, err := s.RevokeAPIKey(ctx, k2.ID, time.Time{}, ""); err != nil || !revoked || got.RevokedReason != "" {
		t.Errorf("RevokeAPIKey(zero time) = %+v, %v, %v", got, revoked, err)
	} else {
		checkNow(t, "RevokedAt", got.RevokedAt)
	}

	// Shortening a key that never expires sets its expiry; a later time
	// never extends it; an earlier one shortens it again.
	never := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID})
	end := time.Date(2026, 7, 1, 0, 0, 0, 999999999, time.UTC)
	if got, err := s.ShortenAPIKey(ctx, never.ID, end); err != nil || !got.ExpiresAt.Equal(micro(end)) {
		t.Errorf("ShortenAPIKey(never expiring) = %v, %v; want %v", got.ExpiresAt, err, micro(end))
	}
	if got, err := s.ShortenAPIKey(ctx, never.ID, end.Add(time.Hour)); err != nil || !got.ExpiresAt.Equal(micro(end)) {
		t.Errorf("ShortenAPIKey(later) = %v, %v; want it kept at %v", got.ExpiresAt, err, micro(end))
	}
	if got, err := s.ShortenAPIKey(ctx, never.ID, time.Time{}); err != nil || !got.ExpiresAt.Equal(micro(end)) {
		t.Errorf("ShortenAPIKey(zero) = %v, %v; want it kept at %v", got.ExpiresAt, err, micro(end))
	}
	earlier := end.Add(-24 * time.Hour)
	if got, err := s.ShortenAPIKey(ctx, never.ID, earlier); err != nil || !got.ExpiresAt.Equal(micro(earlier)) {
		t.Errorf("ShortenAPIKey(earlier) = %v, %v; want %v", got.ExpiresAt, err, micro(earlier))
	}
	if got, err := s.GetAPIKey(ctx, never.ID); err != nil || !got.ExpiresAt.Equal(micro(earlier)) {
		t.Errorf("GetAPIKey after shortening = %v, %v", got.ExpiresAt, err)
	}
}

func testAPIKeyUsage(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	k := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID})
	other := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID})
	day1 := time.Date(2026, 8, 10, 0, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	// 23:30 on day 1 at UTC−2 is day 2 in UTC.
	lateDay1Local := time.Date(2026, 8, 10, 23, 30, 0, 0, time.FixedZone("X", -7200))
	t1 := day1.Add(9*time.Hour + 1234567*time.Nanosecond)
	t2 := day1.Add(15 * time.Hour)

	if err := s.RecordAPIKeyUse(ctx, []store.APIKeyUse{
		{KeyID: k.ID, At: t1, IP: "192.0.2.1", Requests: 10, Refusals: 1},
		{KeyID: uuid.NewString(), At: t1, IP: "192.0.2.9", Requests: 5}, // unknown: skipped
		{KeyID: "not-a-uuid", At: t1, Requests: 5},                      // skipped
		{KeyID: other.ID, At: t1, IP: "192.0.2.7", Requests: 1},
	}); err != nil {
		t.Fatalf("RecordAPIKeyUse: %v", err)
	}
	if err := s.RecordAPIKeyUse(ctx, []store.APIKeyUse{
		{KeyID: k.ID, At: t2, IP: "192.0.2.2", Requests: 5},
		// A late flush of an earlier use: counted, but last use stays.
		{KeyID: k.ID, At: t1.Add(-time.Hour), IP: "192.0.2.3", Requests: 2, Refusals: 2},
		{KeyID: k.ID, At: lateDay1Local, IP: "198.51.100.1", Requests: 3},
	}); err != nil {
		t.Fatalf("RecordAPIKeyUse: %v", err)
	}
	if err := s.RecordAPIKeyUse(ctx, nil); err != nil {
		t.Errorf("RecordAPIKeyUse(nil): %v", err)
	}
	usage, err := s.ListAPIKeyUsage(ctx, k.ID, day1, day2)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.APIKeyUsage{
		{KeyID: k.ID, Day: day1, Requests: 17, Refusals: 3, LastIP: "192.0.2.2", LastAt: t2},
		{KeyID: k.ID, Day: day2, Requests: 3, LastIP: "198.51.100.1", LastAt: lateDay1Local.UTC()},
	}
	if diff := cmp.Diff(want, usage); diff != "" {
		t.Errorf("ListAPIKeyUsage (-want +got):\n%s", diff)
	}
	got, err := s.GetAPIKey(ctx, k.ID)
	if err != nil || !got.LastUsedAt.Equal(lateDay1Local) || got.LastUsedAt.Location() != time.UTC || got.LastUsedIP != "198.51.100.1" {
		t.Errorf("LastUsed = %v %q, %v; want %v 198.51.100.1", got.LastUsedAt, got.LastUsedIP, err, lateDay1Local.UTC())
	}
	// An older use never moves the last use back.
	if err := s.RecordAPIKeyUse(ctx, []store.APIKeyUse{{KeyID: k.ID, At: t1, IP: "203.0.113.1", Requests: 1}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetAPIKey(ctx, k.ID); err != nil || !got.LastUsedAt.Equal(lateDay1Local) || got.LastUsedIP != "198.51.100.1" {
		t.Errorf("LastUsed after an older use = %v %q, %v", got.LastUsedAt, got.LastUsedIP, err)
	}
	if o, err := s.GetAPIKey(ctx, other.ID); err != nil || !o.LastUsedAt.Equal(micro(t1)) || o.LastUsedIP != "192.0.2.7" {
		t.Errorf("other key's LastUsed = %v %q, %v", o.LastUsedAt, o.LastUsedIP, err)
	}

	// The range is inclusive at both ends and per key.
	for _, c := range []struct {
		from, to time.Time
		want     []time.Time
	}{
		{day1, day1, []time.Time{day1}},
		{day2, day2.Add(time.Hour), []time.Time{day2}},
		{day1.Add(time.Hour), day2, []time.Time{day2}},
		{day1.Add(-48 * time.Hour), day1.Add(-24 * time.Hour), nil},
		{day2, day1, nil},
	} {
		l, err := s.ListAPIKeyUsage(ctx, k.ID, c.from, c.to)
		var days []time.Time
		for _, u := range l {
			days = append(days, u.Day)
		}
		if err != nil || !cmp.Equal(c.want, days) {
			t.Errorf("ListAPIKeyUsage(%v, %v) = %v, %v; want %v", c.from, c.to, days, err, c.want)
		}
	}
	if l, err := s.ListAPIKeyUsage(ctx, other.ID, day1, day2); err != nil || len(l) != 1 || l[0].Requests != 1 || l[0].Refusals != 0 {
		t.Errorf("ListAPIKeyUsage(other) = %+v, %v", l, err)
	}
	if n := count(t, s, "SELECT count(*) FROM api_key_usage"); n != 3 {
		t.Errorf("%d usage rows, want 3 (unknown keys skipped)", n)
	}
	if err := s.RecordAPIKeyUse(ctx, []store.APIKeyUse{{KeyID: k.ID, At: t1, Requests: -1}}); err == nil {
		t.Error("RecordAPIKeyUse with a negative count succeeded")
	}
}

// testAPIKeyConcurrent: nodes flushing their counts at once lose none,
// the last use is the latest whatever order they commit in, and of
// concurrent revocations exactly one reports that it revoked the key.
func testAPIKeyConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	k := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID})
	const n = 8
	day := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := day.Add(time.Duration(i+1) * time.Minute)
			errs <- s.RecordAPIKeyUse(ctx, []store.APIKeyUse{{KeyID: k.ID, At: at, IP: fmt.Sprintf("192.0.2.%d", i+1), Requests: 2, Refusals: 1}})
		}()
	}
	wg.Wait()
	var revoked atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := s.RevokeAPIKey(ctx, k.ID, day.Add(time.Duration(i)*time.Second), fmt.Sprint(i))
			if ok {
				revoked.Add(1)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	usage, err := s.ListAPIKeyUsage(ctx, k.ID, day, day)
	if err != nil || len(usage) != 1 {
		t.Fatalf("ListAPIKeyUsage = %+v, %v; want one day", usage, err)
	}
	last := day.Add(n * time.Minute)
	want := store.APIKeyUsage{KeyID: k.ID, Day: day, Requests: 2 * n, Refusals: n, LastIP: fmt.Sprintf("192.0.2.%d", n), LastAt: last}
	if diff := cmp.Diff(want, usage[0]); diff != "" {
		t.Errorf("usage after concurrent flushes (-want +got):\n%s", diff)
	}
	got, err := s.GetAPIKey(ctx, k.ID)
	if err != nil || !got.LastUsedAt.Equal(last) || got.LastUsedIP != want.LastIP {
		t.Errorf("LastUsed after concurrent flushes = %v %q, %v; want %v %s", got.LastUsedAt, got.LastUsedIP, err, last, want.LastIP)
	}
	if r := revoked.Load(); r != 1 {
		t.Errorf("%d concurrent RevokeAPIKey calls reported revoking, want 1", r)
	}
}

func testAPIKeyCascades(t *testing.T, s store.Store) {
	ctx := context.Background()
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	sa, err := s.CreateServiceAccount(ctx, store.ServiceAccount{Name: "ci", OrganizationID: acme.ID})
	if err != nil {
		t.Fatal(err)
	}
	saKey := mustCreateAPIKey(t, s, store.APIKey{OwnerID: sa.ID, Kind: store.APIKeyService})
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	adaKey := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID})
	// A key rotated from one that goes keeps its RotatedFrom.
	rotated := mustCreateAPIKey(t, s, store.APIKey{OwnerID: sa.ID, Kind: store.APIKeyService, RotatedFrom: adaKey.ID})
	if err := s.RecordAPIKeyUse(ctx, []store.APIKeyUse{{KeyID: adaKey.ID, At: time.Now(), Requests: 1}, {KeyID: saKey.ID, At: time.Now(), Requests: 1}}); err != nil {
		t.Fatal(err)
	}

	// Removing a user's row takes its keys and their usage.
	if err := rawExec(t, s).RawExec(ctx, "DELETE FROM users WHERE id = '"+ada.ID+"'"); err != nil {
		t.Fatalf("delete user row: %v", err)
	}
	if _, err := s.GetAPIKey(ctx, adaKey.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAPIKey(removed user's key): err = %v, want ErrNotFound", err)
	}
	if got, err := s.GetAPIKey(ctx, rotated.ID); err != nil || got.RotatedFrom != adaKey.ID {
		t.Errorf("rotated key after its predecessor's removal = %q, %v", got.RotatedFrom, err)
	}
	if n := count(t, s, "SELECT count(*) FROM api_key_usage"); n != 1 {
		t.Errorf("%d usage rows after the user's removal, want 1", n)
	}

	// Deleting the organisation takes its service accounts (their user
	// rows stay, as every member's), and their keys stay with the user.
	if err := s.DeleteOrganization(ctx, acme.ID); err != nil {
		t.Fatalf("DeleteOrganization with a service account: %v", err)
	}
	if _, err := s.GetServiceAccount(ctx, sa.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetServiceAccount after the organisation's deletion: err = %v, want ErrNotFound", err)
	}
	if n := count(t, s, "SELECT count(*) FROM service_accounts"); n != 0 {
		t.Errorf("%d service accounts remain", n)
	}
	// Removing the service account's user row takes its keys and usage.
	if err := rawExec(t, s).RawExec(ctx, "DELETE FROM users WHERE id = '"+sa.ID+"'"); err != nil {
		t.Fatalf("delete service account's user row: %v", err)
	}
	if n := count(t, s, "SELECT count(*) FROM api_keys"); n != 0 {
		t.Errorf("%d keys remain", n)
	}
	if n := count(t, s, "SELECT count(*) FROM api_key_usage"); n != 0 {
		t.Errorf("%d usage rows remain", n)
	}
}

func testAPIKeyInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	kept := mustCreateAPIKey(t, s, store.APIKey{OwnerID: ada.ID, Name: "kept"})
	errRollback := errors.New("roll back")
	var saID, keyID string
	err := s.InTx(ctx, func(tx store.Store) error {
		sa, err := tx.CreateServiceAccount(ctx, store.ServiceAccount{Name: "tx"})
		if err != nil {
			return err
		}
		saID = sa.ID
		if _, err := tx.GetServiceAccount(ctx, sa.ID); err != nil {
			return fmt.Errorf("GetServiceAccount in the transaction: %w", err)
		}
		k, err := tx.CreateAPIKey(ctx, store.APIKey{OwnerID: sa.ID, Kind: store.APIKeyService, Hash: keyHash()})
		if err != nil {
			return err
		}
		keyID = k.ID
		if got, err := tx.GetAPIKeyByHash(ctx, [][]byte{k.Hash}); err != nil || got.ID != k.ID {
			return fmt.Errorf("GetAPIKeyByHash in the transaction = %s, %w", got.ID, err)
		}
		if _, _, err := tx.RevokeAPIKey(ctx, kept.ID, time.Now(), "tx"); err != nil {
			return err
		}
		if _, err := tx.ShortenAPIKey(ctx, kept.ID, time.Now()); err != nil {
			return err
		}
		if err := tx.RecordAPIKeyUse(ctx, []store.APIKeyUse{{KeyID: kept.ID, At: time.Now(), IP: "192.0.2.1", Requests: 4}}); err != nil {
			return err
		}
		if l, err := tx.ListAPIKeyUsage(ctx, kept.ID, time.Now().Add(-48*time.Hour), time.Now()); err != nil || len(l) != 1 {
			return fmt.Errorf("ListAPIKeyUsage in the transaction = %v, %w", l, err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx: %v", err)
	}
	if _, err := s.GetServiceAccount(ctx, saID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetServiceAccount after rollback: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetUser(ctx, saID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(service account) after rollback: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetAPIKey(ctx, keyID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAPIKey after rollback: err = %v, want ErrNotFound", err)
	}
	got, err := s.GetAPIKey(ctx, kept.ID)
	if err != nil || !got.RevokedAt.IsZero() || !got.ExpiresAt.IsZero() || !got.LastUsedAt.IsZero() {
		t.Errorf("kept key after rollback = %+v, %v; want unchanged", got, err)
	}
	if n := count(t, s, "SELECT count(*) FROM api_key_usage"); n != 0 {
		t.Errorf("%d usage rows after rollback", n)
	}

	// A service account whose organisation is missing leaves no user row,
	// even outside InTx (its own transaction).
	if _, err := s.CreateServiceAccount(ctx, store.ServiceAccount{Name: "orphan", OrganizationID: uuid.NewString()}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateServiceAccount(unknown org): %v", err)
	}
	if n := count(t, s, "SELECT count(*) FROM users WHERE kind = 'service_account'"); n != 0 {
		t.Errorf("%d service account users after a refused creation", n)
	}
}
