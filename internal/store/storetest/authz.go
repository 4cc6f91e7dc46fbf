package storetest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runAuthz(t *testing.T, migrated0 func(t *testing.T) store.Store) {
	// The cases count rows: each starts from tables emptied of what the
	// migrations seed (Gatehouse's built-in roles and permissions).
	migrated := func(t *testing.T) store.Store {
		s := migrated0(t)
		clearAuthz(t, s)
		return s
	}
	t.Run("BuiltinRolesUpgrade", func(t *testing.T) { testBuiltinRolesUpgrade(t, migrated0(t)) })
	t.Run("Permissions", func(t *testing.T) { testPermissions(t, migrated(t)) })
	t.Run("RoleRoundTrip", func(t *testing.T) { testRoleRoundTrip(t, migrated(t)) })
	t.Run("RoleUniqueness", func(t *testing.T) { testRoleUniqueness(t, migrated(t)) })
	t.Run("RoleInvalid", func(t *testing.T) { testRoleInvalid(t, migrated(t)) })
	t.Run("RoleUpdate", func(t *testing.T) { testRoleUpdate(t, migrated(t)) })
	t.Run("ConcurrentCycle", func(t *testing.T) { testRoleConcurrentCycle(t, migrated(t)) })
	t.Run("RoleList", func(t *testing.T) { testRoleList(t, migrated(t)) })
	t.Run("RoleDelete", func(t *testing.T) { testRoleDelete(t, migrated(t)) })
	t.Run("Grants", func(t *testing.T) { testGrants(t, migrated(t)) })
	t.Run("GrantsOfRoles", func(t *testing.T) { testGrantsOfRoles(t, migrated(t)) })
	t.Run("ExpiredGrants", func(t *testing.T) { testExpiredGrants(t, migrated(t)) })
	t.Run("Cascades", func(t *testing.T) { testAuthzCascades(t, migrated(t)) })
	t.Run("LoadUserAuthz", func(t *testing.T) { testLoadUserAuthz(t, migrated(t)) })
	t.Run("InTx", func(t *testing.T) { testAuthzInTx(t, migrated(t)) })
	t.Run("BulkRollback", func(t *testing.T) { testAuthzBulkRollback(t, migrated(t)) })
}

var authzAt = time.Date(2034, 5, 6, 7, 8, 9, 123456789, time.UTC)

// clearAuthz deletes every role (with its grants) and permission.
func clearAuthz(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	for {
		roles, _, err := s.ListRoles(ctx, store.RoleFilter{Limit: store.MaxRoleLimit})
		if err != nil {
			t.Fatalf("ListRoles: %v", err)
		}
		if len(roles) == 0 {
			break
		}
		for _, r := range roles {
			if _, err := s.DeleteRole(ctx, r.ID, true); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("DeleteRole(%s): %v", r.Name, err)
			}
		}
	}
	perms, err := s.ListPermissions(ctx)
	if err != nil {
		t.Fatalf("ListPermissions: %v", err)
	}
	for _, p := range perms {
		if err := s.DeletePermission(ctx, p.Name); err != nil {
			t.Fatalf("DeletePermission(%s): %v", p.Name, err)
		}
	}
}

func mustCreatePermissions(t *testing.T, s store.Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := s.CreatePermission(context.Background(), store.Permission{Name: n}); err != nil {
			t.Fatalf("CreatePermission(%s): %v", n, err)
		}
	}
}

func mustCreateRole(t *testing.T, s store.Store, r store.Role) store.Role {
	t.Helper()
	created, err := s.CreateRole(context.Background(), r)
	if err != nil {
		t.Fatalf("CreateRole(%s): %v", r.Name, err)
	}
	return created
}

func mustGrant(t *testing.T, s store.Store, g store.RoleGrant) store.RoleGrant {
	t.Helper()
	created, err := s.CreateGrant(context.Background(), g)
	if err != nil {
		t.Fatalf("CreateGrant(role %s to %s): %v", g.RoleID, g.UserID, err)
	}
	return created
}

func allow(names ...string) []store.RolePermission {
	l := make([]store.RolePermission, len(names))
	for i, n := range names {
		l[i] = store.RolePermission{Permission: n}
	}
	return l
}

func roleIDs(roles []store.Role) []string {
	ids := make([]string, len(roles))
	for i, r := range roles {
		ids[i] = r.ID
	}
	return ids
}

func grantIDs(grants []store.RoleGrant) []string {
	ids := make([]string, len(grants))
	for i, g := range grants {
		ids[i] = g.ID
	}
	return ids
}

// byTimeAndID orders rows oldest first, ties by ID: the order of the
// role and grant listings.
func byTimeAndID(at time.Time, id string, bt time.Time, bid string) int {
	if c := at.Compare(bt); c != 0 {
		return c
	}
	return strings.Compare(id, bid)
}

