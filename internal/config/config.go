// Package config loads Gatehouse's settings into one typed struct made of
// sections (server, database, redis, tokens, sessions, …), each declared and
// validated in its own file.
//
// Order of precedence, lowest first: built-in defaults, an optional config
// file (YAML or TOML, chosen by extension), GATEHOUSE_* environment
// variables, and GATEHOUSE_*_FILE variables that name a file holding the
// value (for secrets mounted by an orchestrator). Every problem is reported
// at once, one line per setting, naming the environment variable.
//
// Sections only group the Go fields: environment variables and config file
// keys stay flat (GATEHOUSE_ACCESS_TOKEN_TTL, access_token_ttl).
package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Prefix is put in front of every setting's environment variable name.
const Prefix = "GATEHOUSE_"

// Profiles.
const (
	EnvDevelopment = "development"
	EnvTest        = "test"
	EnvProduction  = "production"
)

// Config holds every setting, by section. Field tags of the settings inside
// the sections (and of Env):
//
//	env:     the variable name after GATEHOUSE_ (the file key is its lower-case form)
//	default: the default value, in the same syntax as the variable
//	doc:     one line for the README's configuration table
//	secret:  never printed
//
// Settings are listed (Fields, the README table) in declaration order,
// section after section.
type Config struct {
	Env string `env:"ENV" default:"development" doc:"Profile: development, test or production. Production refuses insecure settings."`

	Server     ServerConfig
	Database   DatabaseConfig
	Redis      RedisConfig
	Encryption EncryptionConfig
	Logging    LoggingConfig
	HTTP       HTTPConfig
	Jobs       JobsConfig
	Mail       MailConfig
	Passwords  PasswordConfig
	Tokens     TokenConfig
	Sessions   SessionConfig
	Lockout    LockoutConfig
	RateLimits RateLimitConfig
	MFA        MFAConfig
	SMS        SMSConfig
	Social     SocialConfig
	Webhooks   WebhookConfig
	NetIntel   NetIntelConfig
	Risk       RiskConfig
	Security   SecurityConfig
	APIKeys    APIKeyConfig
	WebAuthn   WebAuthnConfig
}

// section is what each part of Config implements: it reports its own bad
// settings, given the profile (production refuses more).
type section interface {
	validate(env string) []string
}

// problems reports every bad setting, section after section.
func (c *Config) problems() []string {
	var r report
	switch c.Env {
	case EnvDevelopment, EnvTest, EnvProduction:
	default:
		r.bad("ENV", "%q is not a profile (want development, test or production)", c.Env)
	}
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		if s, ok := v.Field(i).Interface().(section); ok {
			r = append(r, s.validate(c.Env)...)
		}
	}
	return r
}

// report collects problems, one line per setting.
type report []string

// bad adds a problem with the setting GATEHOUSE_<name>.
func (r *report) bad(name, format string, args ...any) {
	*r = append(*r, Prefix+name+": "+fmt.Sprintf(format, args...))
}

// inRange adds "<n> is out of range (lo–hi)" for every named value outside
// [lo, hi], in the order given.
func (r *report) inRange(lo, hi int, values ...namedInt) {
	for _, v := range values {
		if v.n < lo || v.n > hi {
			r.bad(v.name, "%d is out of range (%d–%d)", v.n, lo, hi)
		}
	}
}

type namedInt struct {
	name string
	n    int
}

// Field describes one setting, for documentation and error messages.
type Field struct {
	Var     string // full environment variable name
	Key     string // config file key
	Default string
	Doc     string
	Secret  bool
	index   []int // path to the field in Config, for reflect's FieldByIndex
}

// Fields lists every setting in declaration order, walking into sections.
func Fields() []Field {
	return appendFields(nil, reflect.TypeFor[Config](), nil)
}

func appendFields(out []Field, t reflect.Type, path []int) []Field {
	for i := range t.NumField() {
		f := t.Field(i)
		index := append(append([]int(nil), path...), i)
		if f.Type.Kind() == reflect.Struct {
			out = appendFields(out, f.Type, index)
			continue
		}
		name := f.Tag.Get("env")
		if name == "-" {
			continue
		}
		out = append(out, Field{
			Var:     Prefix + name,
			Key:     strings.ToLower(name),
			Default: f.Tag.Get("default"),
			Doc:     f.Tag.Get("doc"),
			Secret:  f.Tag.Get("secret") == "true",
			index:   index,
		})
	}
	return out
}

// set parses raw into the field fd of c.
func (c *Config) set(fd Field, raw string) error {
	v := reflect.ValueOf(c).Elem().FieldByIndex(fd.index)
	raw = strings.TrimSpace(raw)
	switch v.Interface().(type) {
	case string:
		v.SetString(raw)
	case bool:
		if raw == "" {
			v.SetBool(false)
			return nil
		}
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (want true or false)", raw)
		}
		v.SetBool(b)
	case int, int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", raw)
		}
		v.SetInt(n)
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration (want e.g. 30s, 5m, 1h)", raw)
		}
		v.SetInt(int64(d))
	case []string:
		var list []string
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}

// AutoMigrateEnabled reports whether serve applies migrations at start-up.
func (c *Config) AutoMigrateEnabled() bool {
	switch c.Database.AutoMigrate {
	case "true":
		return true
	case "false":
		return false
	}
	return c.Env != EnvProduction
}

// SQLitePath is the embedded database file used when Database.URL is empty.
func (c *Config) SQLitePath() string {
	return strings.TrimRight(c.Server.DataDir, "/") + "/gatehouse.db"
}

// AppBaseURL is where emailed links point: APP_URL, or the issuer.
func (c *Config) AppBaseURL() string {
	if c.Mail.AppURL != "" {
		return c.Mail.AppURL
	}
	return c.Server.Issuer
}

// TLS reports whether the public listener serves HTTPS itself.
func (c *Config) TLS() bool { return c.HTTP.TLSCertFile != "" }
