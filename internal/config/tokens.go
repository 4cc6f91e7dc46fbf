package config

import (
	"time"

	"github.com/gatehouse/gatehouse/internal/apis"
)

// TokenConfig is the lifetime and handling of access and refresh tokens and
// of the keys that sign them.
type TokenConfig struct {
	DefaultAudience      string        `env:"DEFAULT_AUDIENCE" default:"" doc:"The aud of access tokens asked for without a resource (RFC 8707), and an audience Gatehouse's own API accepts besides the issuer. Empty: the issuer."`
	AccessTTL            time.Duration `env:"ACCESS_TOKEN_TTL" default:"15m" doc:"Lifetime of access tokens (JWT)."`
	RefreshTTL           time.Duration `env:"REFRESH_TOKEN_TTL" default:"720h" doc:"Absolute lifetime of a session and its refresh tokens."`
	RefreshIdleTimeout   time.Duration `env:"REFRESH_IDLE_TIMEOUT" default:"336h" doc:"A refresh token unused this long dies (0: no idle timeout)."`
	RefreshReuseGrace    time.Duration `env:"REFRESH_REUSE_GRACE" default:"10s" doc:"Window in which the immediate predecessor of a refresh token, presented again, returns the same successor (0 disables)."`
	RefreshCookie        bool          `env:"REFRESH_TOKEN_COOKIE" default:"false" doc:"Deliver refresh tokens as an HttpOnly, Secure, SameSite=Strict __Host- cookie instead of in the response body (browser apps). A refresh that uses the cookie must send a JSON body or an Origin listed in GATEHOUSE_CORS_ALLOWED_ORIGINS."`
	BindRefreshToDevice  bool          `env:"BIND_REFRESH_TO_DEVICE" default:"false" doc:"Refuse a refresh from another device fingerprint (device_id and user-agent family) than the session's."`
	RolesClaim           bool          `env:"TOKEN_ROLES_CLAIM" default:"false" doc:"Put the names of the user's global, unconditional roles valid at issue in a roles claim of access tokens. A token keeps them until it expires: POST /v1/authz/check stays the authority."`
	SigningAlg           string        `env:"SIGNING_ALG" default:"RS256" doc:"Algorithm of new signing keys: RS256, ES256 or EdDSA."`
	KeysReloadInterval   time.Duration `env:"KEYS_RELOAD_INTERVAL" default:"30s" doc:"How often running servers reload signing keys (rotations are also pushed at once)."`
	KeysRotationInterval time.Duration `env:"KEYS_ROTATION_INTERVAL" default:"0s" doc:"Rotate the signing key automatically when the current one is this old (0: only with gatehouse keys rotate)."`
}

func (t TokenConfig) validate(string) []string {
	var r report
	if t.AccessTTL < time.Minute || t.AccessTTL > 24*time.Hour {
		r.bad("ACCESS_TOKEN_TTL", "must be between 1m and 24h")
	}
	if t.RefreshTTL < t.AccessTTL || t.RefreshTTL > 365*24*time.Hour {
		r.bad("REFRESH_TOKEN_TTL", "must be at least GATEHOUSE_ACCESS_TOKEN_TTL and at most 8760h")
	}
	if t.RefreshIdleTimeout < 0 {
		r.bad("REFRESH_IDLE_TIMEOUT", "must not be negative")
	}
	if t.RefreshReuseGrace < 0 || t.RefreshReuseGrace > time.Minute {
		r.bad("REFRESH_REUSE_GRACE", "must be between 0 and 1m")
	}
	if t.DefaultAudience != "" && apis.ValidateIdentifier(t.DefaultAudience) != nil {
		r.bad("DEFAULT_AUDIENCE", "must be an absolute URI without a fragment, such as https://api.example.com")
	}
	switch t.SigningAlg {
	case "RS256", "ES256", "EdDSA":
	default:
		r.bad("SIGNING_ALG", "%q is not supported (want RS256, ES256 or EdDSA)", t.SigningAlg)
	}
	if t.KeysReloadInterval < time.Second {
		r.bad("KEYS_RELOAD_INTERVAL", "must be at least 1s")
	}
	if t.KeysRotationInterval != 0 && t.KeysRotationInterval < time.Hour {
		r.bad("KEYS_ROTATION_INTERVAL", "must be 0 (off) or at least 1h")
	}
	return r
}
