package provider

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/oauth2"
)

const (
	microsoftLogin = "https://login.microsoftonline.com"
	microsoftGraph = "https://graph.microsoft.com/v1.0"
	// msaTenantID is the tenant of personal Microsoft accounts.
	msaTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"
	// tenantPlaceholder stands for the tenant in the issuer that the
	// multi-tenant discovery documents announce.
	tenantPlaceholder = "{tenantid}"
)

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// multiTenant reports whether tenant is one of Entra ID's shared
// endpoints, whose tokens come from many issuers.
func multiTenant(tenant string) bool {
	return tenant == "common" || tenant == "organizations" || tenant == "consumers"
}

// Microsoft is Entra ID's v2.0 OpenID Connect endpoint for TENANT
// (common, organizations, consumers or a tenant ID). On the shared
// endpoints each tenant signs with its own issuer, announced in discovery
// as https://login.microsoftonline.com/{tenantid}/v2.0; the token's iss
// must then be that template with the token's own tid, and tid must fit
// the endpoint (personal accounts only on consumers, none on
// organizations). Names come from Microsoft Graph /me.
//
// Email is conservative: Entra ID lets tenant administrators put any
// address in the email claim, so EmailVerified is true only when the token
// says so (email_verified, or the optional xms_edov claim meaning the
// domain owner verified it). Otherwise the email is returned unverified
// and the caller will not link or sign up on it.
func newMicrosoft(s Settings, client *http.Client) *oidcProvider {
	p := newOIDCProvider(s, client)
	if multiTenant(s.Tenant) {
		p.multiIssuer = true
		p.acceptIssuer = func(discovered string) error { return acceptTenantIssuer(s.Issuer, discovered) }
	}
	p.check = func(ep *oidcEndpoints, claims map[string]any) error {
		return checkTenant(s.Tenant, ep.issuer, claimString(claims, "iss"), claimString(claims, "tid"))
	}
	p.complete = func(ctx context.Context, _ *oidcEndpoints, tok *oauth2.Token, claims map[string]any, prof *Profile) error {
		return graphProfile(ctx, client, s.APIURL, tok.AccessToken, claims, prof)
	}
	return p
}

// acceptTenantIssuer checks the issuer of a multi-tenant discovery
// document: it may differ from the URL it was fetched from (it is usually
// the {tenantid} template; for consumers, the personal-account tenant), but
// must be on the same host.
func acceptTenantIssuer(configured, discovered string) error {
	c, d := mustParse(configured), mustParse(strings.Replace(discovered, tenantPlaceholder, "tenant", 1))
	if d == nil || d.Scheme != c.Scheme || d.Host != c.Host {
		return errorf(CodeProviderError, "discovery: issuer %q is not on %s://%s", discovered, c.Scheme, c.Host)
	}
	return nil
}

// checkTenant verifies a Microsoft ID token's issuer against its tid
// claim. issuer is the discovered issuer, possibly a {tenantid} template.
func checkTenant(tenant, issuer, iss, tid string) error {
	if !guidPattern.MatchString(tid) {
		return errorf(CodeIssuerMismatch, "the ID token has no valid tid claim")
	}
	tid = strings.ToLower(tid)
	switch tenant {
	case "common":
	case "organizations":
		if tid == msaTenantID {
			return errorf(CodeIssuerMismatch, "a personal Microsoft account on the organizations endpoint")
		}
	case "consumers":
		if tid != msaTenantID {
			return errorf(CodeIssuerMismatch, "a work or school account (tenant %s) on the consumers endpoint", tid)
		}
	default:
		if !strings.EqualFold(tid, tenant) {
			return errorf(CodeIssuerMismatch, "tenant %s, want %s", tid, tenant)
		}
	}
	if want := strings.ReplaceAll(issuer, tenantPlaceholder, tid); iss != want {
		return errorf(CodeIssuerMismatch, "iss is %q, want %q for tenant %s", iss, want, tid)
	}
	return nil
}

// graphProfile fills the names (and, unverified, a missing email) from
// Microsoft Graph /me and sets EmailVerified conservatively.
func graphProfile(ctx context.Context, client *http.Client, api, accessToken string, claims map[string]any, prof *Profile) error {
	prof.EmailVerified = prof.Email != "" && (claimBool(claims, "email_verified") || claimBool(claims, "xms_edov"))
	u := strings.TrimRight(api, "/") + "/me?" + url.Values{"$select": {"id,displayName,givenName,surname,mail,userPrincipalName"}}.Encode()
	var me map[string]any
	if _, err := getJSON(ctx, client, "graph /me", u, accessToken, nil, &me); err != nil {
		return err
	}
	if id, oid := claimString(me, "id"), claimString(claims, "oid"); id != "" && oid != "" && !strings.EqualFold(id, oid) {
		return errorf(CodeProviderError, "graph /me: id %q is not the ID token's oid", id)
	}
	if v := claimString(me, "displayName"); v != "" {
		prof.Name = v
	}
	if v := claimString(me, "givenName"); v != "" {
		prof.GivenName = v
	}
	if v := claimString(me, "surname"); v != "" {
		prof.FamilyName = v
	}
	if prof.Email == "" {
		prof.Email = claimString(me, "mail") // not verified by anyone
	}
	prof.Raw["graph"] = me
	return nil
}
