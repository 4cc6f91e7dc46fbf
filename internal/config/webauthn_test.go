package config

import (
	"slices"
	"strings"
	"testing"
)

// TestWebAuthnSettings: every bad passkey setting is named, and the
// relying party defaults to the issuer's host and origin.
func TestWebAuthnSettings(t *testing.T) {
	_, _, err := Load(envOf(map[string]string{
		"GATEHOUSE_WEBAUTHN_RP_ID":             "https://example.com",
		"GATEHOUSE_WEBAUTHN_ORIGINS":           "example.com,https://app.example.com/path",
		"GATEHOUSE_WEBAUTHN_USER_VERIFICATION": "sometimes",
		"GATEHOUSE_WEBAUTHN_ATTESTATION":       "maybe",
		"GATEHOUSE_WEBAUTHN_ALLOWED_AAGUIDS":   "not-a-uuid",
	}))
	ps := problems(t, err)
	for _, name := range []string{"WEBAUTHN_RP_ID", "WEBAUTHN_ORIGINS", "WEBAUTHN_USER_VERIFICATION", "WEBAUTHN_ATTESTATION", "WEBAUTHN_ALLOWED_AAGUIDS"} {
		if !slices.ContainsFunc(ps, func(p string) bool { return strings.HasPrefix(p, Prefix+name+":") }) {
			t.Errorf("no problem names %s: %v", name, ps)
		}
	}

	_, _, err = Load(envOf(map[string]string{"GATEHOUSE_WEBAUTHN_RP_ID": "example.com", "GATEHOUSE_WEBAUTHN_ORIGINS": "https://login.example.com,https://example.org"}))
	if ps := problems(t, err); len(ps) != 1 || !strings.Contains(ps[0], "example.org") {
		t.Errorf("an origin outside the RP ID: %v", ps)
	}
	_, _, err = Load(envOf(map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://auth.example.com", "GATEHOUSE_WEBAUTHN_ORIGINS": "http://auth.example.com"}))
	if err == nil || !slices.ContainsFunc(problems(t, err), func(p string) bool { return strings.Contains(p, "WEBAUTHN_ORIGINS") }) {
		t.Errorf("plain-HTTP origin in production: %v", err)
	}

	c, _, err := Load(envOf(map[string]string{"GATEHOUSE_ISSUER": "https://auth.example.com:8443"}))
	if err != nil {
		t.Fatal(err)
	}
	if id, origins := c.WebAuthnRP(); id != "auth.example.com" || !slices.Equal(origins, []string{"https://auth.example.com:8443"}) {
		t.Errorf("defaults: %q %v", id, origins)
	}
	c, _, _ = Load(envOf(map[string]string{"GATEHOUSE_WEBAUTHN_RP_ID": "example.com", "GATEHOUSE_WEBAUTHN_ORIGINS": "https://app.example.com"}))
	if id, origins := c.WebAuthnRP(); id != "example.com" || !slices.Equal(origins, []string{"https://app.example.com"}) {
		t.Errorf("settings: %q %v", id, origins)
	}
}
