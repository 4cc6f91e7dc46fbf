package authz

import (
	"fmt"
	"testing"
	"time"
)

// benchInput is a user with 10 grants over a 3-level hierarchy: each
// granted role (top) has two parents (mid), each of which has two parents
// of its own (base), with rules at every level. Two grants are
// organisation-scoped, two have conditions and one has expired. The
// permission asked is allowed by a base role every grant reaches and by
// one mid role, and every mid role has a conditional deny for it that
// does not hold: 8 grants apply, 48 roles are visited, 11 rules match.
func benchInput() Input {
	roles := map[string]Role{}
	for i := range 8 {
		r := Role{
			ID:    fmt.Sprintf("base%d", i),
			Allow: []PermissionRule{{Permission: fmt.Sprintf("res%d:read", i)}, {Permission: fmt.Sprintf("res%d:list", i)}},
		}
		if i == 0 {
			r.Allow = append(r.Allow, PermissionRule{Permission: "invoices:read"})
		}
		roles[r.ID] = r
	}
	for i := range 6 {
		r := Role{
			ID:      fmt.Sprintf("mid%d", i),
			Allow:   []PermissionRule{{Permission: fmt.Sprintf("res%d:*", i)}},
			Deny:    []PermissionRule{{Permission: "invoices:*", Condition: `request.country == "KP"`}},
			Parents: []string{"base0", fmt.Sprintf("base%d", i+1)},
		}
		if i == 1 {
			r.Allow = append(r.Allow, PermissionRule{Permission: "invoices:*", Condition: "request.mfa"})
		}
		roles[r.ID] = r
	}
	var grants []Grant
	for i := range 10 {
		id := fmt.Sprintf("top%d", i)
		roles[id] = Role{
			ID:      id,
			Allow:   []PermissionRule{{Permission: fmt.Sprintf("top%d:write", i), Condition: "request.mfa"}},
			Parents: []string{fmt.Sprintf("mid%d", i%6), fmt.Sprintf("mid%d", (i+1)%6)},
		}
		g := Grant{ID: fmt.Sprintf("g%02d", i), RoleID: id}
		switch i {
		case 1, 2:
			g.OrganizationID = "o1"
		case 3:
			g.Condition = `request.ip.startsWith("10.")`
		case 4:
			g.Condition = "user.email_verified"
		case 5:
			g.ValidUntil = t0.Add(-time.Hour)
		case 6:
			g.OrganizationID = "o2"
		}
		grants = append(grants, g)
	}
	return Input{
		Grants:     grants,
		Roles:      roles,
		Permission: "invoices:read",
		Resource:   Resource{Type: "invoice", ID: "i1", OrganizationID: "o1", OwnerID: "u1"},
		Request:    Request{IP: "10.0.0.1", Time: t0, MFA: true, Country: "FR"},
		User:       User{ID: "u1", EmailVerified: true, Organizations: []string{"o1"}},
	}
}

// BenchmarkDecide is one decision with the conditions' programs cached
// (the steady state).
func BenchmarkDecide(b *testing.B) {
	e := newEngine(b)
	in := benchInput()
	if d := e.Decide(in); !d.Allowed || len(d.Matched) != 11 {
		b.Fatalf("decision %s, %d matched: %+v", d.Reason, len(d.Matched), d.Matched)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(in); !d.Allowed {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkDecideExplain is the same decision with an explanation.
func BenchmarkDecideExplain(b *testing.B) {
	e := newEngine(b)
	in := benchInput()
	in.Explain = true
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(in); !d.Allowed {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkCompile is a cache miss: parse, check and plan a condition.
func BenchmarkCompile(b *testing.B) {
	c := newCompiler(b, CompilerOptions{CacheSize: 1})
	exprs := [2]string{`request.mfa && resource.owner_id == user.id`, `cidr("10.0.0.0/8").containsIP(request.ip)`}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Compile(exprs[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
