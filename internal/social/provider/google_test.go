package provider

import (
	"context"
	"testing"
)

func TestGoogleHostedDomain(t *testing.T) {
	m := startIdP(t)
	settings := func(domains ...string) Settings {
		return Settings{ID: "google", ClientID: m.ClientID, ClientSecret: m.ClientSecret, Issuer: m.Issuer(), AllowedDomains: domains}
	}
	for _, tc := range []struct {
		name    string
		allowed []string
		hd      any // the token's hd claim; nil: none
		hint    string
		want    string
	}{
		{"any account", nil, nil, "", ""},
		{"workspace account, no restriction", nil, "example.com", "", ""},
		{"allowed domain", []string{"example.com"}, "example.com", "example.com", ""},
		{"allowed domain, other case", []string{"Example.COM"}, "example.com", "example.com", ""},
		{"one of several", []string{"a.example", "example.com"}, "example.com", "*", ""},
		{"other domain", []string{"example.com"}, "evil.example", "example.com", CodeDomainNotAllowed},
		{"consumer account", []string{"example.com"}, nil, "example.com", CodeDomainNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustNew(t, settings(tc.allowed...))
			if p.Type() != TypeGoogle {
				t.Fatalf("type %s", p.Type())
			}
			m.QueueUser(newUser(func(u *testUser) {
				if tc.hd != nil {
					u.extra = map[string]any{"hd": tc.hd}
				}
			}))
			a := newAttempt()
			if got := mustParse(p.AuthCodeURL(a.state, a.verifier, a.nonce, callback)).Query().Get("hd"); got != tc.hint {
				t.Errorf("hd hint %q, want %q", got, tc.hint)
			}
			code := signIn(t, p, a)
			prof, err := p.Exchange(context.Background(), code, a.verifier, a.nonce, callback)
			if tc.want != "" {
				wantCode(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if prof.Provider != "google" || prof.Subject != "1234567890" || !prof.EmailVerified {
				t.Errorf("profile %+v", prof)
			}
		})
	}
}

func TestGoogleDefaults(t *testing.T) {
	s := Settings{ID: "google", ClientID: "c", ClientSecret: "s"}.withDefaults()
	if s.Type != TypeGoogle || s.Issuer != "https://accounts.google.com" {
		t.Errorf("defaults %+v", s)
	}
	p := mustNew(t, s).(*oidcProvider)
	if p.issuerAlias != "accounts.google.com" {
		t.Errorf("issuer alias %q", p.issuerAlias)
	}
}
