package authz

import "strings"

// Wildcard is the permission that matches every permission, and the action
// that matches every action of a resource.
const Wildcard = "*"

// maxPermissionLength bounds a permission string.
const maxPermissionLength = 128

// ValidPermission reports whether s is a permission or permission pattern:
// "resource:action", where resource and action are made of lowercase
// letters, digits, '_', '-' and '.', and action may be "*" (every action of
// the resource); or the single "*" (everything).
func ValidPermission(s string) bool {
	if s == Wildcard {
		return true
	}
	if len(s) > maxPermissionLength {
		return false
	}
	resource, action, ok := strings.Cut(s, ":")
	if !ok || !validPart(resource) {
		return false
	}
	return action == Wildcard || validPart(action)
}

// concretePermission reports whether s is a permission that can be asked
// for: valid and without a wildcard.
func concretePermission(s string) bool {
	return ValidPermission(s) && !strings.Contains(s, Wildcard)
}

func validPart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// Matches reports whether the permission pattern grants (or, in a deny rule,
// takes away) permission: "*" matches every permission, "resource:*" every
// permission of the resource, and any other pattern only itself. Matching is
// exact (no case folding, no prefixes): "invoices:*" does not match
// "invoices" nor "invoices.archive:read". An invalid pattern matches nothing.
func Matches(pattern, permission string) bool {
	if !ValidPermission(pattern) || !ValidPermission(permission) {
		return false
	}
	return matches(pattern, permission)
}

// matches is Matches for a valid permission: an invalid pattern cannot
// match one, so it needs no validation of its own.
func matches(pattern, permission string) bool {
	if pattern == Wildcard {
		return true
	}
	if resource, ok := strings.CutSuffix(pattern, ":"+Wildcard); ok {
		r, _, _ := strings.Cut(permission, ":")
		return r == resource && permission != Wildcard
	}
	return pattern == permission
}
