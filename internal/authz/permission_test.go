package authz

import (
	"strings"
	"testing"
)

func TestValidPermission(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"*", true},
		{"invoices:read", true},
		{"invoices:*", true},
		{"billing.invoices:read-all", true},
		{"v2_reports:export.csv", true},
		{"a:b", true},
		{"", false},
		{"invoices", false},
		{"invoices:", false},
		{":read", false},
		{"*:read", false},
		{"*:*", false},
		{"invoices:re*", false},
		{"invoices:read:extra", false},
		{"Invoices:read", false},
		{"invoices:Read", false},
		{"invoices :read", false},
		{"invoices:read ", false},
		{"inv/oices:read", false},
		{"facturé:lire", false},
		{"**", false},
		{"invoices:" + strings.Repeat("a", maxPermissionLength), false},
	}
	for _, tt := range tests {
		if got := ValidPermission(tt.in); got != tt.want {
			t.Errorf("ValidPermission(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestMatches(t *testing.T) {
	tests := []struct {
		pattern, permission string
		want                bool
	}{
		{"*", "invoices:read", true},
		{"*", "*", true},
		{"*", "invoices:*", true},
		{"invoices:*", "invoices:read", true},
		{"invoices:*", "invoices:delete", true},
		{"invoices:*", "invoices:*", true},
		{"invoices:*", "*", false},
		{"invoices:*", "reports:read", false},
		{"invoices:*", "invoices.archive:read", false},
		{"invoices.archive:*", "invoices:read", false},
		{"invoices:read", "invoices:read", true},
		{"invoices:read", "invoices:write", false},
		{"invoices:read", "invoices:*", false},
		{"invoices:read", "*", false},
		{"invoices:read", "invoices:reader", false},
		{"invoices:read", "Invoices:read", false},
		{"invoices:read", "reports:read", false},
		{"bad pattern", "bad pattern", false},
		{"invoices:read", "bad", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if got := Matches(tt.pattern, tt.permission); got != tt.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", tt.pattern, tt.permission, got, tt.want)
		}
	}
}

func FuzzMatches(f *testing.F) {
	for _, s := range [][2]string{{"*", "invoices:read"}, {"invoices:*", "invoices:read"}, {"invoices:read", "invoices:read"}, {"a:*", "a:*"}, {":*", ":"}, {"*:*", "x:y"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, permission string) {
		m := Matches(pattern, permission)
		if m && (!ValidPermission(pattern) || !ValidPermission(permission)) {
			t.Fatalf("Matches(%q, %q) with an invalid argument", pattern, permission)
		}
		if concretePermission(permission) && matches(pattern, permission) != m {
			t.Fatalf("matches(%q, %q) = %v, Matches %v", pattern, permission, !m, m)
		}
		if ValidPermission(permission) && (!Matches(permission, permission) || !Matches(Wildcard, permission)) {
			t.Fatalf("%q does not match itself or *", permission)
		}
	})
}
