// Package catalog is the catalogue of webhook event types: each type's
// name, what it means and the JSON Schema (2020-12) of its data, and how
// the events of the bus (package event) become webhook messages. The
// outbox (package webhook) records the Messages of every event in the
// transaction of its change, and wraps each in the envelope
// {id, type, timestamp, data}.
//
// A payload carries ids, the changed fields and context useful to a
// receiver (the client's IP address and user agent, a session's device,
// a method, a provider, a reason, a lock's duration); never a secret, a
// token, a code, a password hash or a phone number in full.
package catalog

import (
	"cmp"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Type is one event type of the catalogue.
type Type struct {
	Name        string
	Description string
	// Schema is the JSON Schema (2020-12) of the type's data.
	Schema json.RawMessage
}

//go:embed schemas/*.json
var schemaFiles embed.FS

// descriptions says what each type means; its keys are the catalogue.
var descriptions = map[string]string{
	"user.created": "An account was created: by sign-up, by an operator (gatehouse users create), by an import, " +
		"or by a first sign-in with an external identity (source says which).",
	"user.updated": "Fields of an account's profile changed (PATCH /v1/me, an address change confirmed, or the clean-up " +
		"of an account claimed by the owner of its address): their names and new values.",
	"user.deleted":          "An administrator deleted an account.",
	"user.email_verified":   "The owner of the account's address proved it (method says how).",
	"user.password_changed": "The user changed their password (their other sessions end).",
	"user.password_reset":   "The user set a new password with a reset link (every session ends).",
	"user.locked": "Sign-in was locked for a while: after too many wrong passwords (lock sign_in), or second-factor " +
		"verification after too many wrong codes (lock mfa).",
	"user.unlocked": "An administrator lifted the locks on an account's sign-in (POST /v1/admin/users/{id}/unlock). " +
		"A lock that simply ends with time sends no event.",
	"user.disabled":   "An administrator disabled an account (its sessions end).",
	"user.enabled":    "An administrator enabled a disabled account.",
	"session.created": "A sign-in finished and its session started.",
	"session.revoked": "A session ended before its time (reason says why): one event per session.",
	"session.refresh_reuse_detected": "A refresh token that had been rotated already was presented again after its grace " +
		"period: it may have been stolen, and its session was ended.",
	"mfa.enrolled":                 "A second factor was confirmed and is now active, or a passkey registered (method webauthn).",
	"mfa.removed":                  "A confirmed second factor or a passkey was removed.",
	"mfa.backup_codes_regenerated": "The user generated new backup codes; the old ones no longer work.",
	"identity.linked":              "An external identity (a social or enterprise provider's account) was linked to an account.",
	"identity.unlinked":            "An external identity was removed from an account.",
	"organization.member_added":    "An administrator made a user a member of an organisation.",
	"organization.member_removed":  "An administrator took a user out of an organisation.",
	"security.lockout":             "Too many wrong passwords locked an account's sign-in (the security view of user.locked).",
	"security.mfa_locked":          "Too many wrong second-factor codes locked an account's verification (the security view of user.locked).",
	"security.refresh_reuse":       "A stolen refresh token is suspected (the security view of session.refresh_reuse_detected).",
	"security.incident_opened": "Correlation opened a security incident at or above the alert severity " +
		"(GATEHOUSE_SECURITY_ALERT_SEVERITY): credential stuffing from one address, an account attacked from many, one device " +
		"on many accounts, one account from many countries.",
	"security.incident_escalated": "A security incident notified earlier is still open after GATEHOUSE_SECURITY_ESCALATE_AFTER: a reminder.",
	"security.incident_resolved":  "An administrator resolved a security incident.",
	"security.alert": "A security event at or above the alert severity was recorded (a sign-in blocked by its risk, a " +
		"session anomaly, an account disowned …), unless it only extended an incident already reported.",
	"webhook.test": "A test event sent on request (POST /v1/admin/webhooks/{id}/test).",
}

// types is the catalogue, built once from descriptions and the schema
// files (which must match one to one).
var types = sync.OnceValue(func() []Type {
	out := make([]Type, 0, len(descriptions))
	for name, desc := range descriptions {
		b, err := schemaFiles.ReadFile("schemas/" + name + ".json")
		if err != nil {
			panic(fmt.Sprintf("catalog: no schema for %s: %v", name, err))
		}
		out = append(out, Type{Name: name, Description: desc, Schema: json.RawMessage(b)})
	}
	slices.SortFunc(out, func(a, b Type) int { return cmp.Compare(a.Name, b.Name) })
	return out
})

// Types returns the catalogue, sorted by name. The caller must not change
// what it returns.
func Types() []Type { return types() }

// Lookup returns the type with this name.
func Lookup(name string) (Type, bool) {
	all := types()
	i, ok := slices.BinarySearchFunc(all, name, func(t Type, n string) int { return strings.Compare(t.Name, n) })
	if !ok {
		return Type{}, false
	}
	return all[i], true
}
