package token

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Config.
const (
	DefaultAlgorithm      = "RS256"
	DefaultAccessTTL      = 15 * time.Minute
	DefaultReloadInterval = 30 * time.Second
	DefaultLeeway         = 30 * time.Second
)

// Config configures a Manager. Zero fields take the defaults.
type Config struct {
	// Issuer is the iss of every token (GATEHOUSE_ISSUER). Required.
	Issuer string
	// DefaultAudience is the aud of tokens issued without one
	// (GATEHOUSE_DEFAULT_AUDIENCE). Default: Issuer.
	DefaultAudience string
	// Audience lists the audiences Verify accepts, Gatehouse's own API's:
	// a token's aud must contain one. Default: Issuer and DefaultAudience.
	Audience []string
	// Algorithm signs the keys this Manager creates: RS256 (2048-bit RSA,
	// the default), ES256 or EdDSA. Existing keys keep their algorithm
	// until the next rotation.
	Algorithm string
	// AccessTTL is the lifetime of an access token
	// (GATEHOUSE_ACCESS_TOKEN_TTL). Default 15 min.
	AccessTTL time.Duration
	// ReloadInterval is how often the keys are reloaded from the database,
	// in case a rotation message was missed (GATEHOUSE_KEYS_RELOAD_INTERVAL).
	// Default 30 s.
	ReloadInterval time.Duration
	// Leeway is the clock skew between nodes allowed on nbf and iat.
	// Default 30 s. Verify allows none on exp: a token dies at its exp on
	// the issuer.
	Leeway time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Algorithm == "" {
		c.Algorithm = DefaultAlgorithm
	}
	if c.AccessTTL == 0 {
		c.AccessTTL = DefaultAccessTTL
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.DefaultAudience == "" {
		c.DefaultAudience = c.Issuer
	}
	if len(c.Audience) == 0 {
		c.Audience = []string{c.Issuer}
		if c.DefaultAudience != c.Issuer {
			c.Audience = append(c.Audience, c.DefaultAudience)
		}
	}
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if _, ok := algorithms[c.Algorithm]; !ok {
		errs = append(errs, fmt.Errorf("algorithm %q is not supported (want RS256, ES256 or EdDSA)", c.Algorithm))
	}
	if c.AccessTTL < time.Second {
		errs = append(errs, fmt.Errorf("access token lifetime %s is too short", c.AccessTTL))
	}
	if c.ReloadInterval < 0 || c.Leeway < 0 {
		errs = append(errs, errors.New("reload interval and leeway may not be negative"))
	}
	for _, a := range c.Audience {
		if a == "" {
			errs = append(errs, errors.New("empty audience"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("token: invalid config: %w", err)
	}
	return c, nil
}

// oldKeyLifetime is how long a retired key stays published and trusted:
// the lifetime of the last token it signed, plus the reload interval (a
// node that missed the rotation message signs with the old key until its
// next reload), plus the leeway Verify grants past exp.
func (c Config) oldKeyLifetime() time.Duration { return c.AccessTTL + c.ReloadInterval + c.Leeway }

// denyTTL is how long a session stays on the deny list at least: as long
// as any access token of it can still be accepted.
func (c Config) denyTTL() time.Duration { return c.AccessTTL + c.Leeway }
