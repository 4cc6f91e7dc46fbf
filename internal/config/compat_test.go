package config

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// renderFields writes every setting as Fields() reports it, one per line,
// in order: variable, file key, default, secret, doc.
func renderFields() string {
	var b strings.Builder
	for _, f := range Fields() {
		fmt.Fprintf(&b, "%s\t%s\t%q\t%t\t%s\n", f.Var, f.Key, f.Default, f.Secret, f.Doc)
	}
	return b.String()
}

// TestFieldsGolden pins the settings (names, file keys, defaults, secrecy,
// docs and order) to testdata/fields.golden, captured from the flat Config
// before it was split into sections: the environment variables, the config
// file keys, the README table and the CLI stay byte-for-byte the same.
func TestFieldsGolden(t *testing.T) {
	want, err := os.ReadFile("testdata/fields.golden")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), renderFields()); diff != "" {
		t.Errorf("settings differ from testdata/fields.golden (-want +got):\n%s", diff)
	}
}

// badSettings breaks every setting that has a rule, so that every message
// validation can produce appears at least once.
var badSettings = []map[string]string{
	{
		"GATEHOUSE_ENV": "staging", "GATEHOUSE_HTTP_ADDR": "nonsense", "GATEHOUSE_ADMIN_ADDR": "bad host!:1",
		"GATEHOUSE_DATA_DIR": " ", "GATEHOUSE_ISSUER": "https://x.example/?q=1",
		"GATEHOUSE_DATABASE_URL": "mysql://x/y", "GATEHOUSE_DATABASE_REPLICA_URLS": "postgres:///x,postgres://ok/x",
		"GATEHOUSE_DATABASE_MAX_CONNS": "0", "GATEHOUSE_DATABASE_MIN_CONNS": "5", "GATEHOUSE_DATABASE_MAX_CONN_LIFETIME": "10ms",
		"GATEHOUSE_AUTO_MIGRATE": "yes",
		"GATEHOUSE_REDIS_URL":    "http://x", "GATEHOUSE_REDIS_ADDRS": "nohost", "GATEHOUSE_REDIS_MASTER_NAME": "m", "GATEHOUSE_REDIS_CLUSTER": "true",
		"GATEHOUSE_ENCRYPTION_KEYS": "k1:short", "GATEHOUSE_LOG_LEVEL": "loud", "GATEHOUSE_LOG_FORMAT": "xml",
		"GATEHOUSE_CORS_ALLOWED_ORIGINS": "*,ftp://x", "GATEHOUSE_TRUSTED_PROXIES": "10.0.0.0/33",
		"GATEHOUSE_MAX_BODY_BYTES": "10", "GATEHOUSE_MAX_INFLIGHT": "-1", "GATEHOUSE_READ_HEADER_TIMEOUT": "0s", "GATEHOUSE_READ_TIMEOUT": "-1s",
		"GATEHOUSE_WRITE_TIMEOUT": "0s", "GATEHOUSE_IDLE_TIMEOUT": "0s", "GATEHOUSE_SHUTDOWN_TIMEOUT": "0s",
		"GATEHOUSE_TLS_CERT_FILE": "/x.pem", "GATEHOUSE_JOBS_MAX_WORKERS": "0",
		"GATEHOUSE_APP_URL": "app", "GATEHOUSE_PRODUCT_NAME": " ", "GATEHOUSE_SMTP_URL": "http://mail",
		"GATEHOUSE_EMAIL_FROM": "nobody", "GATEHOUSE_SUPPORT_EMAIL": "help", "GATEHOUSE_EMAIL_VERIFICATION_TTL": "1s",
		"GATEHOUSE_PASSWORD_RESET_TTL":  "48h",
		"GATEHOUSE_PASSWORD_MIN_LENGTH": "4", "GATEHOUSE_PASSWORD_MAX_LENGTH": "5000", "GATEHOUSE_PASSWORD_MIN_SCORE": "5",
		"GATEHOUSE_PASSWORD_REQUIRE": "upper,emoji", "GATEHOUSE_HIBP_ENABLED": "true", "GATEHOUSE_HIBP_URL": "pwned",
		"GATEHOUSE_ARGON2_MEMORY_KIB": "1", "GATEHOUSE_ARGON2_TIME": "0", "GATEHOUSE_ARGON2_THREADS": "65",
		"GATEHOUSE_PASSWORD_HASH_CONCURRENCY": "-1",
		"GATEHOUSE_ACCESS_TOKEN_TTL":          "30s", "GATEHOUSE_REFRESH_TOKEN_TTL": "9000h", "GATEHOUSE_REFRESH_IDLE_TIMEOUT": "-1s",
		"GATEHOUSE_REFRESH_REUSE_GRACE": "2m", "GATEHOUSE_SIGNING_ALG": "HS256", "GATEHOUSE_KEYS_RELOAD_INTERVAL": "10ms",
		"GATEHOUSE_KEYS_ROTATION_INTERVAL": "1m", "GATEHOUSE_MAX_SESSIONS_PER_USER": "-1", "GATEHOUSE_SESSION_LIMIT_POLICY": "ignore",
		"GATEHOUSE_LOCKOUT_THRESHOLD": "0", "GATEHOUSE_LOCKOUT_BASE": "10ms", "GATEHOUSE_LOCKOUT_MAX": "1ms",
		"GATEHOUSE_LOGIN_IP_FAILURE_LIMIT": "-1", "GATEHOUSE_LOGIN_IP_WINDOW": "1ms",
		"GATEHOUSE_REGISTER_LIMIT_PER_IP": "0", "GATEHOUSE_EMAIL_LIMIT_PER_ADDRESS": "0", "GATEHOUSE_EMAIL_LIMIT_PER_IP": "2000000",
		"GATEHOUSE_MFA_METHODS": "totp,carrier_pigeon", "GATEHOUSE_MFA_ENROLLMENT_GRACE": "-1s", "GATEHOUSE_MFA_LOCKOUT_THRESHOLD": "101",
		"GATEHOUSE_MFA_LOCKOUT_BASE": "1ms", "GATEHOUSE_MFA_LOCKOUT_MAX": "0s",
		"GATEHOUSE_TWILIO_ACCOUNT_SID": "XX1", "GATEHOUSE_TWILIO_BASE_URL": "twilio", "GATEHOUSE_SMS_ALLOWED_COUNTRIES": "ZZ,!!",
		"GATEHOUSE_SMS_LIMIT_PER_PHONE": "0", "GATEHOUSE_SMS_LIMIT_PER_USER": "0", "GATEHOUSE_SMS_LIMIT_PER_COUNTRY": "0",
		"GATEHOUSE_REDIRECT_ALLOWLIST": "/relative,https://x.example/#frag",
		"GATEHOUSE_IP_LISTS":           "tor:/a,Tor:/b,nopath,x:,tor:/c",
	},
	{
		"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "http://auth.example.com", "GATEHOUSE_APP_URL": "http://app.example.com",
		"GATEHOUSE_CORS_ALLOWED_ORIGINS": "http://a.example.com,https://b.example.com,http://localhost:3000",
		"GATEHOUSE_DEBUG":                "true", "GATEHOUSE_LOG_LEVEL": "debug",
		"GATEHOUSE_REDIRECT_ALLOWLIST":    "http://app.example.com/done,http://localhost/done",
		"GATEHOUSE_DATABASE_REPLICA_URLS": "postgres://r/x", "GATEHOUSE_REDIS_ADDRS": "a:1",
		"GATEHOUSE_TLS_KEY_FILE": "/k.pem", "GATEHOUSE_PASSWORD_MIN_LENGTH": "100", "GATEHOUSE_PASSWORD_MAX_LENGTH": "64",
		"GATEHOUSE_ACCESS_TOKEN_TTL": "2h", "GATEHOUSE_REFRESH_TOKEN_TTL": "1h",
		"GATEHOUSE_TWILIO_ACCOUNT_SID": "AC1", "GATEHOUSE_TWILIO_FROM": "+15550100", "GATEHOUSE_TWILIO_MESSAGING_SERVICE_SID": "MG1",
	},
	{
		"GATEHOUSE_TWILIO_ACCOUNT_SID": "AC1", "GATEHOUSE_TWILIO_AUTH_TOKEN": "t",
		"GATEHOUSE_DATABASE_URL": "postgres://db/x", "GATEHOUSE_DATABASE_MIN_CONNS": "-1",
		"GATEHOUSE_REDIS_URL": "redis://r:6379", "GATEHOUSE_REDIS_CLUSTER": "true", "GATEHOUSE_REDIS_MASTER_NAME": "m",
		"GATEHOUSE_HIBP_URL": "not checked while HIBP is off", "GATEHOUSE_ACCESS_TOKEN_TTL": "25h",
	},
}

// renderProblems loads each of badSettings and lists the problems, sorted
// within each load (checks over maps report in no fixed order).
func renderProblems(t *testing.T) string {
	var b strings.Builder
	for i, env := range badSettings {
		_, _, err := Load(envOf(env))
		ps := slices.Clone(problems(t, err))
		slices.Sort(ps)
		fmt.Fprintf(&b, "# settings %d\n%s\n", i+1, strings.Join(ps, "\n"))
	}
	return b.String()
}

// TestProblemsGolden pins every validation message to
// testdata/problems.golden, captured before validation was split by
// section: the wording, the variable each names and that all are reported
// at once stay the same.
func TestProblemsGolden(t *testing.T) {
	want, err := os.ReadFile("testdata/problems.golden")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), renderProblems(t)); diff != "" {
		t.Errorf("problems differ from testdata/problems.golden (-want +got):\n%s", diff)
	}
}
