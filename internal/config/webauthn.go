package config

import (
	"net"
	"net/url"
	"strings"

	"github.com/google/uuid"
)

// WebAuthnConfig is the relying party of passkeys (WebAuthn).
type WebAuthnConfig struct {
	RPID             string   `env:"WEBAUTHN_RP_ID" doc:"Relying party ID of passkeys: a registrable domain that is the host of every allowed origin or a parent of it. Empty: the issuer's host. Changing it later orphans every registered passkey."`
	RPName           string   `env:"WEBAUTHN_RP_NAME" default:"Gatehouse" doc:"Name the browser and authenticator show for this site when a passkey is created or used."`
	Origins          []string `env:"WEBAUTHN_ORIGINS" doc:"Comma-separated web origins (scheme://host[:port]) allowed to run passkey ceremonies, e.g. your application's. Empty: the issuer's origin."`
	UserVerification string   `env:"WEBAUTHN_USER_VERIFICATION" default:"preferred" doc:"User verification (PIN, biometrics) asked of authenticators: required, preferred or discouraged. A passkey sign-in that verified the user counts as two factors."`
	Attestation      string   `env:"WEBAUTHN_ATTESTATION" default:"none" doc:"Attestation conveyance asked at registration: none, indirect, direct or enterprise."`
	AllowedAAGUIDs   []string `env:"WEBAUTHN_ALLOWED_AAGUIDS" doc:"Comma-separated authenticator AAGUIDs allowed to register passkeys (an enterprise allowlist; use with attestation direct). Empty: any authenticator."`
}

func (w WebAuthnConfig) validate(env string) []string {
	var r report
	for _, o := range w.Origins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
			r.bad("WEBAUTHN_ORIGINS", "%q is not an origin (scheme://host[:port])", o)
			continue
		}
		if env == EnvProduction && u.Scheme != "https" {
			r.bad("WEBAUTHN_ORIGINS", "%q must use https:// in production", o)
			continue
		}
		if w.RPID != "" && !hostUnder(u.Hostname(), w.RPID) {
			r.bad("WEBAUTHN_ORIGINS", "the host of %q is neither the RP ID %q nor under it", o, w.RPID)
		}
	}
	switch {
	case strings.ContainsAny(w.RPID, "/: "):
		r.bad("WEBAUTHN_RP_ID", "%q is not a domain (no scheme, port or path)", w.RPID)
	case net.ParseIP(w.RPID) != nil:
		r.bad("WEBAUTHN_RP_ID", "%q is an IP address; WebAuthn needs a domain", w.RPID)
	}
	switch w.UserVerification {
	case "required", "preferred", "discouraged":
	default:
		r.bad("WEBAUTHN_USER_VERIFICATION", "%q is not required, preferred or discouraged", w.UserVerification)
	}
	switch w.Attestation {
	case "none", "indirect", "direct", "enterprise":
	default:
		r.bad("WEBAUTHN_ATTESTATION", "%q is not none, indirect, direct or enterprise", w.Attestation)
	}
	for _, a := range w.AllowedAAGUIDs {
		if _, err := uuid.Parse(a); err != nil {
			r.bad("WEBAUTHN_ALLOWED_AAGUIDS", "%q is not an AAGUID (a UUID)", a)
		}
	}
	return r
}

// hostUnder reports whether host is domain or a subdomain of it.
func hostUnder(host, domain string) bool {
	host, domain = strings.ToLower(host), strings.ToLower(strings.TrimSuffix(domain, "."))
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// WebAuthnRP returns the relying party ID and origins in force: the
// settings, or the issuer's host and origin.
func (c *Config) WebAuthnRP() (rpID string, origins []string) {
	u, err := url.Parse(c.Server.Issuer)
	rpID, origins = c.WebAuthn.RPID, c.WebAuthn.Origins
	if err != nil {
		return rpID, origins
	}
	if rpID == "" {
		rpID = u.Hostname()
	}
	if len(origins) == 0 {
		origins = []string{u.Scheme + "://" + u.Host}
	}
	return rpID, origins
}
