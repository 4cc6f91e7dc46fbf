package config

import "net/url"

// SocialConfig is social sign-in: where it may send users back to, and the
// providers' own settings.
type SocialConfig struct {
	RedirectAllowlist []string `env:"REDIRECT_ALLOWLIST" doc:"Comma-separated exact URLs that social sign-in may redirect to (redirect_to)."`

	// Providers holds the GATEHOUSE_SOCIAL_<ID>_<KEY> provider settings
	// (from the environment, or social_<id>_<key> in the config file), by
	// variable name. They are validated by the social provider registry.
	Providers map[string]string `env:"-"`
}

func (s SocialConfig) validate(env string) []string {
	var r report
	for _, raw := range s.RedirectAllowlist {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
			r.bad("REDIRECT_ALLOWLIST", "%q is not an absolute http(s) URL without a fragment", raw)
		} else if env == EnvProduction && plainHTTP(raw) {
			r.bad("REDIRECT_ALLOWLIST", "%q must use https:// in production", raw)
		}
	}
	return r
}
