package provider

import (
	"net/http"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// Google is an OpenID Connect provider (issuer https://accounts.google.com
// unless ISSUER says otherwise). With ALLOWED_DOMAINS only Google
// Workspace accounts whose hd claim names one of the domains may sign in;
// the email's domain is not evidence (a consumer account can carry any
// address).
func newGoogle(s Settings, client *http.Client) *oidcProvider {
	p := newOIDCProvider(s, client)
	if s.Issuer == googleIssuer {
		p.issuerAlias = "accounts.google.com" // go-oidc accepts it from Google
	}
	switch len(s.AllowedDomains) {
	case 0:
	case 1:
		// A hint for the account chooser, not a check.
		p.authParams = []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("hd", s.AllowedDomains[0])}
	default:
		p.authParams = []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("hd", "*")}
	}
	allowed := s.AllowedDomains
	p.check = func(_ *oidcEndpoints, claims map[string]any) error {
		return checkHostedDomain(claims, allowed)
	}
	return p
}

const googleIssuer = "https://accounts.google.com"

// checkHostedDomain enforces ALLOWED_DOMAINS on Google's hd claim.
func checkHostedDomain(claims map[string]any, allowed []string) error {
	if len(allowed) == 0 {
		return nil
	}
	hd := strings.ToLower(claimString(claims, "hd"))
	if hd == "" {
		return errorf(CodeDomainNotAllowed, "not a Google Workspace account (no hd claim)")
	}
	if !slices.Contains(allowed, hd) {
		return errorf(CodeDomainNotAllowed, "Workspace domain %q is not allowed", hd)
	}
	return nil
}
