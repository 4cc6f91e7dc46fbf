package provider

import (
	"errors"
	"strings"
	"testing"
)

// FuzzNextLink: a provider's Link header yields nothing or one URL taken
// from it.
func FuzzNextLink(f *testing.F) {
	f.Add(`<https://api.github.com/user/orgs?page=2>; rel="next", <https://api.github.com/user/orgs?page=5>; rel="last"`)
	f.Add(`<>; rel=next`)
	f.Add(`<a>;rel="next"<b>; rel="next"`)
	f.Fuzz(func(t *testing.T, h string) {
		if got := nextLink(h); got != "" && !strings.Contains(h, "<"+got+">") {
			t.Fatalf("nextLink(%q) = %q, not from the header", h, got)
		}
	})
}

// FuzzFromCallbackError: anything in a callback URL becomes a known code
// with a fixed description.
func FuzzFromCallbackError(f *testing.F) {
	f.Add("access_denied", "The user denied access")
	f.Add("temporarily_unavailable", "")
	f.Add("\x00<script>", strings.Repeat("é", 300))
	f.Fuzz(func(t *testing.T, param, desc string) {
		var pe *Error
		if err := FromCallbackError(param, desc); !errors.As(err, &pe) {
			t.Fatalf("%v is not an *Error", err)
		}
		if _, ok := descriptions[pe.Code]; !ok || pe.Description != descriptions[pe.Code] {
			t.Fatalf("code %q description %q", pe.Code, pe.Description)
		}
	})
}

// FuzzFromMap: arbitrary settings never panic, and every problem names a
// variable it was given or one of a block it found.
func FuzzFromMap(f *testing.F) {
	f.Add("GATEHOUSE_SOCIAL_OKTA_ISSUER", "http://x")
	f.Add("social_a-b_type", "oidc")
	f.Add("GATEHOUSE_SOCIAL__", "x")
	f.Fuzz(func(t *testing.T, name, value string) {
		got, problems := FromMap(map[string]string{name: value, "GATEHOUSE_SOCIAL_GOOGLE_CLIENT_ID": "c"})
		for _, p := range problems {
			if !strings.HasPrefix(p, name+":") && !strings.HasPrefix(p, EnvPrefix) {
				t.Fatalf("problem %q names no variable", p)
			}
		}
		for _, s := range got {
			if !validID(s.ID) {
				t.Fatalf("settings with ID %q", s.ID)
			}
		}
	})
}
