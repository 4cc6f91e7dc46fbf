// Package config loads Gatehouse's settings into one typed struct.
//
// Order of precedence, lowest first: built-in defaults, an optional config
// file (YAML or TOML, chosen by extension), GATEHOUSE_* environment
// variables, and GATEHOUSE_*_FILE variables that name a file holding the
// value (for secrets mounted by an orchestrator). Every problem is reported
// at once, one line per setting, naming the environment variable.
package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
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

// Config holds every setting. Field tags:
//
//	env:     the variable name after GATEHOUSE_ (the file key is its lower-case form)
//	default: the default value, in the same syntax as the variable
//	doc:     one line for the README's configuration table
//	secret:  never printed
type Config struct {
	Env string `env:"ENV" default:"development" doc:"Profile: development, test or production. Production refuses insecure settings."`

	HTTPAddr   string `env:"HTTP_ADDR" default:":8080" doc:"Listen address of the public API (host:port)."`
	AdminAddr  string `env:"ADMIN_ADDR" default:"127.0.0.1:9090" doc:"Listen address of the admin listener serving /metrics and health checks; keep it private."`
	AdminPprof bool   `env:"ADMIN_PPROF" default:"false" doc:"Serve Go's profiler (/debug/pprof/) on the admin listener, for diagnosing CPU and memory use."`
	DataDir    string `env:"DATA_DIR" default:"./data" doc:"Directory for the embedded SQLite database, the development encryption key and other local files."`
	Issuer     string `env:"ISSUER" default:"http://localhost:8080" doc:"Public base URL of this server; https required in production unless localhost."`

	DatabaseURL             string        `env:"DATABASE_URL" secret:"true" doc:"PostgreSQL URL (postgres://…). Empty: an SQLite file inside the data dir."`
	DatabaseReplicaURLs     []string      `env:"DATABASE_REPLICA_URLS" secret:"true" doc:"Comma-separated PostgreSQL read replica URLs for read-only queries."`
	DatabaseMaxConns        int           `env:"DATABASE_MAX_CONNS" default:"20" doc:"Maximum PostgreSQL connections per pool."`
	DatabaseMinConns        int           `env:"DATABASE_MIN_CONNS" default:"2" doc:"Connections the PostgreSQL pool keeps open when idle."`
	DatabaseMaxConnLifetime time.Duration `env:"DATABASE_MAX_CONN_LIFETIME" default:"1h" doc:"Maximum lifetime of a PostgreSQL connection."`
	AutoMigrate             string        `env:"AUTO_MIGRATE" default:"" doc:"Apply migrations when serve starts: true or false. Empty: true in development and test, false in production."`

	RedisURL        string   `env:"REDIS_URL" secret:"true" doc:"Redis URL (redis:// or rediss://). Empty: ephemeral state is kept in process (single node only)."`
	RedisAddrs      []string `env:"REDIS_ADDRS" doc:"Extra Redis host:port addresses, for cluster or sentinel deployments."`
	RedisMasterName string   `env:"REDIS_MASTER_NAME" doc:"Sentinel master name; set it to talk to Redis through Sentinel."`
	RedisCluster    bool     `env:"REDIS_CLUSTER" default:"false" doc:"Talk to a Redis Cluster."`
	RedisKeyPrefix  string   `env:"REDIS_KEY_PREFIX" default:"gatehouse:" doc:"Prefix of every Redis key and channel Gatehouse uses."`

	EncryptionKeys string `env:"ENCRYPTION_KEYS" secret:"true" doc:"Keys for secrets at rest: comma-separated <key-id>:<base64 of 32 bytes>; the first encrypts, all decrypt. Required in production; generated into the data dir in development."`

	LogLevel  string `env:"LOG_LEVEL" default:"info" doc:"debug, info, warn or error."`
	LogFormat string `env:"LOG_FORMAT" default:"json" doc:"json or text."`
	Debug     bool   `env:"DEBUG" default:"false" doc:"Debug mode (verbose errors in logs, debug logging); refused in production."`

	CORSAllowedOrigins []string      `env:"CORS_ALLOWED_ORIGINS" doc:"Comma-separated origins allowed to call the API from a browser (e.g. https://app.example.com); https only in production, except localhost. Empty: none."`
	TrustedProxies     []string      `env:"TRUSTED_PROXIES" doc:"Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is trusted for the client IP."`
	MaxBodyBytes       int64         `env:"MAX_BODY_BYTES" default:"1048576" doc:"Largest request body accepted, in bytes."`
	ReadHeaderTimeout  time.Duration `env:"READ_HEADER_TIMEOUT" default:"5s" doc:"Time allowed to read request headers."`
	ReadTimeout        time.Duration `env:"READ_TIMEOUT" default:"15s" doc:"Time allowed to read a whole request."`
	WriteTimeout       time.Duration `env:"WRITE_TIMEOUT" default:"30s" doc:"Time allowed to write a response."`
	IdleTimeout        time.Duration `env:"IDLE_TIMEOUT" default:"120s" doc:"Keep-alive idle timeout."`
	ShutdownTimeout    time.Duration `env:"SHUTDOWN_TIMEOUT" default:"15s" doc:"How long a graceful shutdown waits for in-flight requests and running jobs."`
	TLSCertFile        string        `env:"TLS_CERT_FILE" doc:"PEM certificate; with TLS_KEY_FILE the public listener serves HTTPS."`
	TLSKeyFile         string        `env:"TLS_KEY_FILE" doc:"PEM private key for TLS_CERT_FILE."`

	JobsMaxWorkers int `env:"JOBS_MAX_WORKERS" default:"10" doc:"Background jobs worked at once on this node."`

	AppURL               string        `env:"APP_URL" doc:"Base URL of the pages links in emails point to (APP_URL/verify-email?token=…, APP_URL/reset-password?token=…); https only in production, except localhost. Empty: the issuer."`
	ProductName          string        `env:"PRODUCT_NAME" default:"Gatehouse" doc:"Product name used in emails."`
	SupportEmail         string        `env:"SUPPORT_EMAIL" doc:"Support address offered in emails (optional)."`
	SMTPURL              string        `env:"SMTP_URL" secret:"true" doc:"smtp://user:pass@host:587 (STARTTLS required) or smtps://…:465. Empty: emails are written as .eml files to DATA_DIR/outbox."`
	EmailFrom            string        `env:"EMAIL_FROM" default:"Gatehouse <no-reply@localhost>" doc:"From address of emails."`
	EmailTemplatesDir    string        `env:"EMAIL_TEMPLATES_DIR" doc:"Directory overriding email templates (same file names as the built-in ones)."`
	EmailVerificationTTL time.Duration `env:"EMAIL_VERIFICATION_TTL" default:"24h" doc:"Lifetime of email verification links."`
	PasswordResetTTL     time.Duration `env:"PASSWORD_RESET_TTL" default:"1h" doc:"Lifetime of password reset links."`

	PasswordMinLength       int      `env:"PASSWORD_MIN_LENGTH" default:"12" doc:"Minimum password length in characters (NIST SP 800-63B asks 15 where the password is the only factor)."`
	PasswordMaxLength       int      `env:"PASSWORD_MAX_LENGTH" default:"256" doc:"Maximum password length in characters (at least 64)."`
	PasswordMinScore        int      `env:"PASSWORD_MIN_SCORE" default:"3" doc:"Minimum zxcvbn strength score, 0–4 (0 turns the check off)."`
	PasswordRequire         []string `env:"PASSWORD_REQUIRE" doc:"Composition rules, off by default: comma-separated upper, lower, digit, symbol."`
	BreachedPasswordsFile   string   `env:"BREACHED_PASSWORDS_FILE" doc:"File of SHA-1 hashes of breached passwords (Have I Been Pwned format, one uppercase hex hash a line, optional :count, sorted)."`
	HIBPEnabled             bool     `env:"HIBP_ENABLED" default:"false" doc:"Also check new passwords against the Have I Been Pwned range API (k-anonymity: only 5 hex characters of the SHA-1 leave the server)."`
	HIBPURL                 string   `env:"HIBP_URL" default:"https://api.pwnedpasswords.com" doc:"Base URL of the Have I Been Pwned range API."`
	Argon2MemoryKiB         int      `env:"ARGON2_MEMORY_KIB" default:"19456" doc:"Argon2id memory per hash in KiB (OWASP: 19456)."`
	Argon2Time              int      `env:"ARGON2_TIME" default:"2" doc:"Argon2id iterations (OWASP: 2)."`
	Argon2Threads           int      `env:"ARGON2_THREADS" default:"1" doc:"Argon2id parallelism (OWASP: 1)."`
	PasswordHashConcurrency int      `env:"PASSWORD_HASH_CONCURRENCY" default:"0" doc:"Password hashes computed at once; caps memory at this times ARGON2_MEMORY_KIB. 0: the number of CPUs."`

	AccessTokenTTL       time.Duration `env:"ACCESS_TOKEN_TTL" default:"15m" doc:"Lifetime of access tokens (JWT)."`
	RefreshTokenTTL      time.Duration `env:"REFRESH_TOKEN_TTL" default:"720h" doc:"Absolute lifetime of a session and its refresh tokens."`
	RefreshIdleTimeout   time.Duration `env:"REFRESH_IDLE_TIMEOUT" default:"336h" doc:"A refresh token unused this long dies (0: no idle timeout)."`
	RefreshReuseGrace    time.Duration `env:"REFRESH_REUSE_GRACE" default:"10s" doc:"Window in which the immediate predecessor of a refresh token, presented again, returns the same successor (0 disables)."`
	RefreshTokenCookie   bool          `env:"REFRESH_TOKEN_COOKIE" default:"false" doc:"Deliver refresh tokens as an HttpOnly, Secure, SameSite=Strict __Host- cookie instead of in the response body (browser apps). A refresh that uses the cookie must send a JSON body or an Origin listed in GATEHOUSE_CORS_ALLOWED_ORIGINS."`
	BindRefreshToDevice  bool          `env:"BIND_REFRESH_TO_DEVICE" default:"false" doc:"Refuse a refresh from another device fingerprint (device_id and user-agent family) than the session's."`
	SigningAlg           string        `env:"SIGNING_ALG" default:"RS256" doc:"Algorithm of new signing keys: RS256, ES256 or EdDSA."`
	KeysReloadInterval   time.Duration `env:"KEYS_RELOAD_INTERVAL" default:"30s" doc:"How often running servers reload signing keys (rotations are also pushed at once)."`
	KeysRotationInterval time.Duration `env:"KEYS_ROTATION_INTERVAL" default:"0s" doc:"Rotate the signing key automatically when the current one is this old (0: only with gatehouse keys rotate)."`
	RequireVerifiedEmail bool          `env:"REQUIRE_VERIFIED_EMAIL" default:"true" doc:"Refuse sign-in until the email address is verified."`
	MaxSessionsPerUser   int           `env:"MAX_SESSIONS_PER_USER" default:"0" doc:"Concurrent sessions per user (0: no limit)."`
	SessionLimitPolicy   string        `env:"SESSION_LIMIT_POLICY" default:"end_oldest" doc:"Over the session limit: end_oldest (end the oldest session) or refuse (refuse the new login)."`
	LockoutThreshold     int           `env:"LOCKOUT_THRESHOLD" default:"5" doc:"Consecutive failed sign-ins that lock an account."`
	LockoutBase          time.Duration `env:"LOCKOUT_BASE" default:"1m" doc:"First lock; each further lock doubles it."`
	LockoutMax           time.Duration `env:"LOCKOUT_MAX" default:"1h" doc:"Longest lock."`
	LoginIPFailureLimit  int           `env:"LOGIN_IP_FAILURE_LIMIT" default:"100" doc:"Failed sign-ins from one IP, across accounts, that block the IP for the window (0: off)."`
	LoginIPWindow        time.Duration `env:"LOGIN_IP_WINDOW" default:"15m" doc:"Window of GATEHOUSE_LOGIN_IP_FAILURE_LIMIT."`
	RegisterLimitPerIP   int           `env:"REGISTER_LIMIT_PER_IP" default:"100" doc:"Registrations per client IP per hour (over it: 429)."`
	EmailLimitPerAddress int           `env:"EMAIL_LIMIT_PER_ADDRESS" default:"5" doc:"Verification and reset emails per address per hour (over it, requests are answered alike but nothing is sent)."`
	EmailLimitPerIP      int           `env:"EMAIL_LIMIT_PER_IP" default:"50" doc:"Verification and reset email requests per client IP per hour (answered alike; nothing is sent over it)."`

	MFARequired         bool          `env:"MFA_REQUIRED" default:"false" doc:"Require a second factor of every user (organisations can also require it for their members)."`
	MFAMethods          []string      `env:"MFA_METHODS" doc:"Allowed second factors: comma-separated totp, sms, email, backup_code. Empty: all."`
	MFAEnrollmentGrace  time.Duration `env:"MFA_ENROLLMENT_GRACE" default:"0s" doc:"When MFA is required, how long after sign-up a user may still sign in without a factor."`
	MFALockoutThreshold int           `env:"MFA_LOCKOUT_THRESHOLD" default:"10" doc:"Consecutive wrong second-factor codes, across every sign-in of an account, that lock its second-factor verification."`
	MFALockoutBase      time.Duration `env:"MFA_LOCKOUT_BASE" default:"1m" doc:"First lock of second-factor verification; each further lock doubles it."`
	MFALockoutMax       time.Duration `env:"MFA_LOCKOUT_MAX" default:"1h" doc:"Longest lock of second-factor verification."`

	TwilioAccountSID          string   `env:"TWILIO_ACCOUNT_SID" doc:"Twilio account SID (AC…). Empty: text messages are written to DATA_DIR/outbox."`
	TwilioAuthToken           string   `env:"TWILIO_AUTH_TOKEN" secret:"true" doc:"Twilio auth token (also verifies X-Twilio-Signature on status callbacks)."`
	TwilioFrom                string   `env:"TWILIO_FROM" doc:"Sender number in E.164 (or use TWILIO_MESSAGING_SERVICE_SID)."`
	TwilioMessagingServiceSID string   `env:"TWILIO_MESSAGING_SERVICE_SID" doc:"Twilio messaging service SID (MG…), instead of TWILIO_FROM."`
	TwilioBaseURL             string   `env:"TWILIO_BASE_URL" default:"https://api.twilio.com" doc:"Base URL of the Twilio REST API (for regional endpoints or a test double)."`
	SMSAllowedCountries       []string `env:"SMS_ALLOWED_COUNTRIES" doc:"Where text messages may go (toll-fraud protection): country calling codes and/or region codes, e.g. 44,49,US,CA. Empty: everywhere."`
	SMSLimitPerPhone          int      `env:"SMS_LIMIT_PER_PHONE" default:"5" doc:"Text messages per phone number per hour."`
	SMSLimitPerUser           int      `env:"SMS_LIMIT_PER_USER" default:"10" doc:"Text messages per user per hour."`
	SMSLimitPerCountry        int      `env:"SMS_LIMIT_PER_COUNTRY" default:"1000" doc:"Text messages per country calling code per hour (SMS pumping protection)."`

	RedirectAllowlist []string `env:"REDIRECT_ALLOWLIST" doc:"Comma-separated exact URLs that social sign-in may redirect to (redirect_to)."`

	// Social holds the GATEHOUSE_SOCIAL_<ID>_<KEY> provider settings (from
	// the environment, or social_<id>_<key> in the config file), by
	// variable name. They are validated by the social provider registry.
	Social map[string]string `env:"-"`
}

