package config

import "github.com/gatehouse/gatehouse/internal/secret"

// EncryptionConfig holds the keys that encrypt secrets at rest.
type EncryptionConfig struct {
	Keys string `env:"ENCRYPTION_KEYS" secret:"true" doc:"Keys for secrets at rest: comma-separated <key-id>:<base64 of 32 bytes>; the first encrypts, all decrypt. Required in production; generated into the data dir in development."`
}

func (e EncryptionConfig) validate(env string) []string {
	var r report
	if e.Keys != "" {
		if _, err := secret.ParseKeys(e.Keys); err != nil {
			r.bad("ENCRYPTION_KEYS", "%v", err)
		}
	}
	if env == EnvProduction && e.Keys == "" {
		r.bad("ENCRYPTION_KEYS", "required in production: generate one with `gatehouse encryption-key generate` (or 32 random bytes, base64) and set <key-id>:<base64>")
	}
	return r
}