func testPermissions(t *testing.T, s store.Store) {
	ctx := context.Background()
	full := store.Permission{Name: "invoices:read", Description: "Read invoices", CreatedAt: authzAt.In(time.FixedZone("X", 3600))}
	got, err := s.CreatePermission(ctx, full)
	if err != nil {
		t.Fatalf("CreatePermission: %v", err)
	}
	want := store.Permission{Name: "invoices:read", Description: "Read invoices", CreatedAt: micro(authzAt)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreatePermission returned (-want +got):\n%s", diff)
	}
	if g, err := s.GetPermission(ctx, "invoices:read"); err != nil || !cmp.Equal(want, g) {
		t.Errorf("GetPermission = %+v, %v; want %+v", g, err, want)
	}
	star, err := s.CreatePermission(ctx, store.Permission{Name: "*"})
	if err != nil {
		t.Fatalf("CreatePermission(*): %v", err)
	}
	checkNow(t, "CreatedAt", star.CreatedAt)
	if star.Description != "" {
		t.Errorf("Description = %q, want empty", star.Description)
	}
	mustCreatePermissions(t, s, "invoices:*", "Invoices:read")

	// A taken name is a conflict; names compare exactly.
	if _, err := s.CreatePermission(ctx, store.Permission{Name: "invoices:read", Description: "again"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreatePermission(duplicate): err = %v, want ErrConflict", err)
	}
	for _, p := range []store.Permission{{}, {Name: "a\x00b"}, {Name: "\xff"}, {Name: "ok:ok", Description: "\x00"}} {
		_, err := s.CreatePermission(ctx, p)
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreatePermission(%+q): err = %v, want a validation error", p.Name, err)
		}
		if p.Name != "" && !errors.Is(err, store.ErrInvalidText) {
			t.Errorf("CreatePermission(%+q): err = %v, want ErrInvalidText", p.Name, err)
		}
	}

	list, err := s.ListPermissions(ctx)
	if err != nil {
		t.Fatalf("ListPermissions: %v", err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
	}
	if diff := cmp.Diff([]string{"*", "Invoices:read", "invoices:*", "invoices:read"}, names); diff != "" {
		t.Errorf("ListPermissions by code point (-want +got):\n%s", diff)
	}

	// In use by a role (allowed or denied): refused until the role stops.
	role := mustCreateRole(t, s, store.Role{Name: "reader", Allow: allow("invoices:read"), Deny: allow("invoices:*")})
	for _, name := range []string{"invoices:read", "invoices:*"} {
		if err := s.DeletePermission(ctx, name); !errors.Is(err, store.ErrConflict) {
			t.Errorf("DeletePermission(%s in use): err = %v, want ErrConflict", name, err)
		}
		if _, err := s.GetPermission(ctx, name); err != nil {
			t.Errorf("GetPermission(%s) after a refused delete: %v", name, err)
		}
	}
	role.Allow, role.Deny = nil, nil
	if _, err := s.UpdateRole(ctx, role); err != nil {
		t.Fatalf("UpdateRole: %v", err)
	}
	for _, name := range []string{"invoices:read", "invoices:*"} {
		if err := s.DeletePermission(ctx, name); err != nil {
			t.Errorf("DeletePermission(%s no longer in use): %v", name, err)
		}
	}
	for _, name := range []string{"invoices:read", "nope", "", "\xff", "a\x00"} {
		if _, err := s.GetPermission(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetPermission(%q): err = %v, want ErrNotFound", name, err)
		}
		if err := s.DeletePermission(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeletePermission(%q): err = %v, want ErrNotFound", name, err)
		}
	}
}

func testRoleRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreatePermissions(t, s, "invoices:read", "invoices:write", "invoices:*", "reports:read")
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	base := mustCreateRole(t, s, store.Role{Name: "base", Allow: allow("reports:read")})
	if _, err := uuid.Parse(base.ID); err != nil || uuid.MustParse(base.ID).Version() != 7 {
		t.Errorf("generated ID %q, want a UUIDv7", base.ID)
	}
	checkNow(t, "CreatedAt", base.CreatedAt)
	if !base.UpdatedAt.Equal(base.CreatedAt) || base.Deny != nil || base.Parents != nil || base.OrganizationID != "" {
		t.Errorf("minimal role = %+v, want UpdatedAt = CreatedAt, no deny, no parents, global", base)
	}
	local := mustCreateRole(t, s, store.Role{Name: "local", OrganizationID: acme.ID})

	id := uuid.NewString()
	full := store.Role{
		ID: id, Name: "accountant", Description: "Keeps the books", OrganizationID: acme.ID,
		// Order is kept, not sorted.
		Allow: []store.RolePermission{
			{Permission: "invoices:write", Condition: `resource.amount < 1000`},
			{Permission: "invoices:read"},
		},
		Deny:      []store.RolePermission{{Permission: "invoices:*", Condition: `request.time.getHours() > 20`}, {Permission: "invoices:read", Condition: "x"}},
		Parents:   []string{local.ID, base.ID},
		CreatedAt: authzAt.In(time.FixedZone("Y", -7200)), UpdatedAt: authzAt.Add(time.Minute),
	}
	got, err := s.CreateRole(ctx, full)
	if err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	want := full
	want.CreatedAt, want.UpdatedAt = micro(full.CreatedAt), micro(full.UpdatedAt)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreateRole returned (-want +got):\n%s", diff)
	}
	if g, err := s.GetRole(ctx, id); err != nil {
		t.Errorf("GetRole: %v", err)
	} else if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("GetRole (-want +got):\n%s", diff)
	}
	if g, err := s.GetRole(ctx, strings.ToUpper(id)); err != nil || g.ID != id {
		t.Errorf("GetRole(upper-case ID) = %s, %v; want the role (IDs are canonicalised)", g.ID, err)
	}
	if g, err := s.GetRoleByName(ctx, "accountant", acme.ID); err != nil {
		t.Errorf("GetRoleByName: %v", err)
	} else if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("GetRoleByName (-want +got):\n%s", diff)
	}
	if g, err := s.GetRoleByName(ctx, "base", ""); err != nil || !cmp.Equal(base, g) {
		t.Errorf("GetRoleByName(base, global) = %+v, %v; want %+v", g, err, base)
	}
	for _, q := range []struct{ name, org string }{
		{"accountant", ""}, {"base", acme.ID}, {"Accountant", acme.ID}, {"accountant", uuid.NewString()},
		{"accountant", "not-a-uuid"}, {"", ""}, {"\xff", ""}, {"a\x00", acme.ID},
	} {
		if _, err := s.GetRoleByName(ctx, q.name, q.org); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRoleByName(%q, %q): err = %v, want ErrNotFound", q.name, q.org, err)
		}
	}
	for _, bad := range []string{uuid.NewString(), "", "not-a-uuid", "\xff", "a\x00"} {
		if _, err := s.GetRole(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRole(%q): err = %v, want ErrNotFound", bad, err)
		}
	}
}

func testRoleUniqueness(t *testing.T, s store.Store) {
	ctx := context.Background()
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	blue := mustCreateOrg(t, s, "Blue", "blue", nil)
	global := mustCreateRole(t, s, store.Role{Name: "admin"})
	// The same name in each organisation and globally: three roles.
	mustCreateRole(t, s, store.Role{Name: "admin", OrganizationID: acme.ID})
	mustCreateRole(t, s, store.Role{Name: "admin", OrganizationID: blue.ID})
	for _, dup := range []store.Role{
		{Name: "admin"},
		{Name: "admin", OrganizationID: acme.ID},
		{ID: global.ID, Name: "other"},
	} {
		if _, err := s.CreateRole(ctx, dup); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateRole(%s in %q, id %q): err = %v, want ErrConflict", dup.Name, dup.OrganizationID, dup.ID, err)
		}
	}
	// Names compare exactly.
	mustCreateRole(t, s, store.Role{Name: "Admin"})
	if n := count(t, s, "SELECT count(*) FROM roles"); n != 4 {
		t.Errorf("%d roles, want 4", n)
	}
}

func testRoleInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreatePermissions(t, s, "a:read")
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	blue := mustCreateOrg(t, s, "Blue", "blue", nil)
	parent := mustCreateRole(t, s, store.Role{Name: "parent"})
	acmeRole := mustCreateRole(t, s, store.Role{Name: "acme-role", OrganizationID: acme.ID})
	selfID := uuid.NewString()
	for _, c := range []struct {
		name string
		r    store.Role
		is   error // nil: any error but ErrConflict
	}{
		{"no name", store.Role{}, nil},
		{"ID not a UUID", store.Role{ID: "role_1", Name: "x"}, nil},
		{"NUL name", store.Role{Name: "x\x00"}, store.ErrInvalidText},
		{"invalid description", store.Role{Name: "x", Description: "\xff"}, store.ErrInvalidText},
		{"invalid condition", store.Role{Name: "x", Allow: []store.RolePermission{{Permission: "a:read", Condition: "\x00"}}}, store.ErrInvalidText},
		{"empty permission", store.Role{Name: "x", Allow: allow("")}, nil},
		{"permission twice", store.Role{Name: "x", Deny: allow("a:read", "a:read")}, nil},
		{"own parent", store.Role{ID: selfID, Name: "x", Parents: []string{selfID}}, nil},
		{"parent twice", store.Role{Name: "x", Parents: []string{parent.ID, parent.ID}}, nil},
		{"unregistered permission", store.Role{Name: "x", Allow: allow("a:read", "b:read")}, store.ErrNotFound},
		{"unregistered denied permission", store.Role{Name: "x", Deny: allow("b:read")}, store.ErrNotFound},
		{"missing parent", store.Role{Name: "x", Parents: []string{parent.ID, uuid.NewString()}}, store.ErrNotFound},
		{"parent not a UUID", store.Role{Name: "x", Parents: []string{"p"}}, store.ErrNotFound},
		{"missing organisation", store.Role{Name: "x", OrganizationID: uuid.NewString()}, store.ErrNotFound},
		{"organisation not a UUID", store.Role{Name: "x", OrganizationID: "acme"}, store.ErrNotFound},
		{"global role, organisation's parent", store.Role{Name: "x", Parents: []string{acmeRole.ID}}, store.ErrNotFound},
		{"other organisation's parent", store.Role{Name: "x", OrganizationID: blue.ID, Parents: []string{parent.ID, acmeRole.ID}}, store.ErrNotFound},
	} {
		_, err := s.CreateRole(ctx, c.r)
		switch {
		case c.is == nil && (err == nil || errors.Is(err, store.ErrConflict)):
			t.Errorf("CreateRole(%s): err = %v, want a validation error", c.name, err)
		case c.is != nil && !errors.Is(err, c.is):
			t.Errorf("CreateRole(%s): err = %v, want %v", c.name, err, c.is)
		}
	}
	// None left a row behind, nor a permission or parent link: each
	// failed CreateRole rolled back its own transaction.
	for table, want := range map[string]int64{"roles": 2, "role_permissions": 0, "role_parents": 0} {
		if n := count(t, s, "SELECT count(*) FROM "+table); n != want {
			t.Errorf("%d rows in %s after invalid creates, want %d", n, table, want)
		}
	}
	// An organisation's role may have global parents and its own
	// organisation's.
	mustCreateRole(t, s, store.Role{Name: "ok", OrganizationID: acme.ID, Parents: []string{parent.ID, acmeRole.ID}})
}

func testRoleUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreatePermissions(t, s, "a:read", "a:write", "b:read")
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	a := mustCreateRole(t, s, store.Role{Name: "a", Allow: allow("a:read")})
	b := mustCreateRole(t, s, store.Role{Name: "b", Parents: []string{a.ID}})
	c := mustCreateRole(t, s, store.Role{Name: "c", Parents: []string{b.ID}})
	orig := mustCreateRole(t, s, store.Role{
		Name: "target", Description: "before", OrganizationID: acme.ID, Allow: allow("a:read", "a:write"),
		Deny: allow("b:read"), Parents: []string{a.ID}, CreatedAt: authzAt,
	})

	at := authzAt.Add(time.Hour)
	in := store.Role{
		ID: orig.ID, Name: "renamed", Description: "after",
		OrganizationID: uuid.NewString(), CreatedAt: authzAt.Add(-time.Hour), // ignored
		Allow:     []store.RolePermission{{Permission: "b:read", Condition: "c"}},
		Parents:   []string{c.ID, b.ID},
		UpdatedAt: at,
	}
	got, err := s.UpdateRole(ctx, in)
	if err != nil {
		t.Fatalf("UpdateRole: %v", err)
	}
	want := in
	want.OrganizationID, want.CreatedAt, want.UpdatedAt = acme.ID, micro(authzAt), micro(at)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UpdateRole returned (-want +got):\n%s", diff)
	}
	if g, err := s.GetRole(ctx, orig.ID); err != nil || !cmp.Equal(want, g) {
		t.Errorf("GetRole after update = %+v, %v; want %+v", g, err, want)
	}

	// A zero UpdatedAt is now; empty lists clear.
	cleared, err := s.UpdateRole(ctx, store.Role{ID: orig.ID, Name: "renamed"})
	if err != nil {
		t.Fatalf("UpdateRole(clear): %v", err)
	}
	checkNow(t, "UpdatedAt", cleared.UpdatedAt)
	if cleared.Allow != nil || cleared.Deny != nil || cleared.Parents != nil || cleared.Description != "" {
		t.Errorf("cleared role = %+v, want no permissions, parents or description", cleared)
	}

	// A failed update changes nothing.
	before, _ := s.GetRole(ctx, c.ID)
	for _, bad := range []struct {
		name string
		r    store.Role
		is   error
	}{
		{"cycle through two", store.Role{ID: a.ID, Name: "a", Allow: allow("a:write"), Parents: []string{c.ID}}, store.ErrConflict},
		{"cycle through one", store.Role{ID: a.ID, Name: "a", Parents: []string{b.ID}}, store.ErrConflict},
		{"taken name", store.Role{ID: c.ID, Name: "a", Allow: allow("a:write")}, store.ErrConflict},
		{"missing permission", store.Role{ID: c.ID, Name: "c2", Allow: allow("zzz")}, store.ErrNotFound},
		{"missing parent", store.Role{ID: c.ID, Name: "c2", Parents: []string{uuid.NewString()}}, store.ErrNotFound},
		{"organisation's parent", store.Role{ID: c.ID, Name: "c2", Parents: []string{orig.ID}}, store.ErrNotFound},
		{"unknown role", store.Role{ID: uuid.NewString(), Name: "x"}, store.ErrNotFound},
		{"ID not a UUID", store.Role{ID: "r", Name: "x"}, store.ErrNotFound},
		{"invalid text", store.Role{ID: c.ID, Name: "\xff"}, store.ErrInvalidText},
	} {
		if _, err := s.UpdateRole(ctx, bad.r); !errors.Is(err, bad.is) {
			t.Errorf("UpdateRole(%s): err = %v, want %v", bad.name, err, bad.is)
		}
	}
	if after, err := s.GetRole(ctx, c.ID); err != nil || !cmp.Equal(before, after) {
		t.Errorf("role c after failed updates = %+v, %v; want unchanged %+v", after, err, before)
	}
	if after, err := s.GetRole(ctx, a.ID); err != nil || !cmp.Equal(a, after) {
		t.Errorf("role a after refused cycles = %+v, %v; want unchanged %+v", after, err, a)
	}
}

// testRoleConcurrentCycle makes two roles each other's parent at once,
// again and again: one update wins, the other sees its link and is
// refused, and no cycle is stored.
func testRoleConcurrentCycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	for round := range 10 {
		a := mustCreateRole(t, s, store.Role{Name: fmt.Sprintf("a%d", round)})
		b := mustCreateRole(t, s, store.Role{Name: fmt.Sprintf("b%d", round)})
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  [2]error
		)
		for i, pair := range [2][2]store.Role{{a, b}, {b, a}} {
			wg.Go(func() {
				<-start
				r := pair[0]
				r.Parents = []string{pair[1].ID}
				_, errs[i] = s.UpdateRole(ctx, r)
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("round %d: UpdateRole: err = %v, want nil or ErrConflict", round, err)
			}
		}
		if ok != 1 {
			t.Errorf("round %d: %d of 2 concurrent updates closing a cycle succeeded, want exactly 1 (errors %v)", round, ok, errs)
		}
		links := count(t, s, "SELECT count(*) FROM role_parents WHERE role_id IN ('"+a.ID+"', '"+b.ID+"')")
		if links != int64(ok) {
			t.Errorf("round %d: %d links stored, want %d", round, links, ok)
		}
	}
}