// Field describes one setting, for documentation and error messages.
type Field struct {
	Var     string // full environment variable name
	Key     string // config file key
	Default string
	Doc     string
	Secret  bool
	index   int
}

// Fields lists every setting in declaration order.
func Fields() []Field {
	t := reflect.TypeFor[Config]()
	out := make([]Field, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
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
			index:   i,
		})
	}
	return out
}

// set parses raw into field i of c.
func (c *Config) set(fd Field, raw string) error {
	v := reflect.ValueOf(c).Elem().Field(fd.index)
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

// validate reports every bad setting, one message per field.
func (c *Config) validate() []string {
	var errs []string
	bad := func(name, format string, args ...any) {
		errs = append(errs, Prefix+name+": "+fmt.Sprintf(format, args...))
	}

	switch c.Env {
	case EnvDevelopment, EnvTest, EnvProduction:
	default:
		bad("ENV", "%q is not a profile (want development, test or production)", c.Env)
	}
	if err := checkListenAddr(c.HTTPAddr); err != nil {
		bad("HTTP_ADDR", "%v", err)
	}
	if err := checkListenAddr(c.AdminAddr); err != nil {
		bad("ADMIN_ADDR", "%v", err)
	}
	if c.DataDir == "" {
		bad("DATA_DIR", "must not be empty")
	}
	if err := checkIssuer(c.Issuer); err != nil {
		bad("ISSUER", "%v", err)
	}
	if c.DatabaseURL != "" {
		if err := checkPostgresURL(c.DatabaseURL); err != nil {
			bad("DATABASE_URL", "%v", err)
		}
	}
	for i, u := range c.DatabaseReplicaURLs {
		if err := checkPostgresURL(u); err != nil {
			bad("DATABASE_REPLICA_URLS", "entry %d: %v", i+1, err)
		}
	}
	if len(c.DatabaseReplicaURLs) > 0 && c.DatabaseURL == "" {
		bad("DATABASE_REPLICA_URLS", "replicas need GATEHOUSE_DATABASE_URL to point at the PostgreSQL primary")
	}
	if c.DatabaseMaxConns < 1 || c.DatabaseMaxConns > 10000 {
		bad("DATABASE_MAX_CONNS", "%d is out of range (1–10000)", c.DatabaseMaxConns)
	}
	if c.DatabaseMinConns < 0 || c.DatabaseMinConns > c.DatabaseMaxConns {
		bad("DATABASE_MIN_CONNS", "%d must be between 0 and GATEHOUSE_DATABASE_MAX_CONNS (%d)", c.DatabaseMinConns, c.DatabaseMaxConns)
	}
	if c.DatabaseMaxConnLifetime < time.Second {
		bad("DATABASE_MAX_CONN_LIFETIME", "must be at least 1s")
	}
	switch c.AutoMigrate {
	case "", "true", "false":
	default:
		bad("AUTO_MIGRATE", "%q is not a boolean (want true, false or empty)", c.AutoMigrate)
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			bad("REDIS_URL", "not a redis:// or rediss:// URL with a host")
		}
	}
	for _, a := range c.RedisAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("REDIS_ADDRS", "%q is not host:port", a)
		}
	}
	if (len(c.RedisAddrs) > 0 || c.RedisMasterName != "" || c.RedisCluster) && c.RedisURL == "" {
		bad("REDIS_URL", "required when GATEHOUSE_REDIS_ADDRS, GATEHOUSE_REDIS_MASTER_NAME or GATEHOUSE_REDIS_CLUSTER is set")
	}
	if c.RedisCluster && c.RedisMasterName != "" {
		bad("REDIS_CLUSTER", "cannot be combined with GATEHOUSE_REDIS_MASTER_NAME (sentinel)")
	}
	if c.EncryptionKeys != "" {
		if err := checkKeys(c.EncryptionKeys); err != nil {
			bad("ENCRYPTION_KEYS", "%v", err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "%q is not a level (want debug, info, warn or error)", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("LOG_FORMAT", "%q is not a format (want json or text)", c.LogFormat)
	}
	for _, o := range c.CORSAllowedOrigins {
		if err := checkOrigin(o); err != nil {
			bad("CORS_ALLOWED_ORIGINS", "%v", err)
		}
	}
	for _, p := range c.TrustedProxies {
		if _, err := parseCIDROrIP(p); err != nil {
			bad("TRUSTED_PROXIES", "%q is not a CIDR or IP address", p)
		}
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 100<<20 {
		bad("MAX_BODY_BYTES", "%d is out of range (1024–104857600)", c.MaxBodyBytes)
	}
	for name, d := range map[string]time.Duration{
		"READ_HEADER_TIMEOUT": c.ReadHeaderTimeout, "READ_TIMEOUT": c.ReadTimeout,
		"WRITE_TIMEOUT": c.WriteTimeout, "IDLE_TIMEOUT": c.IdleTimeout, "SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
	} {
		if d <= 0 {
			bad(name, "must be a positive duration")
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("TLS_CERT_FILE", "GATEHOUSE_TLS_CERT_FILE and GATEHOUSE_TLS_KEY_FILE must be set together")
	}
	if c.JobsMaxWorkers < 1 || c.JobsMaxWorkers > 10000 {
		bad("JOBS_MAX_WORKERS", "%d is out of range (1–10000)", c.JobsMaxWorkers)
	}

	if c.AppURL != "" {
		if err := checkIssuer(c.AppURL); err != nil {
			bad("APP_URL", "%v", err)
		}
	}
	if c.ProductName == "" {
		bad("PRODUCT_NAME", "must not be empty")
	}
	if c.SMTPURL != "" {
		u, err := url.Parse(c.SMTPURL)
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Host == "" {
			bad("SMTP_URL", "not an smtp:// or smtps:// URL with a host")
		}
	}
	if _, err := mail.ParseAddress(c.EmailFrom); err != nil {
		bad("EMAIL_FROM", "%q is not an email address", c.EmailFrom)
	}
	if c.SupportEmail != "" {
		if _, err := mail.ParseAddress(c.SupportEmail); err != nil {
			bad("SUPPORT_EMAIL", "%q is not an email address", c.SupportEmail)
		}
	}
	if c.EmailVerificationTTL < time.Minute || c.EmailVerificationTTL > 30*24*time.Hour {
		bad("EMAIL_VERIFICATION_TTL", "must be between 1m and 720h")
	}
	if c.PasswordResetTTL < time.Minute || c.PasswordResetTTL > 24*time.Hour {
		bad("PASSWORD_RESET_TTL", "must be between 1m and 24h")
	}
	if c.PasswordMinLength < 8 || c.PasswordMinLength > 128 {
		bad("PASSWORD_MIN_LENGTH", "%d is out of range (8–128; NIST SP 800-63B requires at least 8)", c.PasswordMinLength)
	}
	if c.PasswordMaxLength < 64 || c.PasswordMaxLength > 4096 || c.PasswordMaxLength < c.PasswordMinLength {
		bad("PASSWORD_MAX_LENGTH", "%d is out of range (64–4096, and at least GATEHOUSE_PASSWORD_MIN_LENGTH)", c.PasswordMaxLength)
	}
	if c.PasswordMinScore < 0 || c.PasswordMinScore > 4 {
		bad("PASSWORD_MIN_SCORE", "%d is out of range (0–4)", c.PasswordMinScore)
	}
	for _, r := range c.PasswordRequire {
		switch r {
		case "upper", "lower", "digit", "symbol":
		default:
			bad("PASSWORD_REQUIRE", "%q is not a rule (want upper, lower, digit or symbol)", r)
		}
	}
	if c.HIBPEnabled {
		if err := checkIssuer(c.HIBPURL); err != nil {
			bad("HIBP_URL", "%v", err)
		}
	}
	if c.Argon2MemoryKiB < 8192 || c.Argon2MemoryKiB > 4<<20 {
		bad("ARGON2_MEMORY_KIB", "%d is out of range (8192–4194304)", c.Argon2MemoryKiB)
	}
	if c.Argon2Time < 1 || c.Argon2Time > 20 {
		bad("ARGON2_TIME", "%d is out of range (1–20)", c.Argon2Time)
	}
	if c.Argon2Threads < 1 || c.Argon2Threads > 64 {
		bad("ARGON2_THREADS", "%d is out of range (1–64)", c.Argon2Threads)
	}
	if c.PasswordHashConcurrency < 0 || c.PasswordHashConcurrency > 1024 {
		bad("PASSWORD_HASH_CONCURRENCY", "%d is out of range (0–1024)", c.PasswordHashConcurrency)
	}

	if c.AccessTokenTTL < time.Minute || c.AccessTokenTTL > 24*time.Hour {
		bad("ACCESS_TOKEN_TTL", "must be between 1m and 24h")
	}
	if c.RefreshTokenTTL < c.AccessTokenTTL || c.RefreshTokenTTL > 365*24*time.Hour {
		bad("REFRESH_TOKEN_TTL", "must be at least GATEHOUSE_ACCESS_TOKEN_TTL and at most 8760h")
	}
	if c.RefreshIdleTimeout < 0 {
		bad("REFRESH_IDLE_TIMEOUT", "must not be negative")
	}
	if c.RefreshReuseGrace < 0 || c.RefreshReuseGrace > time.Minute {
		bad("REFRESH_REUSE_GRACE", "must be between 0 and 1m")
	}
	switch c.SigningAlg {
	case "RS256", "ES256", "EdDSA":
	default:
		bad("SIGNING_ALG", "%q is not supported (want RS256, ES256 or EdDSA)", c.SigningAlg)
	}
	if c.KeysReloadInterval < time.Second {
		bad("KEYS_RELOAD_INTERVAL", "must be at least 1s")
	}
	if c.KeysRotationInterval != 0 && c.KeysRotationInterval < time.Hour {
		bad("KEYS_ROTATION_INTERVAL", "must be 0 (off) or at least 1h")
	}
	if c.MaxSessionsPerUser < 0 {
		bad("MAX_SESSIONS_PER_USER", "must not be negative")
	}
	switch c.SessionLimitPolicy {
	case "end_oldest", "refuse":
	default:
		bad("SESSION_LIMIT_POLICY", "%q is not a policy (want end_oldest or refuse)", c.SessionLimitPolicy)
	}
	if c.LockoutThreshold < 1 || c.LockoutThreshold > 100 {
		bad("LOCKOUT_THRESHOLD", "%d is out of range (1–100)", c.LockoutThreshold)
	}
	if c.LockoutBase < time.Second {
		bad("LOCKOUT_BASE", "must be at least 1s")
	}
	if c.LockoutMax < c.LockoutBase {
		bad("LOCKOUT_MAX", "must be at least GATEHOUSE_LOCKOUT_BASE")
	}
	if c.LoginIPFailureLimit < 0 {
		bad("LOGIN_IP_FAILURE_LIMIT", "must not be negative")
	}
	if c.LoginIPWindow < time.Second {
		bad("LOGIN_IP_WINDOW", "must be at least 1s")
	}

	for name, n := range map[string]int{"REGISTER_LIMIT_PER_IP": c.RegisterLimitPerIP, "EMAIL_LIMIT_PER_ADDRESS": c.EmailLimitPerAddress, "EMAIL_LIMIT_PER_IP": c.EmailLimitPerIP} {
		if n < 1 || n > 1000000 {
			bad(name, "%d is out of range (1–1000000)", n)
		}
	}

	for _, m := range c.MFAMethods {
		switch m {
		case "totp", "sms", "email", "backup_code":
		default:
			bad("MFA_METHODS", "%q is not a method (want totp, sms, email or backup_code)", m)
		}
	}
	if c.MFAEnrollmentGrace < 0 {
		bad("MFA_ENROLLMENT_GRACE", "must not be negative")
	}
	if c.MFALockoutThreshold < 1 || c.MFALockoutThreshold > 100 {
		// NIST SP 800-63B §5.2.2: at most 100 consecutive failures.
		bad("MFA_LOCKOUT_THRESHOLD", "%d is out of range (1–100)", c.MFALockoutThreshold)
	}
	if c.MFALockoutBase < time.Second {
		bad("MFA_LOCKOUT_BASE", "must be at least 1s")
	}
	if c.MFALockoutMax < c.MFALockoutBase {
		bad("MFA_LOCKOUT_MAX", "must be at least GATEHOUSE_MFA_LOCKOUT_BASE")
	}
	if c.TwilioAccountSID != "" {
		if !strings.HasPrefix(c.TwilioAccountSID, "AC") {
			bad("TWILIO_ACCOUNT_SID", "must start with AC")
		}
		if c.TwilioAuthToken == "" {
			bad("TWILIO_AUTH_TOKEN", "required with GATEHOUSE_TWILIO_ACCOUNT_SID")
		}
		if (c.TwilioFrom == "") == (c.TwilioMessagingServiceSID == "") {
			bad("TWILIO_FROM", "set exactly one of GATEHOUSE_TWILIO_FROM and GATEHOUSE_TWILIO_MESSAGING_SERVICE_SID")
		}
	}
	if err := checkIssuer(c.TwilioBaseURL); err != nil {
		bad("TWILIO_BASE_URL", "%v", err)
	}
	if err := checkSMSAllowlist(c.SMSAllowedCountries); err != nil {
		bad("SMS_ALLOWED_COUNTRIES", "%v", err)
	}
	for name, n := range map[string]int{"SMS_LIMIT_PER_PHONE": c.SMSLimitPerPhone, "SMS_LIMIT_PER_USER": c.SMSLimitPerUser, "SMS_LIMIT_PER_COUNTRY": c.SMSLimitPerCountry} {
		if n < 1 || n > 1000000 {
			bad(name, "%d is out of range (1–1000000)", n)
		}
	}

	for _, r := range c.RedirectAllowlist {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
			bad("REDIRECT_ALLOWLIST", "%q is not an absolute http(s) URL without a fragment", r)
		} else if c.Env == EnvProduction && u.Scheme == "http" && !isLocalhost(u.Hostname()) {
			bad("REDIRECT_ALLOWLIST", "%q must use https:// in production", r)
		}
	}

	if c.Env == EnvProduction {
		if c.EncryptionKeys == "" {
			bad("ENCRYPTION_KEYS", "required in production: generate one with `gatehouse encryption-key generate` (or 32 random bytes, base64) and set <key-id>:<base64>")
		}
		if u, err := url.Parse(c.Issuer); err == nil && u.Scheme == "http" && !isLocalhost(u.Hostname()) {
			bad("ISSUER", "must use https:// in production (got %q)", c.Issuer)
		}
		// Emailed one-time links start with APP_URL: over http their tokens
		// would travel in the clear.
		if u, err := url.Parse(c.AppURL); c.AppURL != "" && err == nil && u.Scheme == "http" && !isLocalhost(u.Hostname()) {
			bad("APP_URL", "must use https:// in production (got %q): emailed one-time links start with it", c.AppURL)
		}
		// A credentialed CORS origin served over http could be tampered with
		// on the way and then call the API as the user.
		for _, o := range c.CORSAllowedOrigins {
			if u, err := url.Parse(o); err == nil && u.Scheme == "http" && !isLocalhost(u.Hostname()) {
				bad("CORS_ALLOWED_ORIGINS", "%q must use https:// in production", o)
			}
		}
		if c.Debug {
			bad("DEBUG", "debug mode is refused in production")
		}
		if c.LogLevel == "debug" {
			bad("LOG_LEVEL", "debug logging is refused in production")
		}
		if c.SMTPURL == "" {
			bad("SMTP_URL", "required in production: without it emails (with live one-time links) are written to files in the data dir")
		}
	}
	return errs
}

// AutoMigrateEnabled reports whether serve applies migrations at start-up.
func (c *Config) AutoMigrateEnabled() bool {
	switch c.AutoMigrate {
	case "true":
		return true
	case "false":
		return false
	}
	return c.Env != EnvProduction
}

// SQLitePath is the embedded database file used when DatabaseURL is empty.
func (c *Config) SQLitePath() string {
	return strings.TrimRight(c.DataDir, "/") + "/gatehouse.db"
}

// AppBaseURL is where emailed links point: APP_URL, or the issuer.
func (c *Config) AppBaseURL() string {
	if c.AppURL != "" {
		return c.AppURL
	}
	return c.Issuer
}

// TLS reports whether the public listener serves HTTPS itself.
func (c *Config) TLS() bool { return c.TLSCertFile != "" }

func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not a listen address (want host:port, e.g. :8080 or 127.0.0.1:8080)", addr)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("%q has an invalid host %q", addr, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port %q (want 0–65535)", addr, port)
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return false
			}
		}
	}
	return true
}

func checkIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must not carry a query, fragment or user info", s)
	}
	if strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("%q must not end with a slash", s)
	}
	return nil
}

func checkPostgresURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("scheme %q is not postgres:// or postgresql://", u.Scheme)
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return fmt.Errorf("no host in the URL")
	}
	return nil
}

func checkOrigin(o string) error {
	if o == "*" {
		return fmt.Errorf(`"*" is not allowed: list each origin (credentials must never be shared with any origin)`)
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q is not an origin (want scheme://host[:port])", o)
	}
	return nil
}

func parseCIDROrIP(s string) (*net.IPNet, error) {
	if ip := net.ParseIP(s); ip != nil {
		bits := 128
		if ip.To4() != nil {
			bits = 32
		}
		return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
	}
	_, n, err := net.ParseCIDR(s)
	return n, err
}

func isLocalhost(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
