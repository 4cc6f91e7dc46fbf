package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runOrgs(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testOrgRoundTrip(t, migrated(t)) })
	t.Run("Invalid", func(t *testing.T) { testOrgInvalid(t, migrated(t)) })
	t.Run("Memberships", func(t *testing.T) { testOrgMemberships(t, migrated(t)) })
	t.Run("Cascades", func(t *testing.T) { testOrgCascades(t, migrated(t)) })
}

func mustCreateOrg(t *testing.T, s store.Store, name, slug string, policy map[string]any) store.Organization {
	t.Helper()
	o, err := s.CreateOrganization(context.Background(), store.Organization{Name: name, Slug: slug, Policy: policy})
	if err != nil {
		t.Fatalf("CreateOrganization(%s): %v", slug, err)
	}
	return o
}

func mustSetMember(t *testing.T, s store.Store, orgID, userID, role string) {
	t.Helper()
	if err := s.SetMembership(context.Background(), store.OrgMembership{OrgID: orgID, UserID: userID, Role: role}); err != nil {
		t.Fatalf("SetMembership(%s, %s, %s): %v", orgID, userID, role, err)
	}
}

func orgIDs(list []store.Organization) []string {
	ids := make([]string, len(list))
	for i, o := range list {
		ids[i] = o.ID
	}
	return ids
}

func testOrgRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	policy := map[string]any{
		"mfa_required":    true,
		"session_minutes": 480.0,
		"allowed_domains": []any{"example.com", "example.org"},
		"password":        map[string]any{"min_length": 12.0, "note": "it's \"quoted\""},
		"nothing":         nil,
	}
	nepal := time.FixedZone("NPT", 5*3600+45*60)
	in := store.Organization{
		ID:        strings.ToUpper(uuid.NewString()),
		Name:      "Analytical Engines Ltd",
		Slug:      "analytical-engines",
		Policy:    policy,
		CreatedAt: time.Date(2024, 2, 29, 23, 59, 59, 123456789, nepal),
	}
	created, err := s.CreateOrganization(ctx, in)
	if err != nil {
		t.Fatalf("CreateOrganization: %v", err)
	}
	want := store.Organization{
		ID:        strings.ToLower(in.ID),
		Name:      in.Name,
		Slug:      in.Slug,
		Policy:    policy,
		CreatedAt: time.Date(2024, 2, 29, 18, 14, 59, 123456000, time.UTC),
		UpdatedAt: time.Date(2024, 2, 29, 18, 14, 59, 123456000, time.UTC),
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("CreateOrganization returned (-want +got):\n%s", diff)
	}
	got, err := s.GetOrganization(ctx, strings.ToUpper(created.ID))
	if err != nil {
		t.Fatalf("GetOrganization: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetOrganization (-want +got):\n%s", diff)
	}

	// Defaults: a UUIDv7, CreatedAt = UpdatedAt = now, nil policy as {}.
	minimal := mustCreateOrg(t, s, "beta", "beta", nil)
	if id, err := uuid.Parse(minimal.ID); err != nil || id.Version() != 7 || id.String() != minimal.ID {
		t.Errorf("generated ID = %q, want a canonical UUIDv7", minimal.ID)
	}
	checkNow(t, "CreatedAt", minimal.CreatedAt)
	if !minimal.UpdatedAt.Equal(minimal.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", minimal.UpdatedAt, minimal.CreatedAt)
	}
	if minimal.Policy == nil || len(minimal.Policy) != 0 {
		t.Errorf("Policy of an organisation created without one = %#v, want an empty map", minimal.Policy)
	}
	if n := count(t, s, "SELECT count(*) FROM organizations WHERE id = '"+minimal.ID+"' AND policy IS NOT NULL"); n != 1 {
		t.Error("nil policy stored as NULL")
	}

	// By name, compared by code point: upper case before lower case.
	zeta := mustCreateOrg(t, s, "Zeta", "zeta", nil)
	alpha := mustCreateOrg(t, s, "alpha", "alpha", nil)
	list, err := s.ListOrganizations(ctx)
	if err != nil {
		t.Fatalf("ListOrganizations: %v", err)
	}
	if diff := cmp.Diff([]string{created.ID, zeta.ID, alpha.ID, minimal.ID}, orgIDs(list)); diff != "" {
		t.Errorf("ListOrganizations order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, list[0]); diff != "" {
		t.Errorf("ListOrganizations[0] (-want +got):\n%s", diff)
	}

	// Update writes Name, Slug and Policy, and sets UpdatedAt.
	upd := created
	upd.ID = strings.ToUpper(created.ID)
	upd.Name, upd.Slug = "Difference Engines", "difference-engines"
	upd.Policy = map[string]any{"mfa_required": false}
	upd.CreatedAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	updated, err := s.UpdateOrganization(ctx, upd)
	if err != nil {
		t.Fatalf("UpdateOrganization: %v", err)
	}
	checkNow(t, "UpdatedAt", updated.UpdatedAt)
	wantUpd := want
	wantUpd.Name, wantUpd.Slug, wantUpd.Policy, wantUpd.UpdatedAt = upd.Name, upd.Slug, upd.Policy, updated.UpdatedAt
	if diff := cmp.Diff(wantUpd, updated); diff != "" {
		t.Errorf("UpdateOrganization returned (-want +got):\n%s", diff)
	}
	if got, err := s.GetOrganization(ctx, created.ID); err != nil || !cmp.Equal(wantUpd, got) {
		t.Errorf("GetOrganization after update = %+v, %v; want %+v", got, err, wantUpd)
	}
	// The old slug is free again.
	mustCreateOrg(t, s, "Reuse", "analytical-engines", nil)
	upd.Policy = nil
	if got, err := s.UpdateOrganization(ctx, upd); err != nil || got.Policy == nil || len(got.Policy) != 0 {
		t.Errorf("UpdateOrganization with nil policy = %+v, %v; want an empty policy", got, err)
	}

	if err := s.DeleteOrganization(ctx, strings.ToUpper(zeta.ID)); err != nil {
		t.Fatalf("DeleteOrganization: %v", err)
	}
	if _, err := s.GetOrganization(ctx, zeta.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetOrganization after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteOrganization(ctx, zeta.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteOrganization: err = %v, want ErrNotFound", err)
	}
	gone := zeta
	gone.Name = "back"
	if _, err := s.UpdateOrganization(ctx, gone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateOrganization of a deleted organisation: err = %v, want ErrNotFound", err)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if _, err := s.GetOrganization(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetOrganization(%q): err = %v, want ErrNotFound", id, err)
		}
		if err := s.DeleteOrganization(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteOrganization(%q): err = %v, want ErrNotFound", id, err)
		}
	}
	if list, err := s.ListOrganizations(ctx); err != nil || len(list) != 4 {
		t.Errorf("ListOrganizations after delete = %d, %v; want 4", len(list), err)
	}
}

func testOrgInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	taken := mustCreateOrg(t, s, "Taken", "taken", nil)
	other := mustCreateOrg(t, s, "Other", "other", map[string]any{"k": "v"})

	if _, err := s.CreateOrganization(ctx, store.Organization{Name: "Another", Slug: "taken"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateOrganization with a taken slug: err = %v, want ErrConflict", err)
	}
	if _, err := s.CreateOrganization(ctx, store.Organization{ID: taken.ID, Name: "Another", Slug: "free"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateOrganization with a taken ID: err = %v, want ErrConflict", err)
	}
	upd := other
	upd.Slug = "taken"
	if _, err := s.UpdateOrganization(ctx, upd); !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateOrganization to a taken slug: err = %v, want ErrConflict", err)
	}
	if got, err := s.GetOrganization(ctx, other.ID); err != nil || !cmp.Equal(other, got) {
		t.Errorf("organisation after a conflicting update = %+v, %v; want unchanged %+v", got, err, other)
	}
	// Slugs are compared exactly.
	mustCreateOrg(t, s, "Taken too", "Taken", nil)

	for _, tc := range []struct {
		name string
		org  store.Organization
	}{
		{"no name", store.Organization{Slug: "s1"}},
		{"no slug", store.Organization{Name: "n"}},
		{"bad ID", store.Organization{ID: "x", Name: "n", Slug: "s2"}},
		{"NUL in name", store.Organization{Name: "a\x00", Slug: "s3"}},
		{"unencodable policy", store.Organization{Name: "n", Slug: "s4", Policy: map[string]any{"f": func() {}}}},
	} {
		if _, err := s.CreateOrganization(ctx, tc.org); err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateOrganization %s: err = %v, want a validation error", tc.name, err)
		}
	}
	for _, id := range []string{"", "not-a-uuid", uuid.NewString()} {
		if _, err := s.UpdateOrganization(ctx, store.Organization{ID: id, Name: "n", Slug: "s5"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateOrganization(%q): err = %v, want ErrNotFound", id, err)
		}
	}
	upd = other
	upd.Name = ""
	if _, err := s.UpdateOrganization(ctx, upd); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateOrganization without a name: err = %v, want a validation error", err)
	}
	if n := count(t, s, "SELECT count(*) FROM organizations"); n != 3 {
		t.Errorf("%d organisations after invalid writes, want 3", n)
	}
}