func testRoleList(t *testing.T, s store.Store) {
	ctx := context.Background()
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	blue := mustCreateOrg(t, s, "Blue", "blue", nil)
	var all, global, inAcme, inBlue []store.Role
	for i := range 7 {
		org := []string{"", acme.ID, blue.ID}[i%3]
		r := mustCreateRole(t, s, store.Role{
			ID: uuid.NewString(), Name: fmt.Sprintf("r%d", i), OrganizationID: org,
			// Two share a time: the ID breaks the tie.
			CreatedAt: authzAt.Add(time.Duration(i/2) * time.Second),
		})
		all = append(all, r)
		switch org {
		case "":
			global = append(global, r)
		case acme.ID:
			inAcme = append(inAcme, r)
		default:
			inBlue = append(inBlue, r)
		}
	}
	sortRoles := func(l []store.Role) []store.Role {
		out := slices.Clone(l)
		slices.SortFunc(out, func(a, b store.Role) int { return byTimeAndID(a.CreatedAt, a.ID, b.CreatedAt, b.ID) })
		return out
	}
	collect := func(f store.RoleFilter) []store.Role {
		t.Helper()
		var got []store.Role
		for range 20 {
			page, next, err := s.ListRoles(ctx, f)
			if err != nil {
				t.Fatalf("ListRoles(%+v): %v", f, err)
			}
			if f.Limit > 0 && len(page) > f.Limit {
				t.Fatalf("page of %d, limit %d", len(page), f.Limit)
			}
			got = append(got, page...)
			if next == "" {
				return got
			}
			f.Cursor = next
		}
		t.Fatal("ListRoles does not end")
		return nil
	}
	for _, c := range []struct {
		name string
		f    store.RoleFilter
		want []store.Role
	}{
		{"all", store.RoleFilter{}, all},
		{"all, pages of 2", store.RoleFilter{Limit: 2}, all},
		{"global", store.RoleFilter{Global: true, Limit: 1}, global},
		{"acme", store.RoleFilter{OrganizationID: acme.ID, Limit: 1}, inAcme},
		{"blue and global", store.RoleFilter{OrganizationID: blue.ID, Global: true, Limit: 3}, append(append([]store.Role(nil), global...), inBlue...)},
		{"unknown organisation", store.RoleFilter{OrganizationID: uuid.NewString()}, nil},
		{"organisation not a UUID", store.RoleFilter{OrganizationID: "acme"}, nil},
		{"organisation not a UUID, and global", store.RoleFilter{OrganizationID: "acme", Global: true}, global},
	} {
		if diff := cmp.Diff(sortRoles(c.want), collect(c.f), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListRoles(%s) (-want +got):\n%s", c.name, diff)
		}
	}
	// The default page size applies; cursors are checked.
	if page, next, err := s.ListRoles(ctx, store.RoleFilter{Limit: -1}); err != nil || len(page) != 7 || next != "" {
		t.Errorf("ListRoles(default limit) = %d roles, %q, %v", len(page), next, err)
	}
	for _, cursor := range []string{"x", keyCursor("r1", "x"), keyCursor("r1", "role"), keyCursor("g1", uuid.NewString()), keyCursor("d1", uuid.NewString())} {
		if _, _, err := s.ListRoles(ctx, store.RoleFilter{Cursor: cursor}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ListRoles(cursor %q): err = %v, want ErrInvalidCursor", cursor, err)
		}
	}
}

// keyCursor returns a keyset cursor of the listing prefix positioned at
// authzAt and id ("r1": roles, "g1": grants, "d1": webhook deliveries),
// in the format the backends hand out, to check they refuse another
// listing's cursor and IDs no row can have.
func keyCursor(prefix, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(prefix + "." + strconv.FormatInt(authzAt.UnixMicro(), 10) + "." + id))
}

func testRoleDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	parent := mustCreateRole(t, s, store.Role{Name: "parent"})
	other := mustCreateRole(t, s, store.Role{Name: "other"})
	child1 := mustCreateRole(t, s, store.Role{Name: "child1", Parents: []string{other.ID, parent.ID}, CreatedAt: authzAt, UpdatedAt: authzAt})
	child2 := mustCreateRole(t, s, store.Role{Name: "child2", Parents: []string{parent.ID}, CreatedAt: authzAt, UpdatedAt: authzAt})
	g1 := mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: parent.ID, CreatedAt: authzAt})
	g2 := mustGrant(t, s, store.RoleGrant{UserID: bob.ID, RoleID: parent.ID, CreatedAt: authzAt.Add(-time.Hour)})
	kept := mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: other.ID})

	// Granted and a parent: refused without force.
	if _, err := s.DeleteRole(ctx, parent.ID, false); !errors.Is(err, store.ErrConflict) {
		t.Errorf("DeleteRole(granted parent): err = %v, want ErrConflict", err)
	}
	// Only a parent: refused.
	lonely := mustCreateRole(t, s, store.Role{Name: "lonely"})
	mustCreateRole(t, s, store.Role{Name: "lonely-child", Parents: []string{lonely.ID}})
	if _, err := s.DeleteRole(ctx, lonely.ID, false); !errors.Is(err, store.ErrConflict) {
		t.Errorf("DeleteRole(parent of another): err = %v, want ErrConflict", err)
	}
	// Only granted: refused.
	if _, err := s.DeleteRole(ctx, other.ID, false); !errors.Is(err, store.ErrConflict) {
		t.Errorf("DeleteRole(granted): err = %v, want ErrConflict", err)
	}
	if _, err := s.GetRole(ctx, parent.ID); err != nil {
		t.Errorf("GetRole after a refused delete: %v", err)
	}
	// Nothing refers to it: deleted without force, with an empty report.
	free := mustCreateRole(t, s, store.Role{Name: "free"})
	if del, err := s.DeleteRole(ctx, free.ID, false); err != nil || del.Grants != nil || del.Children != nil {
		t.Errorf("DeleteRole(free) = %+v, %v; want an empty report", del, err)
	}

	// With force: the grants and the links go, and are reported.
	del, err := s.DeleteRole(ctx, parent.ID, true)
	if err != nil {
		t.Fatalf("DeleteRole(force): %v", err)
	}
	if diff := cmp.Diff([]string{g2.ID, g1.ID}, grantIDs(del.Grants)); diff != "" {
		t.Errorf("removed grants, oldest first (-want +got):\n%s", diff)
	}
	if len(del.Grants) == 2 && !cmp.Equal(g2, del.Grants[0]) {
		t.Errorf("removed grant = %+v, want %+v", del.Grants[0], g2)
	}
	wantChildren := []string{child1.ID, child2.ID}
	if wantChildren[1] < wantChildren[0] {
		wantChildren[0], wantChildren[1] = wantChildren[1], wantChildren[0]
	}
	if diff := cmp.Diff(wantChildren, del.Children); diff != "" {
		t.Errorf("children (-want +got):\n%s", diff)
	}
	if _, err := s.GetRole(ctx, parent.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRole(deleted): err = %v, want ErrNotFound", err)
	}
	for _, g := range []store.RoleGrant{g1, g2} {
		if _, err := s.GetGrant(ctx, g.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetGrant(grant of the deleted role): err = %v, want ErrNotFound", err)
		}
	}
	if _, err := s.GetGrant(ctx, kept.ID); err != nil {
		t.Errorf("GetGrant(grant of another role): %v", err)
	}
	c1, err := s.GetRole(ctx, child1.ID)
	if err != nil || !cmp.Equal([]string{other.ID}, c1.Parents) {
		t.Errorf("child1 after its parent's deletion = %+v, %v; want parents [other]", c1, err)
	}
	checkNow(t, "child's UpdatedAt", c1.UpdatedAt)
	if c2, err := s.GetRole(ctx, child2.ID); err != nil || c2.Parents != nil {
		t.Errorf("child2 after its parent's deletion = %+v, %v; want no parents", c2, err)
	}
	if n := count(t, s, "SELECT count(*) FROM role_parents WHERE parent_id = '"+parent.ID+"'"); n != 0 {
		t.Errorf("%d links to the deleted role remain", n)
	}

	for _, id := range []string{parent.ID, uuid.NewString(), "", "x", "\xff"} {
		for _, force := range []bool{false, true} {
			if _, err := s.DeleteRole(ctx, id, force); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("DeleteRole(%q, force %v): err = %v, want ErrNotFound", id, force, err)
			}
		}
	}
	// The name is free again.
	mustCreateRole(t, s, store.Role{Name: "parent"})
}

func testGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	blue := mustCreateOrg(t, s, "Blue", "blue", nil)
	global := mustCreateRole(t, s, store.Role{Name: "global"})
	acmeRole := mustCreateRole(t, s, store.Role{Name: "acme", OrganizationID: acme.ID})

	id := uuid.NewString()
	full := store.RoleGrant{
		ID: id, UserID: ada.ID, RoleID: acmeRole.ID, OrganizationID: acme.ID,
		ValidFrom: authzAt.In(time.FixedZone("Z", 3600)), ValidUntil: authzAt.Add(24 * time.Hour),
		Condition: `request.ip.startsWith("10.")`, CreatedAt: authzAt.Add(-time.Hour), CreatedBy: bob.ID,
	}
	got, err := s.CreateGrant(ctx, full)
	if err != nil {
		t.Fatalf("CreateGrant: %v", err)
	}
	want := full
	want.ValidFrom, want.ValidUntil, want.CreatedAt = micro(full.ValidFrom), micro(full.ValidUntil), micro(full.CreatedAt)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreateGrant returned (-want +got):\n%s", diff)
	}
	if g, err := s.GetGrant(ctx, id); err != nil || !cmp.Equal(want, g) {
		t.Errorf("GetGrant = %+v, %v; want %+v", g, err, want)
	}

	minimal := mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: global.ID})
	if uuid.MustParse(minimal.ID).Version() != 7 {
		t.Errorf("generated ID %s, want a UUIDv7", minimal.ID)
	}
	checkNow(t, "CreatedAt", minimal.CreatedAt)
	if !minimal.ValidFrom.IsZero() || !minimal.ValidUntil.IsZero() || minimal.OrganizationID != "" || minimal.Condition != "" || minimal.CreatedBy != "" {
		t.Errorf("minimal grant = %+v, want unbounded, global, no condition, no creator", minimal)
	}
	// The same role again, in an organisation (a global role may be
	// granted anywhere), and only one bound.
	inBlue := mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: global.ID, OrganizationID: blue.ID, ValidUntil: authzAt, CreatedAt: authzAt.Add(time.Hour)})
	mustGrant(t, s, store.RoleGrant{UserID: bob.ID, RoleID: global.ID, ValidFrom: authzAt})

	for _, c := range []struct {
		name string
		g    store.RoleGrant
		is   error
	}{
		{"organisation's role, globally", store.RoleGrant{UserID: ada.ID, RoleID: acmeRole.ID}, store.ErrNotFound},
		{"organisation's role, elsewhere", store.RoleGrant{UserID: ada.ID, RoleID: acmeRole.ID, OrganizationID: blue.ID}, store.ErrNotFound},
		{"missing user", store.RoleGrant{UserID: uuid.NewString(), RoleID: global.ID}, store.ErrNotFound},
		{"missing role", store.RoleGrant{UserID: ada.ID, RoleID: uuid.NewString()}, store.ErrNotFound},
		{"missing organisation", store.RoleGrant{UserID: ada.ID, RoleID: global.ID, OrganizationID: uuid.NewString()}, store.ErrNotFound},
		{"user not a UUID", store.RoleGrant{UserID: "ada", RoleID: global.ID}, store.ErrNotFound},
		{"role not a UUID", store.RoleGrant{UserID: ada.ID, RoleID: "\xff"}, store.ErrNotFound},
		{"organisation not a UUID", store.RoleGrant{UserID: ada.ID, RoleID: global.ID, OrganizationID: "x"}, store.ErrNotFound},
		{"taken ID", store.RoleGrant{ID: id, UserID: bob.ID, RoleID: global.ID}, store.ErrConflict},
		{"invalid condition", store.RoleGrant{UserID: ada.ID, RoleID: global.ID, Condition: "\x00"}, store.ErrInvalidText},
		{"invalid creator", store.RoleGrant{UserID: ada.ID, RoleID: global.ID, CreatedBy: "\xff"}, store.ErrInvalidText},
	} {
		if _, err := s.CreateGrant(ctx, c.g); !errors.Is(err, c.is) {
			t.Errorf("CreateGrant(%s): err = %v, want %v", c.name, err, c.is)
		}
	}
	for _, w := range []struct{ from, until time.Time }{{authzAt, authzAt}, {authzAt, authzAt.Add(-time.Second)}} {
		_, err := s.CreateGrant(ctx, store.RoleGrant{UserID: ada.ID, RoleID: global.ID, ValidFrom: w.from, ValidUntil: w.until})
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateGrant(window %v..%v): err = %v, want a validation error", w.from, w.until, err)
		}
	}

	list, err := s.ListUserGrants(ctx, ada.ID)
	if err != nil {
		t.Fatalf("ListUserGrants: %v", err)
	}
	// minimal was created now, years before authzAt.
	if diff := cmp.Diff([]store.RoleGrant{minimal, want, inBlue}, list); diff != "" {
		t.Errorf("ListUserGrants, oldest first (-want +got):\n%s", diff)
	}
	for _, u := range []string{uuid.NewString(), "ada", "", "\xff"} {
		if l, err := s.ListUserGrants(ctx, u); err != nil || len(l) != 0 {
			t.Errorf("ListUserGrants(%q) = %v, %v; want none", u, l, err)
		}
	}

	removed, err := s.DeleteGrant(ctx, id)
	if err != nil || !cmp.Equal(want, removed) {
		t.Errorf("DeleteGrant = %+v, %v; want %+v", removed, err, want)
	}
	for _, g := range []string{id, uuid.NewString(), "", "x", "\xff"} {
		if _, err := s.GetGrant(ctx, g); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetGrant(%q): err = %v, want ErrNotFound", g, err)
		}
		if _, err := s.DeleteGrant(ctx, g); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteGrant(%q): err = %v, want ErrNotFound", g, err)
		}
	}
	// The organisation's role is no longer granted: it can go.
	if _, err := s.DeleteRole(ctx, acmeRole.ID, false); err != nil {
		t.Errorf("DeleteRole(no longer granted): %v", err)
	}
}

