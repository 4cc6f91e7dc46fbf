package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

func envOf(m map[string]string) Source {
	var environ []string
	for k, v := range m {
		environ = append(environ, k+"="+v)
	}
	return Source{Getenv: func(k string) string { return m[k] }, Environ: environ}
}

func problems(t *testing.T, err error) []string {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error = %v, want *config.Error", err)
	}
	return cerr.Problems
}

func TestDefaults(t *testing.T) {
	c, warnings, err := Load(Source{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %v", warnings)
	}
	want := Config{
		Env:      "development",
		Server:   ServerConfig{HTTPAddr: ":8080", AdminAddr: "127.0.0.1:9090", DataDir: "./data", Issuer: "http://localhost:8080"},
		Database: DatabaseConfig{MaxConns: 20, MinConns: 2, MaxConnLifetime: time.Hour},
		Redis:    RedisConfig{KeyPrefix: "gatehouse:"},
		Logging:  LoggingConfig{Level: "info", Format: "json"},
		HTTP: HTTPConfig{MaxBodyBytes: 1 << 20, ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 15 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
			ShutdownTimeout: 15 * time.Second},
		Jobs: JobsConfig{MaxWorkers: 10},
		Mail: MailConfig{ProductName: "Gatehouse", From: "Gatehouse <no-reply@localhost>",
			VerificationTTL: 24 * time.Hour, PasswordResetTTL: time.Hour},
		Passwords: PasswordConfig{MinLength: 12, MaxLength: 256, MinScore: 3,
			HIBPURL: "https://api.pwnedpasswords.com", Argon2MemoryKiB: 19456, Argon2Time: 2, Argon2Threads: 1},
		Tokens: TokenConfig{AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour, RefreshIdleTimeout: 336 * time.Hour,
			RefreshReuseGrace: 10 * time.Second, SigningAlg: "RS256", KeysReloadInterval: 30 * time.Second},
		Sessions:   SessionConfig{RequireVerifiedEmail: true, LimitPolicy: "end_oldest"},
		Lockout:    LockoutConfig{Threshold: 5, Base: time.Minute, Max: time.Hour, IPFailureLimit: 100, IPWindow: 15 * time.Minute},
		MFA:        MFAConfig{LockoutThreshold: 10, LockoutBase: time.Minute, LockoutMax: time.Hour},
		RateLimits: RateLimitConfig{RegisterPerIP: 100, EmailPerAddress: 5, EmailPerIP: 50},
		SMS:        SMSConfig{TwilioBaseURL: "https://api.twilio.com", LimitPerPhone: 5, LimitPerUser: 10, LimitPerCountry: 1000},
		Webhooks: WebhookConfig{RetrySchedule: "5s,5m,30m,2h,5h,10h,10h", Timeout: 10 * time.Second,
			SecretOverlap: 24 * time.Hour, DisableAfter: 120 * time.Hour, Retention: 720 * time.Hour, Workers: 20},
		NetIntel: NetIntelConfig{}, // no databases, no lists: the network signals are off
		Risk:     RiskConfig{Enabled: true, StepUp: 50, Block: 90, MaxKMH: 1000},
		Security: SecurityConfig{
			AlertSeverity: "high", EscalateAfter: 4 * time.Hour, BlockIPs: true, EndSessions: true,
			CredentialStuffing: "20/1h", AccountUnderAttack: "10/1h", SharedDevice: "5/24h", AccountManyCountries: "3/24h",
		},
		APIKeys:  APIKeyConfig{MaxTTL: 8760 * time.Hour},
		WebAuthn: WebAuthnConfig{RPName: "Gatehouse", UserVerification: "preferred", Attestation: "none"},
	}
	if diff := cmp.Diff(want, *c); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if !c.AutoMigrateEnabled() {
		t.Error("auto-migrate should default to on in development")
	}
	if c.SQLitePath() != "./data/gatehouse.db" {
		t.Errorf("SQLitePath = %q", c.SQLitePath())
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	c, _, err := Load(envOf(map[string]string{
		"GATEHOUSE_HTTP_ADDR":             "127.0.0.1:8181",
		"GATEHOUSE_DATABASE_REPLICA_URLS": "postgres://a/x, postgres://b/x",
		"GATEHOUSE_DATABASE_URL":          "postgres://db/x",
		"GATEHOUSE_SHUTDOWN_TIMEOUT":      "3s",
		"GATEHOUSE_MAX_INFLIGHT":          "1",
		"GATEHOUSE_REDIS_CLUSTER":         "true",
		"GATEHOUSE_REDIS_URL":             "redis://localhost:6379",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTPAddr != "127.0.0.1:8181" || c.HTTP.ShutdownTimeout != 3*time.Second || !c.Redis.Cluster ||
		c.HTTP.MaxInflight != 1 {
		t.Errorf("overrides not applied: %+v", c)
	}
	if diff := cmp.Diff([]string{"postgres://a/x", "postgres://b/x"}, c.Database.ReplicaURLs); diff != "" {
		t.Errorf("replicas: %s", diff)
	}
}

func TestNetIntel(t *testing.T) {
	c, _, err := Load(envOf(map[string]string{
		"GATEHOUSE_GEOIP_CITY_DB": "/geo/GeoLite2-City.mmdb",
		"GATEHOUSE_GEOIP_ASN_DB":  "/geo/GeoLite2-ASN.mmdb",
		"GATEHOUSE_IP_LISTS":      "tor:/lists/tor.txt, blocklist : /lists/block.txt,my_label-2:/lists/C:/odd.txt",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.NetIntel.GeoIPCityDB != "/geo/GeoLite2-City.mmdb" || c.NetIntel.GeoIPASNDB != "/geo/GeoLite2-ASN.mmdb" {
		t.Errorf("databases = %+v", c.NetIntel)
	}
	want := map[string]string{"tor": "/lists/tor.txt", "blocklist": "/lists/block.txt", "my_label-2": "/lists/C:/odd.txt"}
	if diff := cmp.Diff(want, c.NetIntel.IPListFiles()); diff != "" {
		t.Errorf("IPListFiles (-want +got):\n%s", diff)
	}

	for _, tt := range []struct{ lists, want string }{
		{"tor", `"tor" is not name:path`},
		{"Tor:/x", `list name "Tor"`},
		{"tor list:/x", `list name "tor list"`},
		{":/x", `list name ""`},
		{"tor:", "list tor has no file"},
		{"tor:/a,tor:/b", "list tor is named twice"},
	} {
		_, _, err := Load(envOf(map[string]string{"GATEHOUSE_IP_LISTS": tt.lists}))
		ps := problems(t, err)
		if len(ps) != 1 || !strings.HasPrefix(ps[0], "GATEHOUSE_IP_LISTS: ") || !strings.Contains(ps[0], tt.want) {
			t.Errorf("IP_LISTS=%q: problems = %q, want one containing %q", tt.lists, ps, tt.want)
		}
	}
}

func TestRisk(t *testing.T) {
	c, _, err := Load(envOf(map[string]string{
		"GATEHOUSE_RISK_STEP_UP": "40",
		"GATEHOUSE_RISK_BLOCK":   "80",
		"GATEHOUSE_RISK_MAX_KMH": "900",
		"GATEHOUSE_RISK_WEIGHTS": "new_device:10, velocity : 0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Risk.Settings()
	if s.StepUp != 40 || s.Block != 80 || s.MaxKMH != 900 {
		t.Errorf("settings = %+v", s)
	}
	want := risk.DefaultWeights()
	want[risk.NewDevice], want[risk.Velocity] = 10, 0
	if diff := cmp.Diff(want, s.Weights); diff != "" {
		t.Errorf("weights (-want +got):\n%s", diff)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("settings from a valid config: %v", err)
	}

	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GATEHOUSE_RISK_WEIGHTS": "new_device"}, `GATEHOUSE_RISK_WEIGHTS: "new_device" is not code:weight`},
		{map[string]string{"GATEHOUSE_RISK_WEIGHTS": "gut_feeling:10"}, `GATEHOUSE_RISK_WEIGHTS: unknown signal "gut_feeling"`},
		{map[string]string{"GATEHOUSE_RISK_WEIGHTS": "tor_exit:101"}, "GATEHOUSE_RISK_WEIGHTS: weight of tor_exit must be"},
		{map[string]string{"GATEHOUSE_RISK_WEIGHTS": "tor_exit:x"}, "GATEHOUSE_RISK_WEIGHTS: weight of tor_exit must be"},
		{map[string]string{"GATEHOUSE_RISK_WEIGHTS": "tor_exit:1,tor_exit:2"}, "GATEHOUSE_RISK_WEIGHTS: signal tor_exit is weighted twice"},
		{map[string]string{"GATEHOUSE_RISK_STEP_UP": "0"}, "GATEHOUSE_RISK_STEP_UP: "},
		{map[string]string{"GATEHOUSE_RISK_BLOCK": "101"}, "GATEHOUSE_RISK_BLOCK: "},
		{map[string]string{"GATEHOUSE_RISK_STEP_UP": "60", "GATEHOUSE_RISK_BLOCK": "55"}, "GATEHOUSE_RISK_BLOCK: must be at least GATEHOUSE_RISK_STEP_UP"},
		{map[string]string{"GATEHOUSE_RISK_MAX_KMH": "0"}, "GATEHOUSE_RISK_MAX_KMH: "},
	} {
		_, _, err := Load(envOf(tt.env))
		ps := problems(t, err)
		if len(ps) != 1 || !strings.HasPrefix(ps[0], tt.want) {
			t.Errorf("%v: problems = %q, want one starting %q", tt.env, ps, tt.want)
		}
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GATEHOUSE_HTTP_ADDR": "nonsense"}, "GATEHOUSE_HTTP_ADDR: "},
		{map[string]string{"GATEHOUSE_HTTP_ADDR": ":99999"}, "GATEHOUSE_HTTP_ADDR: "},
		{map[string]string{"GATEHOUSE_ADMIN_ADDR": "x"}, "GATEHOUSE_ADMIN_ADDR: "},
		{map[string]string{"GATEHOUSE_ENV": "staging"}, "GATEHOUSE_ENV: "},
		{map[string]string{"GATEHOUSE_ISSUER": "ftp://x"}, "GATEHOUSE_ISSUER: "},
		{map[string]string{"GATEHOUSE_DATABASE_URL": "mysql://x/y"}, "GATEHOUSE_DATABASE_URL: "},
		{map[string]string{"GATEHOUSE_REDIS_URL": "http://x"}, "GATEHOUSE_REDIS_URL: "},
		{map[string]string{"GATEHOUSE_DEBUG": "maybe"}, "GATEHOUSE_DEBUG: "},
		{map[string]string{"GATEHOUSE_READ_TIMEOUT": "10"}, "GATEHOUSE_READ_TIMEOUT: "},
		{map[string]string{"GATEHOUSE_JOBS_MAX_WORKERS": "0"}, "GATEHOUSE_JOBS_MAX_WORKERS: "},
		{map[string]string{"GATEHOUSE_CORS_ALLOWED_ORIGINS": "*"}, "GATEHOUSE_CORS_ALLOWED_ORIGINS: "},
		{map[string]string{"GATEHOUSE_TRUSTED_PROXIES": "10.0.0.0/33"}, "GATEHOUSE_TRUSTED_PROXIES: "},
		{map[string]string{"GATEHOUSE_MAX_INFLIGHT": "-1"}, "GATEHOUSE_MAX_INFLIGHT: "},
		{map[string]string{"GATEHOUSE_MAX_INFLIGHT": "many"}, "GATEHOUSE_MAX_INFLIGHT: "},
		{map[string]string{"GATEHOUSE_ENCRYPTION_KEYS": "k1:short"}, "GATEHOUSE_ENCRYPTION_KEYS: "},
		{map[string]string{"GATEHOUSE_LOG_LEVEL": "loud"}, "GATEHOUSE_LOG_LEVEL: "},
		{map[string]string{"GATEHOUSE_TLS_CERT_FILE": "/x.pem"}, "GATEHOUSE_TLS_CERT_FILE: "},
		{map[string]string{"GATEHOUSE_DATABASE_REPLICA_URLS": "postgres://r/x"}, "GATEHOUSE_DATABASE_REPLICA_URLS: "},
	}
	for _, tt := range tests {
		_, _, err := Load(envOf(tt.env))
		ps := problems(t, err)
		if len(ps) != 1 || !strings.HasPrefix(ps[0], tt.want) {
			t.Errorf("env %v: problems = %q, want one starting %q", tt.env, ps, tt.want)
		}
	}
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	_, _, err := Load(envOf(map[string]string{
		"GATEHOUSE_HTTP_ADDR":  "nonsense",
		"GATEHOUSE_ADMIN_ADDR": "also nonsense",
		"GATEHOUSE_LOG_FORMAT": "xml",
	}))
	ps := problems(t, err)
	if len(ps) != 3 {
		t.Fatalf("problems = %q, want 3", ps)
	}
}

func TestProductionRefusesInsecureSettings(t *testing.T) {
	_, _, err := Load(envOf(map[string]string{
		"GATEHOUSE_ENV":                  "production",
		"GATEHOUSE_ISSUER":               "http://auth.example.com",
		"GATEHOUSE_APP_URL":              "http://app.example.com",
		"GATEHOUSE_CORS_ALLOWED_ORIGINS": "https://ok.example.com,http://plain.example.com",
		"GATEHOUSE_DEBUG":                "true",
	}))
	got := strings.Join(problems(t, err), "\n")
	for _, want := range []string{"GATEHOUSE_ENCRYPTION_KEYS: required in production", "GATEHOUSE_ISSUER: must use https://", "GATEHOUSE_DEBUG: ",
		"GATEHOUSE_APP_URL: must use https://", `GATEHOUSE_CORS_ALLOWED_ORIGINS: "http://plain.example.com" must use https://`} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}

	key, err := secret.GenerateKeyString("k1")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := Load(envOf(map[string]string{
		"GATEHOUSE_ENV":             "production",
		"GATEHOUSE_ISSUER":          "https://auth.example.com",
		"GATEHOUSE_ENCRYPTION_KEYS": key,
		"GATEHOUSE_SMTP_URL":        "smtp://mail.example.com:587",
		// Local pages may stay on http, as the issuer may.
		"GATEHOUSE_APP_URL":              "https://app.example.com",
		"GATEHOUSE_CORS_ALLOWED_ORIGINS": "https://app.example.com,http://localhost:3000",
	}))
	if err != nil {
		t.Fatalf("secure production config refused: %v", err)
	}
	if c.AutoMigrateEnabled() {
		t.Error("auto-migrate must default to off in production")
	}
	// Localhost issuers stay allowed over http, for running behind a local TLS terminator in tests.
	if _, _, err := Load(envOf(map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ENCRYPTION_KEYS": key, "GATEHOUSE_SMTP_URL": "smtp://mail.example.com", "GATEHOUSE_ISSUER": "http://127.0.0.1:8080"})); err != nil {
		t.Errorf("localhost issuer refused: %v", err)
	}
}

func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(yamlFile, []byte("http_addr: \"127.0.0.1:7000\"\ncors_allowed_origins:\n  - https://a.example\n  - https://b.example\ndebug: true\nmax_body_bytes: 2048\n"), 0o600)
	tomlFile := filepath.Join(dir, "gatehouse.toml")
	os.WriteFile(tomlFile, []byte("http_addr = \"127.0.0.1:7001\"\nshutdown_timeout = \"2s\"\n"), 0o600)

	src := envOf(map[string]string{"GATEHOUSE_DEBUG": "false"})
	src.File = yamlFile
	c, _, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTPAddr != "127.0.0.1:7000" || c.HTTP.MaxBodyBytes != 2048 || c.Logging.Debug {
		t.Errorf("yaml file (with env overriding debug) not applied: %+v", c)
	}
	if diff := cmp.Diff([]string{"https://a.example", "https://b.example"}, c.HTTP.CORSAllowedOrigins); diff != "" {
		t.Error(diff)
	}

	c, _, err = Load(Source{File: tomlFile})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTPAddr != "127.0.0.1:7001" || c.HTTP.ShutdownTimeout != 2*time.Second {
		t.Errorf("toml file not applied: %+v", c)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("htp_addr: x\nhttp_addr: nonsense\n"), 0o600)
	_, _, err = Load(Source{File: bad})
	got := strings.Join(problems(t, err), "\n")
	if !strings.Contains(got, `unknown setting "htp_addr"`) || !strings.Contains(got, "GATEHOUSE_HTTP_ADDR: ") {
		t.Errorf("problems = %q", got)
	}

	_, _, err = Load(Source{File: filepath.Join(dir, "missing.yaml")})
	if err == nil {
		t.Error("missing config file accepted")
	}
	_, _, err = Load(Source{File: filepath.Join(dir, "x.ini")})
	if err == nil {
		t.Error("unknown config format accepted")
	}
}

func TestFileSecrets(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "db-url")
	os.WriteFile(f, []byte("postgres://db.internal/gatehouse\n"), 0o600)
	c, _, err := Load(envOf(map[string]string{"GATEHOUSE_DATABASE_URL_FILE": f}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL != "postgres://db.internal/gatehouse" {
		t.Errorf("DatabaseURL = %q", c.Database.URL)
	}
	_, _, err = Load(envOf(map[string]string{"GATEHOUSE_DATABASE_URL_FILE": f, "GATEHOUSE_DATABASE_URL": "postgres://x/y"}))
	if ps := problems(t, err); !strings.Contains(ps[0], "not both") {
		t.Errorf("problems = %q", ps)
	}
	_, _, err = Load(envOf(map[string]string{"GATEHOUSE_ENCRYPTION_KEYS_FILE": filepath.Join(dir, "nope")}))
	if ps := problems(t, err); !strings.HasPrefix(ps[0], "GATEHOUSE_ENCRYPTION_KEYS_FILE: ") {
		t.Errorf("problems = %q", ps)
	}
}

func TestUnknownVariablesWarn(t *testing.T) {
	_, warnings, err := Load(envOf(map[string]string{"GATEHOUSE_HTTP_ADRR": ":1", "GATEHOUSE_TEST_DATABASE_URL": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "GATEHOUSE_HTTP_ADRR") {
		t.Errorf("warnings = %q", warnings)
	}
}

func TestSecretsNeverInProblems(t *testing.T) {
	_, _, err := Load(envOf(map[string]string{"GATEHOUSE_ENCRYPTION_KEYS": "k1:c2VjcmV0LW1hdGVyaWFs"}))
	for _, p := range problems(t, err) {
		if strings.Contains(p, "c2VjcmV0LW1hdGVyaWFs") {
			t.Errorf("problem leaks key material: %q", p)
		}
	}
}

func TestEveryFieldDocumented(t *testing.T) {
	for _, f := range Fields() {
		if f.Doc == "" {
			t.Errorf("%s has no doc tag", f.Var)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the configuration table in README.md")

// Table renders the README's configuration table from the struct tags.
func table() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Meaning |\n|---|---|---|\n")
	for _, f := range Fields() {
		d := "(empty)"
		if f.Default != "" {
			d = "`" + f.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.Var, d, strings.ReplaceAll(f.Doc, "|", "\\|"))
	}
	return b.String()
}

// TestREADMEConfigTable keeps the README's table equal to the settings;
// run `go test ./internal/config -run README -update` to regenerate it.
func TestREADMEConfigTable(t *testing.T) {
	testenv.MarkedBlock(t, "../../README.md", "<!-- config-table:start -->\n", "<!-- config-table:end -->", table(), *update,
		"go test ./internal/config -run README -update")
}