func testOrgMemberships(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	cyd := mustCreateUser(t, s, newUser("cyd@example.com"))
	policy := map[string]any{"mfa_required": true, "ttl": 3600.0, "nested": map[string]any{"list": []any{1.0, "two"}}}
	acme := mustCreateOrg(t, s, "Acme", "acme", policy)
	blue := mustCreateOrg(t, s, "Blue", "blue", nil)

	at := time.Date(2025, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 3600))
	if err := s.SetMembership(ctx, store.OrgMembership{OrgID: strings.ToUpper(acme.ID), UserID: strings.ToUpper(ada.ID), Role: store.OrgOwner, CreatedAt: at}); err != nil {
		t.Fatalf("SetMembership: %v", err)
	}
	mustSetMember(t, s, acme.ID, bob.ID, store.OrgMember)
	mustSetMember(t, s, blue.ID, ada.ID, store.OrgAdmin)

	members, err := s.ListMembers(ctx, strings.ToUpper(acme.ID))
	if err != nil {
		t.Fatalf("ListMembers: %v", err)
	}
	if len(members) != 2 {
		t.Fatalf("ListMembers = %+v, want ada and bob", members)
	}
	checkNow(t, "CreatedAt of a membership", members[1].CreatedAt)
	wantMembers := []store.OrgMembership{
		{OrgID: acme.ID, UserID: ada.ID, Role: store.OrgOwner, CreatedAt: time.Date(2025, 1, 2, 2, 4, 5, 678901000, time.UTC)},
		{OrgID: acme.ID, UserID: bob.ID, Role: store.OrgMember, CreatedAt: members[1].CreatedAt},
	}
	if diff := cmp.Diff(wantMembers, members); diff != "" {
		t.Errorf("ListMembers (-want +got):\n%s", diff)
	}

	// A role change keeps the membership's CreatedAt.
	if err := s.SetMembership(ctx, store.OrgMembership{OrgID: acme.ID, UserID: bob.ID, Role: store.OrgAdmin, CreatedAt: at}); err != nil {
		t.Fatalf("SetMembership (role change): %v", err)
	}
	wantMembers[1].Role = store.OrgAdmin
	if members, err := s.ListMembers(ctx, acme.ID); err != nil || !cmp.Equal(wantMembers, members) {
		t.Errorf("ListMembers after a role change = %+v, %v; want %+v", members, err, wantMembers)
	}

	// A deleted account is no longer listed as a member.
	gone := mustCreateUser(t, s, newUser("gone-member@example.com"))
	mustSetMember(t, s, acme.ID, gone.ID, store.OrgMember)
	if err := s.SoftDeleteUser(ctx, gone.ID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if members, err := s.ListMembers(ctx, acme.ID); err != nil || !cmp.Equal(wantMembers, members) {
		t.Errorf("ListMembers with a deleted member = %+v, %v; want %+v", members, err, wantMembers)
	}

	orgs, err := s.UserOrganizations(ctx, strings.ToUpper(ada.ID))
	if err != nil {
		t.Fatalf("UserOrganizations: %v", err)
	}
	if diff := cmp.Diff([]store.Organization{acme, blue}, orgs); diff != "" {
		t.Errorf("UserOrganizations (-want +got):\n%s", diff)
	}
	if orgs[0].Policy["nested"].(map[string]any)["list"].([]any)[1] != "two" {
		t.Errorf("policy did not round-trip: %#v", orgs[0].Policy)
	}
	if orgs, err := s.UserOrganizations(ctx, bob.ID); err != nil || !cmp.Equal([]string{acme.ID}, orgIDs(orgs)) {
		t.Errorf("UserOrganizations(bob) = %v, %v; want [acme]", orgIDs(orgs), err)
	}
	for _, id := range []string{cyd.ID, uuid.NewString(), "not-a-uuid"} {
		if orgs, err := s.UserOrganizations(ctx, id); err != nil || len(orgs) != 0 {
			t.Errorf("UserOrganizations(%q) = %v, %v; want none", id, orgIDs(orgs), err)
		}
		if members, err := s.ListMembers(ctx, id); err != nil || len(members) != 0 {
			t.Errorf("ListMembers(%q) = %+v, %v; want none", id, members, err)
		}
	}

	// Invalid memberships.
	for _, tc := range []struct {
		name     string
		m        store.OrgMembership
		notFound bool
	}{
		{"unknown role", store.OrgMembership{OrgID: acme.ID, UserID: cyd.ID, Role: "guest"}, false},
		{"no role", store.OrgMembership{OrgID: acme.ID, UserID: cyd.ID}, false},
		{"unknown organisation", store.OrgMembership{OrgID: uuid.NewString(), UserID: cyd.ID, Role: store.OrgMember}, true},
		{"unknown user", store.OrgMembership{OrgID: acme.ID, UserID: uuid.NewString(), Role: store.OrgMember}, true},
		{"organisation not a UUID", store.OrgMembership{OrgID: "acme", UserID: cyd.ID, Role: store.OrgMember}, true},
		{"user not a UUID", store.OrgMembership{OrgID: acme.ID, UserID: "cyd", Role: store.OrgMember}, true},
	} {
		err := s.SetMembership(ctx, tc.m)
		switch {
		case tc.notFound && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: err = %v, want ErrNotFound", tc.name, err)
		case !tc.notFound && (err == nil || errors.Is(err, store.ErrNotFound)):
			t.Errorf("%s: err = %v, want a validation error", tc.name, err)
		}
	}

	// Removal.
	if err := s.RemoveMembership(ctx, strings.ToUpper(acme.ID), strings.ToUpper(bob.ID)); err != nil {
		t.Fatalf("RemoveMembership: %v", err)
	}
	for _, tc := range [][2]string{{acme.ID, bob.ID}, {acme.ID, cyd.ID}, {uuid.NewString(), ada.ID}, {"acme", ada.ID}, {acme.ID, "ada"}} {
		if err := s.RemoveMembership(ctx, tc[0], tc[1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RemoveMembership(%q, %q): err = %v, want ErrNotFound", tc[0], tc[1], err)
		}
	}
	if members, err := s.ListMembers(ctx, acme.ID); err != nil || !cmp.Equal(wantMembers[:1], members) {
		t.Errorf("ListMembers after removing bob = %+v, %v; want only ada", members, err)
	}
	if orgs, err := s.UserOrganizations(ctx, bob.ID); err != nil || len(orgs) != 0 {
		t.Errorf("UserOrganizations(bob) after removal = %v, %v; want none", orgIDs(orgs), err)
	}
	// Rejoining is a new membership.
	mustSetMember(t, s, acme.ID, bob.ID, store.OrgMember)
	if orgs, err := s.UserOrganizations(ctx, bob.ID); err != nil || !cmp.Equal([]string{acme.ID}, orgIDs(orgs)) {
		t.Errorf("UserOrganizations(bob) after rejoining = %v, %v; want [acme]", orgIDs(orgs), err)
	}

	// Policies come from the organisation as it is now.
	upd := acme
	upd.Policy = map[string]any{"mfa_required": false}
	if _, err := s.UpdateOrganization(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if orgs, err := s.UserOrganizations(ctx, bob.ID); err != nil || len(orgs) != 1 || orgs[0].Policy["mfa_required"] != false {
		t.Errorf("UserOrganizations(bob) after a policy change = %+v, %v; want the new policy", orgs, err)
	}
}

// Deleting an organisation removes its memberships; removing a user's row
// removes the user's.
func testOrgCascades(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	blue := mustCreateOrg(t, s, "Blue", "blue", nil)
	for _, o := range []store.Organization{acme, blue} {
		mustSetMember(t, s, o.ID, ada.ID, store.OrgOwner)
		mustSetMember(t, s, o.ID, bob.ID, store.OrgMember)
	}
	memberships := func(where string) int64 {
		t.Helper()
		return count(t, s, "SELECT count(*) FROM organization_members WHERE "+where)
	}

	if err := s.DeleteOrganization(ctx, acme.ID); err != nil {
		t.Fatal(err)
	}
	if n := memberships("org_id = '" + acme.ID + "'"); n != 0 {
		t.Errorf("%d memberships of a deleted organisation remain", n)
	}
	if orgs, err := s.UserOrganizations(ctx, ada.ID); err != nil || !cmp.Equal([]string{blue.ID}, orgIDs(orgs)) {
		t.Errorf("UserOrganizations after deleting acme = %v, %v; want [blue]", orgIDs(orgs), err)
	}

	if err := rawExec(t, s).RawExec(ctx, "DELETE FROM users WHERE id = '"+bob.ID+"'"); err != nil {
		t.Fatalf("delete user row: %v", err)
	}
	if n := memberships("user_id = '" + bob.ID + "'"); n != 0 {
		t.Errorf("%d memberships of a removed user remain", n)
	}
	members, err := s.ListMembers(ctx, blue.ID)
	if err != nil || len(members) != 1 || members[0].UserID != ada.ID {
		t.Errorf("ListMembers(blue) after removing bob = %+v, %v; want only ada", members, err)
	}
}