func testGrantsOfRoles(t *testing.T, s store.Store) {
	ctx := context.Background()
	r1 := mustCreateRole(t, s, store.Role{Name: "r1"})
	r2 := mustCreateRole(t, s, store.Role{Name: "r2"})
	r3 := mustCreateRole(t, s, store.Role{Name: "r3"})
	var of12 []store.RoleGrant
	for i := range 9 {
		u := mustCreateUser(t, s, newUser(fmt.Sprintf("u%d@example.com", i)))
		role := []store.Role{r1, r2, r3}[i%3]
		g := mustGrant(t, s, store.RoleGrant{ID: uuid.NewString(), UserID: u.ID, RoleID: role.ID, CreatedAt: authzAt.Add(time.Duration(i/2) * time.Minute)})
		if role.ID != r3.ID {
			of12 = append(of12, g)
		}
	}
	// Oldest first, ties by ID.
	slices.SortFunc(of12, func(a, b store.RoleGrant) int { return byTimeAndID(a.CreatedAt, a.ID, b.CreatedAt, b.ID) })
	var got []store.RoleGrant
	cursor := ""
	for range 10 {
		page, next, err := s.ListGrantsOfRoles(ctx, []string{r1.ID, "not-a-uuid", r2.ID, uuid.NewString()}, cursor, 4)
		if err != nil {
			t.Fatalf("ListGrantsOfRoles: %v", err)
		}
		if len(page) > 4 {
			t.Fatalf("page of %d, limit 4", len(page))
		}
		got = append(got, page...)
		if cursor = next; cursor == "" {
			break
		}
	}
	if diff := cmp.Diff(of12, got); diff != "" {
		t.Errorf("ListGrantsOfRoles(r1, r2) pages (-want +got):\n%s", diff)
	}
	for _, ids := range [][]string{nil, {}, {"x", "\xff"}, {uuid.NewString()}} {
		if l, next, err := s.ListGrantsOfRoles(ctx, ids, "", 0); err != nil || len(l) != 0 || next != "" {
			t.Errorf("ListGrantsOfRoles(%q) = %v, %q, %v; want none", ids, l, next, err)
		}
	}
	for _, cursor := range []string{"bad", keyCursor("g1", "grant"), keyCursor("r1", uuid.NewString())} {
		if _, _, err := s.ListGrantsOfRoles(ctx, []string{r1.ID}, cursor, 0); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ListGrantsOfRoles(cursor %q): err = %v, want ErrInvalidCursor", cursor, err)
		}
	}
	tooMany := make([]string, store.MaxGrantRoles+1)
	for i := range tooMany {
		tooMany[i] = r1.ID
	}
	if _, _, err := s.ListGrantsOfRoles(ctx, tooMany, "", 0); err == nil {
		t.Errorf("ListGrantsOfRoles(%d roles) succeeded, want an error", len(tooMany))
	}
}

func testExpiredGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	role := mustCreateRole(t, s, store.Role{Name: "temp"})
	at := func(m int) time.Time { return authzAt.Add(time.Duration(m) * time.Minute) }
	grant := func(until time.Time) store.RoleGrant {
		return mustGrant(t, s, store.RoleGrant{ID: uuid.NewString(), UserID: ada.ID, RoleID: role.ID, ValidUntil: until})
	}
	g10 := grant(at(10))
	g20a, g20b := grant(at(20)), grant(at(20))
	g30 := grant(at(30))
	grant(time.Time{}) // never expires
	mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: role.ID, ValidFrom: at(5)})
	at20 := []string{g20a.ID, g20b.ID}
	if at20[1] < at20[0] {
		at20[0], at20[1] = at20[1], at20[0]
	}
	for _, c := range []struct {
		name          string
		after, before time.Time
		want          []string
	}{
		{"(10, 20]: after is exclusive, before inclusive", at(10), at(20), at20},
		{"(0, 30]", at(0), at(30), append(append([]string{g10.ID}, at20...), g30.ID)},
		{"no lower bound", time.Time{}, at(10), []string{g10.ID}},
		{"(20, 29]", at(20), at(29), nil},
		{"(30, ∞)", at(30), at(100000), nil},
	} {
		got, err := s.ListExpiredGrants(ctx, c.after, c.before)
		if err != nil {
			t.Errorf("ListExpiredGrants(%s): %v", c.name, err)
			continue
		}
		if diff := cmp.Diff(c.want, grantIDs(got), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListExpiredGrants(%s) (-want +got):\n%s", c.name, diff)
		}
	}
	if got, err := s.ListExpiredGrants(ctx, at(0), at(10)); err == nil && len(got) == 1 && !cmp.Equal(g10, got[0]) {
		t.Errorf("ListExpiredGrants grant = %+v, want %+v", got[0], g10)
	}
	if _, err := s.ListExpiredGrants(ctx, at(0), time.Time{}); err == nil {
		t.Error("ListExpiredGrants with a zero before succeeded, want an error")
	}
}

func testAuthzCascades(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreatePermissions(t, s, "a:read")
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	global := mustCreateRole(t, s, store.Role{Name: "global", Allow: allow("a:read")})
	base := mustCreateRole(t, s, store.Role{Name: "base", OrganizationID: acme.ID, Parents: []string{global.ID}, Allow: allow("a:read")})
	top := mustCreateRole(t, s, store.Role{Name: "top", OrganizationID: acme.ID, Parents: []string{base.ID}})
	mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: top.ID, OrganizationID: acme.ID})
	mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: global.ID, OrganizationID: acme.ID})
	keptGlobal := mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: global.ID})
	bobs := mustGrant(t, s, store.RoleGrant{UserID: bob.ID, RoleID: global.ID})

	// Deleting an organisation takes its roles, their links and every
	// grant within it; global roles and grants stay.
	if err := s.DeleteOrganization(ctx, acme.ID); err != nil {
		t.Fatalf("DeleteOrganization with roles and grants: %v", err)
	}
	for _, id := range []string{base.ID, top.ID} {
		if _, err := s.GetRole(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRole(organisation's role) after the organisation's deletion: err = %v, want ErrNotFound", err)
		}
	}
	if g, err := s.ListUserGrants(ctx, ada.ID); err != nil || !cmp.Equal([]string{keptGlobal.ID}, grantIDs(g)) {
		t.Errorf("ada's grants after the organisation's deletion = %v, %v; want only the global one", grantIDs(g), err)
	}
	if n := count(t, s, "SELECT count(*) FROM role_parents"); n != 0 {
		t.Errorf("%d role links remain", n)
	}
	if _, err := s.GetRole(ctx, global.ID); err != nil {
		t.Errorf("GetRole(global): %v", err)
	}

	// Removing a user's row takes the user's grants.
	if err := rawExec(t, s).RawExec(ctx, "DELETE FROM users WHERE id = '"+bob.ID+"'"); err != nil {
		t.Fatalf("delete user row: %v", err)
	}
	if _, err := s.GetGrant(ctx, bobs.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetGrant(removed user's grant): err = %v, want ErrNotFound", err)
	}
}

// testLoadUserAuthz builds
//
//	top ──> left ──> root ──> base
//	   └──> right ─┘
//	acme-admin (organisation's, granted in acme) ──> root
//
// plus an unrelated role, and a grant of top in a time window.
func testLoadUserAuthz(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreatePermissions(t, s, "a:read", "a:write", "b:*", "*")
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))
	acme := mustCreateOrg(t, s, "Acme", "acme", nil)
	base := mustCreateRole(t, s, store.Role{Name: "base", Allow: allow("a:read")})
	root := mustCreateRole(t, s, store.Role{Name: "root", Parents: []string{base.ID}, Deny: []store.RolePermission{{Permission: "*", Condition: "c"}}})
	left := mustCreateRole(t, s, store.Role{Name: "left", Parents: []string{root.ID}, Allow: allow("a:write")})
	right := mustCreateRole(t, s, store.Role{Name: "right", Parents: []string{root.ID}, Allow: allow("b:*")})
	top := mustCreateRole(t, s, store.Role{Name: "top", Parents: []string{left.ID, right.ID}})
	acmeAdmin := mustCreateRole(t, s, store.Role{Name: "admin", OrganizationID: acme.ID, Parents: []string{root.ID}, Allow: allow("*")})
	unrelated := mustCreateRole(t, s, store.Role{Name: "unrelated", Allow: allow("*")})
	mustGrant(t, s, store.RoleGrant{UserID: bob.ID, RoleID: unrelated.ID})

	empty, err := s.LoadUserAuthz(ctx, ada.ID)
	if err != nil || len(empty.Grants) != 0 || len(empty.Roles) != 0 || empty.Roles == nil {
		t.Errorf("LoadUserAuthz(no grants) = %+v, %v; want no grants and an empty map", empty, err)
	}

	g1 := mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: top.ID, ValidFrom: authzAt, ValidUntil: authzAt.Add(time.Hour), CreatedAt: authzAt})
	g2 := mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: acmeAdmin.ID, OrganizationID: acme.ID, CreatedAt: authzAt.Add(time.Second)})
	// The same role twice: read once.
	g3 := mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: left.ID, Condition: "x", CreatedAt: authzAt.Add(2 * time.Second)})

	wantRoles := map[string]store.Role{}
	for _, r := range []store.Role{base, root, left, right, top, acmeAdmin} {
		wantRoles[r.ID] = r
	}
	check := func(what string, s store.Store) {
		t.Helper()
		got, err := s.LoadUserAuthz(ctx, ada.ID)
		if err != nil {
			t.Fatalf("LoadUserAuthz(%s): %v", what, err)
		}
		if diff := cmp.Diff([]store.RoleGrant{g1, g2, g3}, got.Grants); diff != "" {
			t.Errorf("LoadUserAuthz(%s) grants (-want +got):\n%s", what, diff)
		}
		if diff := cmp.Diff(wantRoles, got.Roles); diff != "" {
			t.Errorf("LoadUserAuthz(%s) roles (-want +got):\n%s", what, diff)
		}
	}
	check("diamond", s)

	// A cycle the store refuses to write (written by hand here) still
	// ends the walk.
	if err := rawExec(t, s).RawExec(ctx, "INSERT INTO role_parents (role_id, parent_id, position) VALUES ('"+base.ID+"', '"+top.ID+"', 0)"); err != nil {
		t.Fatalf("insert a cycle: %v", err)
	}
	base.Parents = []string{top.ID}
	wantRoles[base.ID] = base
	check("cycle", s)

	for _, u := range []string{uuid.NewString(), "ada", "", "\xff"} {
		if got, err := s.LoadUserAuthz(ctx, u); err != nil || len(got.Grants) != 0 || len(got.Roles) != 0 {
			t.Errorf("LoadUserAuthz(%q) = %+v, %v; want nothing", u, got, err)
		}
	}

	// Inside a transaction it sees the transaction's writes.
	err = s.InTx(ctx, func(tx store.Store) error {
		if _, err := tx.DeleteGrant(ctx, g3.ID); err != nil {
			return err
		}
		got, err := tx.LoadUserAuthz(ctx, ada.ID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{g1.ID, g2.ID}, grantIDs(got.Grants)); diff != "" {
			t.Errorf("LoadUserAuthz in the transaction (-want +got):\n%s", diff)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx: %v", err)
	}
	check("after rollback", s)

	// A disabled user holds nothing; their grants stay listed and count
	// again once they are enabled.
	u, err := s.GetUser(ctx, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	u.Status = store.UserDisabled
	if _, err := s.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadUserAuthz(ctx, ada.ID); err != nil || len(got.Grants) != 0 {
		t.Errorf("LoadUserAuthz(disabled) = %d grants, %v; want none", len(got.Grants), err)
	}
	if listed, err := s.ListUserGrants(ctx, ada.ID); err != nil || len(listed) != 3 {
		t.Errorf("ListUserGrants(disabled) = %d, %v; want the 3 grants", len(listed), err)
	}
	u.Status = store.UserActive
	if _, err := s.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	check("enabled again", s)
}

func testAuthzInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	ada := mustCreateUser(t, s, newUser("ada@example.com"))
	mustCreatePermissions(t, s, "kept:read")
	kept := mustCreateRole(t, s, store.Role{Name: "kept", Allow: allow("kept:read")})
	keptChild := mustCreateRole(t, s, store.Role{Name: "kept-child", Parents: []string{kept.ID}})
	keptGrant := mustGrant(t, s, store.RoleGrant{UserID: ada.ID, RoleID: kept.ID})

	err := s.InTx(ctx, func(tx store.Store) error {
		if _, err := tx.CreatePermission(ctx, store.Permission{Name: "tx:read"}); err != nil {
			return err
		}
		r, err := tx.CreateRole(ctx, store.Role{Name: "tx", Allow: allow("tx:read"), Parents: []string{kept.ID}})
		if err != nil {
			return err
		}
		if _, err := tx.GetRole(ctx, r.ID); err != nil {
			return fmt.Errorf("GetRole in the transaction: %w", err)
		}
		r.Allow = allow("tx:read", "kept:read")
		if _, err := tx.UpdateRole(ctx, r); err != nil {
			return err
		}
		if _, err := tx.CreateGrant(ctx, store.RoleGrant{UserID: ada.ID, RoleID: r.ID}); err != nil {
			return err
		}
		if page, _, err := tx.ListGrantsOfRoles(ctx, []string{r.ID}, "", 0); err != nil || len(page) != 1 {
			return fmt.Errorf("ListGrantsOfRoles in the transaction = %v, %w; want the grant", page, err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx: %v", err)
	}

	// A refused change inside a transaction is reported as outside (on
	// PostgreSQL it also aborts the transaction: the caller rolls back).
	for name, refuse := range map[string]func(tx store.Store) error{
		"DeleteRole(granted)": func(tx store.Store) error { _, err := tx.DeleteRole(ctx, kept.ID, false); return err },
		"DeletePermission(in use)": func(tx store.Store) error {
			return tx.DeletePermission(ctx, "kept:read")
		},
		"CreateRole(taken name)": func(tx store.Store) error {
			_, err := tx.CreateRole(ctx, store.Role{Name: "kept"})
			return err
		},
		"UpdateRole(cycle)": func(tx store.Store) error {
			_, err := tx.UpdateRole(ctx, store.Role{ID: kept.ID, Name: "kept", Parents: []string{keptChild.ID}})
			return err
		},
	} {
		err := s.InTx(ctx, func(tx store.Store) error {
			if _, err := tx.CreatePermission(ctx, store.Permission{Name: "tx:write"}); err != nil {
				return err
			}
			return refuse(tx)
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("InTx(%s): err = %v, want ErrConflict", name, err)
		}
	}

	// A forced deletion and changes, rolled back.
	err = s.InTx(ctx, func(tx store.Store) error {
		if _, err := tx.DeleteRole(ctx, kept.ID, true); err != nil {
			return err
		}
		if _, err := tx.GetRole(ctx, kept.ID); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("GetRole(deleted) in the transaction: err = %v, want ErrNotFound", err)
		}
		if err := tx.DeletePermission(ctx, "kept:read"); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx(force delete): %v", err)
	}

	for table, want := range map[string]int64{"permissions": 1, "roles": 2, "role_permissions": 1, "role_parents": 1, "role_grants": 1} {
		if n := count(t, s, "SELECT count(*) FROM "+table); n != want {
			t.Errorf("%d rows in %s after rollbacks, want %d", n, table, want)
		}
	}
	if r, err := s.GetRole(ctx, kept.ID); err != nil || !cmp.Equal(kept, r) {
		t.Errorf("GetRole(kept) = %+v, %v; want %+v", r, err, kept)
	}
	if r, err := s.GetRole(ctx, keptChild.ID); err != nil || !cmp.Equal(keptChild, r) {
		t.Errorf("GetRole(kept-child) = %+v, %v; want %+v", r, err, keptChild)
	}
	if g, err := s.GetGrant(ctx, keptGrant.ID); err != nil || !cmp.Equal(keptGrant, g) {
		t.Errorf("GetGrant(kept) = %+v, %v; want %+v", g, err, keptGrant)
	}
	// The store still takes writes: no transaction was left open.
	mustCreatePermissions(t, s, "after:read")
}

// testAuthzBulkRollback stores 1,000 grants (the most a bulk request
// carries) in one transaction, then rolls it back.
func testAuthzBulkRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 1000
	role := mustCreateRole(t, s, store.Role{Name: "bulk"})
	users := make([]store.User, 10)
	for i := range users {
		users[i] = mustCreateUser(t, s, newUser(fmt.Sprintf("bulk%d@example.com", i)))
	}
	err := s.InTx(ctx, func(tx store.Store) error {
		for i := range n {
			if _, err := tx.CreateGrant(ctx, store.RoleGrant{UserID: users[i%len(users)].ID, RoleID: role.ID}); err != nil {
				return fmt.Errorf("grant #%d: %w", i, err)
			}
		}
		page, _, err := tx.ListGrantsOfRoles(ctx, []string{role.ID}, "", store.MaxGrantLimit)
		if err != nil {
			return err
		}
		if len(page) != n {
			t.Errorf("%d grants in the transaction, want %d", len(page), n)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx: %v", err)
	}
	if c := count(t, s, "SELECT count(*) FROM role_grants"); c != 0 {
		t.Errorf("%d grants after the rollback, want none", c)
	}
	if _, err := s.DeleteRole(ctx, role.ID, false); err != nil {
		t.Errorf("DeleteRole(no grant left): %v", err)
	}
}

// adminRoleID is the built-in admin role that migration 0018 seeds.
const adminRoleID = "0192f000-0000-7000-8000-000000000001"

// testBuiltinRolesUpgrade: the migration that moves administration onto
// RBAC grants the built-in admin role to every administrator of the
// release before it, and to nobody else; undone, it removes its roles.
func testBuiltinRolesUpgrade(t *testing.T, s store.Store) {
	ctx := context.Background()
	// The users are created at the latest version (CreateUser writes the
	// columns later migrations added); reverting down to 0018 keeps them.
	admin := newUser("old-admin@example.com")
	admin.IsAdmin = true
	admin = mustCreateUser(t, s, admin)
	plain := mustCreateUser(t, s, newUser("plain@example.com"))
	gone := newUser("gone-admin@example.com")
	gone.IsAdmin = true
	gone = mustCreateUser(t, s, gone)
	if err := s.SoftDeleteUser(ctx, gone.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := s.Migrator().Down(ctx)
		if err != nil {
			t.Fatalf("Down: %v", err)
		}
		if m.Version < 18 {
			t.Fatalf("Down reverted migration %d before 18", m.Version)
		}
		if m.Version == 18 {
			break
		}
	}
	if _, err := s.GetRole(ctx, adminRoleID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRole(admin) after Down: %v, want ErrNotFound", err)
	}
	if grants, err := s.ListUserGrants(ctx, admin.ID); err != nil || len(grants) != 0 {
		t.Fatalf("ListUserGrants(admin) after Down = %v, %v; want none", grants, err)
	}
	if _, err := s.Migrator().Up(ctx); err != nil {
		t.Fatalf("Up: %v", err)
	}
	for _, c := range []struct {
		u    store.User
		want int
	}{{admin, 1}, {plain, 0}, {gone, 0}} {
		grants, err := s.ListUserGrants(ctx, c.u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(grants) != c.want {
			t.Errorf("%s has %d grants after the upgrade, want %d", c.u.Email, len(grants), c.want)
		}
		for _, g := range grants {
			if g.RoleID != adminRoleID || g.OrganizationID != "" || !g.ValidFrom.IsZero() || !g.ValidUntil.IsZero() || g.Condition != "" {
				t.Errorf("%s's grant = %+v, want a plain global grant of admin", c.u.Email, g)
			}
			if _, err := uuid.Parse(g.ID); err != nil {
				t.Errorf("grant ID %q: %v", g.ID, err)
			}
			if got, err := s.GetGrant(ctx, g.ID); err != nil || got.ID != g.ID {
				t.Errorf("GetGrant(%s) = %+v, %v", g.ID, got, err)
			}
		}
	}
	r, err := s.GetRoleByName(ctx, "admin", "")
	if err != nil || r.ID != adminRoleID || len(r.Allow) != 1 || r.Allow[0].Permission != "*" {
		t.Errorf("GetRoleByName(admin) = %+v, %v", r, err)
	}
}
