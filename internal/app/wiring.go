package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/api"
	"github.com/gatehouse/gatehouse/internal/admin"
	"github.com/gatehouse/gatehouse/internal/apidocs"
	"github.com/gatehouse/gatehouse/internal/apikey"
	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authzcheck"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/jobs"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/maintenance"
	"github.com/gatehouse/gatehouse/internal/mfa"
	"github.com/gatehouse/gatehouse/internal/netintel"
	"github.com/gatehouse/gatehouse/internal/oauth"
	"github.com/gatehouse/gatehouse/internal/pages"
	"github.com/gatehouse/gatehouse/internal/passkey"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/ratepolicy"
	"github.com/gatehouse/gatehouse/internal/rbac"
	"github.com/gatehouse/gatehouse/internal/risk"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/security"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/sms"
	"github.com/gatehouse/gatehouse/internal/social"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/internal/token"
	"github.com/gatehouse/gatehouse/internal/user"
	"github.com/gatehouse/gatehouse/internal/webhook"
	"github.com/gatehouse/gatehouse/internal/webhook/catalog"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

// deps is everything the HTTP handlers are built from.
type deps struct {
	cfg   *config.Config
	log   *slog.Logger
	db    *database
	state *state
	keys  *secret.Keyring
	queue *jobs.Queue
	reg   *prometheus.Registry
	// errors turns errors into problem responses on both listeners; nil
	// knows the storage contracts' errors only.
	errors *httpapi.ErrorTable

	// bus carries the events domains publish to the reactions subscribed
	// in newServices.
	bus *event.Bus
	// now is the clock of every service: time.Now, or a test's.
	now func() time.Time

	// keyAuthn authenticates API keys, and access tokens through the
	// token authenticator (nil in tests that build deps by hand).
	keyAuthn *apikey.Authenticator
	hasher   *password.Hasher
	policy   password.Policy
	tokens   *token.Manager
	authn    auth.Authenticator
	// limits is the rate-limit policy in force, rateStats its refusals.
	limits      *ratepolicy.Watcher
	rateStats   *throttle.Stats
	rateMetrics *throttle.Metrics
	// intel places client addresses (nil: nowhere).
	intel *netintel.Intel
	// svc are the domain services, built by newServices from the rest.
	svc services
}

// database is the opened relational store plus what the job queue needs
// from the same database.
type database struct {
	store    store.Store
	newQueue func(workers *river.Workers, cfg jobs.Config) (*jobs.Queue, error)
}

func (d *database) Close() error { return d.store.Close() }

// openDatabase opens PostgreSQL when GATEHOUSE_DATABASE_URL is set, else the
// embedded SQLite file in the data dir.
func openDatabase(ctx context.Context, cfg *config.Config, log *slog.Logger) (*database, error) {
	if cfg.Database.URL != "" {
		pg, err := postgres.Open(ctx, postgres.Config{
			URL:             cfg.Database.URL,
			ReplicaURLs:     cfg.Database.ReplicaURLs,
			MaxConns:        int32(cfg.Database.MaxConns),
			MinConns:        int32(cfg.Database.MinConns),
			MaxConnLifetime: cfg.Database.MaxConnLifetime,
		})
		if err != nil {
			return nil, fmt.Errorf("GATEHOUSE_DATABASE_URL: %w", err)
		}
		return &database{store: pg, newQueue: func(w *river.Workers, c jobs.Config) (*jobs.Queue, error) {
			return jobs.NewPostgres(pg.Pool(), w, c)
		}}, nil
	}
	lite, err := sqlite.Open(ctx, sqlite.Config{Path: cfg.SQLitePath()})
	if err != nil {
		return nil, fmt.Errorf("embedded database %s: %w", cfg.SQLitePath(), err)
	}
	log.Info("using the embedded SQLite database", "path", cfg.SQLitePath())
	return &database{store: lite, newQueue: func(w *river.Workers, c jobs.Config) (*jobs.Queue, error) {
		return jobs.NewSQLite(lite.Writer(), w, c)
	}}, nil
}

// migrateUp applies Gatehouse's migrations, then River's.
func migrateUp(ctx context.Context, db *database, log *slog.Logger) error {
	applied, err := db.store.Migrator().Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	for _, m := range applied {
		log.Info("applied migration", "version", m.Version, "name", m.Name)
	}
	q, err := db.newQueue(nil, jobs.Config{Logger: log})
	if err != nil {
		return fmt.Errorf("migrate up: job queue: %w", err)
	}
	if err := q.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// prepareSchema migrates the database where automatic migration is on, and
// otherwise checks, before anything queries a table, that the schema is
// there and up to date, so that a forgotten `gatehouse migrate up` is
// named as such instead of surfacing as a raw SQL error.
func prepareSchema(ctx context.Context, cfg *config.Config, db *database, log *slog.Logger) error {
	if cfg.AutoMigrateEnabled() {
		return migrateUp(ctx, db, log)
	}
	return checkSchema(ctx, db, log)
}

// schemaError says that the database lacks migrations this binary needs.
type schemaError struct {
	applied int // Gatehouse migrations applied
	pending int // Gatehouse's and the job queue's migrations not applied
}

func (e *schemaError) Error() string {
	if e.applied == 0 {
		return "the database has no schema: run `gatehouse migrate up`"
	}
	plural := "s"
	if e.pending == 1 {
		plural = ""
	}
	return fmt.Sprintf("the database schema is out of date, %d migration%s pending: run `gatehouse migrate up`", e.pending, plural)
}

// checkSchema returns a *schemaError when a migration of Gatehouse or of
// the job queue is pending. A version applied by a newer release (a
// rolling deploy) is not pending.
func checkSchema(ctx context.Context, db *database, log *slog.Logger) error {
	list, err := db.store.Migrator().Status(ctx)
	if err != nil {
		return fmt.Errorf("check the database schema: %w", err)
	}
	var e schemaError
	for _, m := range list {
		if m.Applied {
			e.applied++
		} else {
			e.pending++
		}
	}
	q, err := db.newQueue(nil, jobs.Config{Logger: log})
	if err != nil {
		return fmt.Errorf("check the database schema: job queue: %w", err)
	}
	river, err := q.MigrateStatus(ctx)
	if err != nil {
		return fmt.Errorf("check the database schema: %w", err)
	}
	e.pending += len(river.Pending)
	if e.applied == 0 || e.pending > 0 {
		return &e
	}
	return nil
}

// state is the ephemeral store and the rate limiter, both on Redis or both
// in process.
type state struct {
	kv      kv.Store
	limiter ratelimit.Limiter
	// multi counts the rate-limit policy's rules, several per request in
	// one round trip.
	multi   ratelimit.MultiLimiter
	backend string // "redis" or "memory"
	client  io.Closer
}

// Close ends subscriptions and, with Redis, closes the shared client.
func (s *state) Close() error {
	err := s.kv.Close()
	if s.client != nil {
		err = errors.Join(err, s.client.Close())
	}
	return err
}

// openState connects to Redis when GATEHOUSE_REDIS_URL is set, else keeps
// state in process (valid for a single node only).
func openState(ctx context.Context, cfg *config.Config, log *slog.Logger, now func() time.Time) (*state, error) {
	if cfg.Redis.URL == "" {
		log.Info("using in-process ephemeral state; set GATEHOUSE_REDIS_URL to run more than one node")
		return &state{kv: memory.New(now), limiter: ratelimit.NewMemory(now), multi: ratelimit.NewMemoryMulti(now), backend: "memory"}, nil
	}
	client, err := rediskv.NewClient(rediskv.Options{
		URL:        cfg.Redis.URL,
		Addrs:      cfg.Redis.Addrs,
		Cluster:    cfg.Redis.Cluster,
		MasterName: cfg.Redis.MasterName,
	})
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_REDIS_URL: %w", err)
	}
	checkEvictionPolicy(ctx, client, log)
	return &state{
		kv:      rediskv.New(client, cfg.Redis.KeyPrefix),
		limiter: ratelimit.NewRedis(client, cfg.Redis.KeyPrefix),
		// Leases of large limits and refusals that cannot change are
		// answered on the node: most requests cost no round trip.
		multi:   ratelimit.NewNodeCache(ratelimit.NewRedisMulti(client, cfg.Redis.KeyPrefix), now, ratelimit.NodeCacheTTL),
		backend: "redis",
		client:  client,
	}, nil
}

// checkEvictionPolicy warns when Redis may evict keys under memory
// pressure: an evicted deny-list entry would let a revoked access token
// through until its rebuild is noticed.
func checkEvictionPolicy(ctx context.Context, client redis.UniversalClient, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	policy, err := rediskv.EvictionPolicy(ctx, client)
	switch {
	case err != nil:
		log.Warn("could not read Redis's maxmemory-policy; make sure it is "+rediskv.RequiredEvictionPolicy+" (Redis must refuse writes when full, never evict Gatehouse's keys)", "error", err.Error())
	case policy != rediskv.RequiredEvictionPolicy:
		log.Warn("Redis's maxmemory-policy lets it evict keys under memory pressure; set it to "+rediskv.RequiredEvictionPolicy+": an evicted deny-list entry or lockout counter weakens revocation and lockout",
			"maxmemory_policy", policy)
	}
}

// loadKeyring parses GATEHOUSE_ENCRYPTION_KEYS or, outside production,
// generates a key into the data dir.
func loadKeyring(cfg *config.Config, log *slog.Logger) (*secret.Keyring, error) {
	keys := cfg.Encryption.Keys
	if keys == "" {
		s, created, err := secret.LoadOrCreateDevKey(cfg.Server.DataDir)
		if err != nil {
			return nil, fmt.Errorf("GATEHOUSE_ENCRYPTION_KEYS is empty and no development key could be made in %s: %w", cfg.Server.DataDir, err)
		}
		if created {
			log.Warn("generated a development encryption key; set GATEHOUSE_ENCRYPTION_KEYS in production", "file", cfg.Server.DataDir+"/encryption.key")
		} else {
			log.Warn("using the development encryption key from the data dir; set GATEHOUSE_ENCRYPTION_KEYS in production", "file", cfg.Server.DataDir+"/encryption.key")
		}
		keys = s
	}
	kr, err := secret.ParseKeys(keys)
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_ENCRYPTION_KEYS: %w", err)
	}
	return kr, nil
}

// newWorkers registers the background job workers that need no domain
// service (addServiceWorkers adds the others). The SMS worker reports a
// text message that could not be delivered as event.SMSDeliveryFailed on
// bus.
func newWorkers(cfg *config.Config, db *database, keys *secret.Keyring, tokens *token.Manager, log *slog.Logger, bus *event.Bus, now func() time.Time) (*river.Workers, error) {
	workers := river.NewWorkers()
	if err := registerMail(workers, cfg, keys, log); err != nil {
		return nil, err
	}
	if err := registerSMS(workers, cfg, keys, log, smsFailures(db.store, bus, log)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &maintenance.Worker{
		Store: db.store, Keys: tokens, RotateAfter: cfg.Tokens.KeysRotationInterval, Now: now, Log: log,
	}); err != nil {
		return nil, err
	}
	// Grants whose window ended are recorded as role.expired events.
	if err := river.AddWorkerSafely(workers, &rbac.ExpireWorker{Store: db.store, Now: now}); err != nil {
		return nil, err
	}
	return workers, nil
}

// jobsConfig sizes the job queues: the default one and mail's own, so a
// slow SMTP server cannot hold up other work. working adds the periodic
// jobs (only a queue that works jobs may schedule them).
func jobsConfig(cfg *config.Config, log *slog.Logger, working bool) jobs.Config {
	c := jobs.Config{
		MaxWorkers: cfg.Jobs.MaxWorkers,
		Queues: map[string]int{
			mail.QueueName: max(1, cfg.Jobs.MaxWorkers/2), sms.QueueName: max(1, cfg.Jobs.MaxWorkers/2),
			delivery.Queue: cfg.Webhooks.Workers,
		},
		Logger: log,
	}
	if working {
		// A job whose node died (a crash, SIGKILL) is run again this long
		// after it started: past the longest job's timeout (a webhook
		// attempt's, 30 s beyond its HTTP timeout), soon enough that an
		// interrupted delivery goes out within a couple of minutes.
		c.JobTimeout = 30 * time.Second
		c.RescueStuckJobsAfter = max(time.Minute, cfg.Webhooks.Timeout+time.Minute)
		c.PeriodicJobs = []*river.PeriodicJob{maintenance.Periodic(), delivery.PeriodicPurge(), security.PeriodicEscalate(), rbac.PeriodicExpire()}
	}
	return c
}

// startTokens starts the access token manager: signing keys, JWKS,
// verification and the deny list.
func startTokens(ctx context.Context, cfg *config.Config, db *database, keys *secret.Keyring, st *state, log *slog.Logger, now func() time.Time) (*token.Manager, error) {
	m, err := token.NewManager(token.Config{
		Issuer: cfg.Server.Issuer, DefaultAudience: cfg.Tokens.DefaultAudience,
		Algorithm: cfg.Tokens.SigningAlg, AccessTTL: cfg.Tokens.AccessTTL, ReloadInterval: cfg.Tokens.KeysReloadInterval,
	}, db.store, keys, st.kv, log, now)
	if err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return m, nil
}

// sessionDeps are what sign-in and sessions are built from. With
// GATEHOUSE_RISK_ENABLED every password sign-in is scored, from the
// sources that exist (network intelligence may know nothing).
func sessionDeps(d *deps, audiences session.Audiences) (session.Deps, error) {
	lk := session.DefaultLockout()
	lk.Threshold, lk.BaseLock, lk.MaxLock = d.cfg.Lockout.Threshold, d.cfg.Lockout.Base, d.cfg.Lockout.Max
	lk.IPFailures, lk.IPWindow = d.cfg.Lockout.IPFailureLimit, d.cfg.Lockout.IPWindow
	sd := session.Deps{
		Store: sessionStore(d.db.store, d.bus), Audiences: audiences, Hasher: d.hasher, Tokens: d.tokens, Keys: d.keys, KV: d.state.kv, Jobs: d.queue,
		Locate: locate(d.intel), Now: d.now, Log: d.log,
		Config: session.Config{
			AccessTTL: d.cfg.Tokens.AccessTTL, Leeway: token.DefaultLeeway, RefreshTTL: d.cfg.Tokens.RefreshTTL,
			IdleTimeout: d.cfg.Tokens.RefreshIdleTimeout, ReuseGrace: d.cfg.Tokens.RefreshReuseGrace,
			RequireVerifiedEmail: d.cfg.Sessions.RequireVerifiedEmail, MaxSessions: d.cfg.Sessions.MaxPerUser,
			RefuseOverLimit: d.cfg.Sessions.LimitPolicy == "refuse", BindDevice: d.cfg.Tokens.BindRefreshToDevice,
			Lockout: lk, AppURL: d.cfg.AppBaseURL(),
		},
	}
	if d.cfg.Tokens.RolesClaim && d.tokens != nil {
		sd.Tokens = rolesClaim{Tokens: d.tokens, store: d.db.store, now: d.clock()}
	}
	if d.cfg.Risk.Enabled {
		var err error
		if sd.Risk, err = risk.New(d.cfg.Risk.Settings()); err != nil {
			return session.Deps{}, fmt.Errorf("risk scoring: %w", err)
		}
		now := d.now // nil in tests that build deps by hand: the services default it to time.Now
		if now == nil {
			now = time.Now
		}
		if sd.RiskCounters, err = risk.NewCounters(d.state.kv, risk.DefaultWindow, now); err != nil {
			return session.Deps{}, fmt.Errorf("risk scoring: %w", err)
		}
		sd.RiskProfiles = riskProfiles(d.db.store)
	}
	return sd, nil
}

// locate places a client address with intel; nil without it.
func locate(intel *netintel.Intel) func(ip string) session.Location {
	if intel == nil {
		return nil
	}
	return func(ip string) session.Location {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return session.Location{}
		}
		info := intel.Lookup(a)
		return session.Location{
			Country: info.Country, City: info.City, ASN: uint32(info.ASN),
			Latitude: info.Latitude, Longitude: info.Longitude, HasLocation: info.HasLocation, Lists: info.Lists,
		}
	}
}

// readiness lists the checks behind /readyz. detailed (the admin
// listener) adds each backend's name and error text to the body.
func readiness(d *deps, detailed bool) *httpapi.Health {
	return &httpapi.Health{Log: d.log, Detailed: detailed, Checks: []httpapi.Check{
		{Name: "database", Backend: d.db.store.Dialect(), Ping: d.db.store.Ping},
		{Name: "redis", Backend: d.state.backend, Ping: d.state.kv.Ping},
	}}
}

// errorTable builds the one table that turns errors into problem
// responses, from each domain's list. The order is the order of the lists
// here (the storage contracts' rows come first); a row whose error wraps
// another's must come before it, which NewErrorTable checks: user's
// email-change form of auth.ErrReauthRequired comes before auth's.
func errorTable() (*httpapi.ErrorTable, error) {
	t, err := httpapi.NewErrorTable(
		sms.Errors(),
		token.Errors(),
		apis.Errors(),
		webhook.Errors(),
		security.Errors(),
		rbac.Errors(),
		authzcheck.Errors(),
		apikey.Errors(),
		user.Errors(),
		session.Errors(),
		mfa.Errors(),
		passkey.Errors(),
		social.Errors(),
		auth.Errors(),
	)
	if err != nil {
		return nil, fmt.Errorf("error table: %w", err)
	}
	return t, nil
}

// newRouter mounts every public route. This is the one place features are
// wired in.
func newRouter(d *deps) (*httpapi.Router, error) {
	svc := d.svc
	// Gatehouse's own administration API is guarded by RBAC: each route
	// names the permission it needs.
	guard := auth.Admin{Authn: admin.Authenticator{Inner: d.keyAuthenticator(), Users: d.db.store}, Authz: svc.authorizer}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: d.log, Errors: d.errors})
	readiness(d, false).Routes(rt)
	spec, err := specJSON(d.cfg)
	if err != nil {
		return nil, err
	}
	rt.Handle("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		_, err := w.Write(spec)
		return err
	})
	// The docs handler sets its own Content-Security-Policy and caching.
	accounts := &user.Handlers{Service: svc.users, Auth: d.keyAuthenticator()}
	accounts.Routes(rt)
	clients := &oauth.Clients{Store: d.db.store, Now: d.now, CacheTTL: 10 * time.Second}
	th, err := newThrottle(d, clients)
	if err != nil {
		return nil, err
	}
	rt.SetGuard(th.Guard)
	(&throttle.AdminHandlers{
		Admin: guard, Throttle: th, Audit: d.db.store, Now: d.now,
	}).Routes(rt)
	sessionHandlers := &session.Handlers{Service: svc.sessions, Auth: d.authn, Cookie: d.cfg.Tokens.RefreshCookie, Clients: clients, Grants: svc.apis}
	sessionHandlers.Routes(rt)
	(&oauth.Server{
		Issuer: d.cfg.Server.Issuer, Clients: clients, Sessions: svc.sessions, APIs: svc.apis,
		Tokens: d.tokens, Cookie: d.cfg.Tokens.RefreshCookie, AllowedOrigins: d.cfg.HTTP.CORSAllowedOrigins, Log: d.log,
		Errors: d.errors, UsernameTTL: 10 * time.Second, Now: d.now, APIKeys: d.introspectKey,
	}).Routes(rt)
	d.tokens.Routes(rt)
	(&mfa.Handlers{Service: svc.mfa, Auth: d.authn, Sessions: sessionHandlers}).Routes(rt)
	(&passkey.Handlers{
		Service: svc.passkeys, Auth: d.authn, Enroll: mfa.EnrollAuthenticator{Inner: d.authn, Service: svc.mfa},
		FinishEnrollment: func(r *http.Request, tok string, pk store.Passkey) (session.Result, error) {
			return svc.mfa.FinishEnrollmentWith(r.Context(), tok, passkey.AMR(pk, false), httpapi.MetaOf(r, ""))
		},
		CheckEnrollable: func(ctx context.Context, userID string) error {
			return svc.mfa.CheckEnrollable(ctx, userID, mfa.MethodWebAuthn)
		},
		Sessions: sessionHandlers, Demo: d.cfg.Env != config.EnvProduction,
	}).Routes(rt)
	(&social.Handlers{Service: svc.social, Auth: d.authn, Sessions: sessionHandlers}).Routes(rt)
	(&sms.StatusHandler{
		AuthToken: d.cfg.SMS.TwilioAuthToken, PublicURL: strings.TrimRight(d.cfg.Server.Issuer, "/") + sms.StatusPath,
		Record: smsStatusRecorder(d.db.store), Log: d.log,
	}).Routes(rt)
	// A nil *token.Manager must not become a non-nil interface.
	var killSwitch interface{ RevokedBefore() time.Time }
	if d.tokens != nil {
		killSwitch = d.tokens
	}
	adm := &admin.Handlers{
		Admin:   guard,
		Service: svc.admin, Clients: clients, Now: d.now, KillSwitch: killSwitch, RateLimitTiers: d.rateLimitTiers,
	}
	adm.Routes(rt)
	adm.OrgRoutes(rt, mfa.ValidatePolicyDocument)
	(&apis.Handlers{Admin: guard, Registry: svc.apis}).Routes(rt)
	rt.HandleHTTP("GET /v1/webhooks/event-types", catalog.Handler())
	(&webhook.Handlers{Admin: guard, Service: svc.webhooks}).Routes(rt)
	(&security.Handlers{Admin: guard, Service: svc.security}).Routes(rt)
	(&rbac.Handlers{Admin: guard, Service: svc.rbac}).Routes(rt)
	(&authzcheck.Handlers{Checker: svc.checker, Auth: d.keyAuthenticator(), Locate: country(d.intel), Now: d.now}).Routes(rt)
	(&apikey.Handlers{Service: svc.apikeys, Authn: d.keyAuthenticator(), Admin: guard}).Routes(rt)
	(&pages.Handlers{
		Accounts: svc.users, MagicLinks: svc.social, SignIns: svc.sessions, Keys: d.keys, Errors: d.errors, Log: d.log,
		Product: d.cfg.Mail.ProductName, MagicLinkRedirect: first(d.cfg.Social.RedirectAllowlist),
		SecureCookie: strings.HasPrefix(d.cfg.Server.Issuer, "https://"),
	}).Routes(rt)
	docs := apidocs.Handler("/openapi.json")
	rt.HandleHTTP("GET /docs", docs)
	rt.HandleUndocumented("GET /docs/", docs)
	return rt, nil
}

// rateLimitTiers lists the tiers of the rate-limit policy in force.
func (d *deps) rateLimitTiers() []string {
	if d.limits == nil {
		return nil
	}
	return d.limits.Policy().Tiers
}

// first is the first of l, or "": the landing page of magic links sends
// the sign-in to the first URL of the redirect allowlist.
func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// newUserService builds the account use cases; without sessions (the
// CLI) changes end none.
func newUserService(d *deps, sessions *session.Service) (*user.Service, error) {
	c := user.DefaultConfig(d.cfg.AppBaseURL())
	c.VerificationTTL, c.ResetTTL = d.cfg.Mail.VerificationTTL, d.cfg.Mail.PasswordResetTTL
	perHour := func(n int) ratelimit.Limit { return ratelimit.Limit{Rate: n, Burst: n, Period: time.Hour} }
	c.RegisterPerIP = perHour(d.cfg.RateLimits.RegisterPerIP)
	c.EmailPerAddress = perHour(d.cfg.RateLimits.EmailPerAddress)
	c.EmailPerIP = perHour(d.cfg.RateLimits.EmailPerIP)
	ud := user.Deps{
		Store: userStore(d.db.store, d.bus), Hasher: d.hasher, Policy: d.policy, Jobs: d.queue, Keys: d.keys,
		Limiter: d.state.limiter, Now: d.now, Log: d.log, Config: c,
	}
	if sessions != nil {
		ud.Sessions = sessions
		ud.Passwords = accountPasswords{sessions}
	}
	return user.New(ud)
}

// accountPasswords lets the account service check a signed-in user's
// password through the sign-in lockout.
type accountPasswords struct{ sessions *session.Service }

func (a accountPasswords) VerifyPassword(ctx context.Context, userID, pw string, m httpapi.Meta) error {
	err := a.sessions.VerifyPassword(ctx, userID, pw, m)
	if errors.Is(err, session.ErrInvalidCredentials) {
		return user.ErrInvalidCurrentPassword
	}
	return err
}

// specJSON is the OpenAPI document served at /openapi.json.
func specJSON(cfg *config.Config) ([]byte, error) { return api.JSON(cfg.Server.Issuer) }

// newPublicHandler is the public API with its middleware chain, outermost
// first.
func newPublicHandler(d *deps) (http.Handler, error) {
	rt, err := newRouter(d)
	if err != nil {
		return nil, err
	}
	ips, err := httpapi.NewClientIPResolver(d.cfg.HTTP.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_TRUSTED_PROXIES: %w", err)
	}
	m := httpapi.NewMetrics(d.reg)
	return httpapi.Chain(rt,
		httpapi.RequestID(),
		httpapi.Observe(d.log, m, ips),
		httpapi.Recover(d.log),
		httpapi.SecurityHeaders(d.cfg.TLS() || d.cfg.Env == config.EnvProduction),
		httpapi.CORS(d.cfg.HTTP.CORSAllowedOrigins),
		// After CORS, so that a browser can read the 503; before any
		// work on the body.
		httpapi.Shed(d.cfg.HTTP.MaxInflight, httpapi.IsHealthCheck, httpapi.RetryAfterOverloaded, m),
		httpapi.BodyLimit(d.cfg.HTTP.MaxBodyBytes),
		httpapi.CleanHeaders(),
	), nil
}

// newAdminHandler serves /metrics and the health checks on the admin
// listener.
func newAdminHandler(d *deps) http.Handler {
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: d.log, Errors: d.errors})
	readiness(d, true).Routes(rt)
	rt.HandleHTTP("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}))
	if d.cfg.Server.AdminPprof {
		rt.HandleHTTP("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
		rt.HandleHTTP("GET /debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline))
		rt.HandleHTTP("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		rt.HandleHTTP("GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
		rt.HandleHTTP("GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	}
	return httpapi.Chain(rt, httpapi.RequestID(), httpapi.Recover(d.log), httpapi.SecurityHeaders(false))
}

// newRegistry builds the Prometheus registry: Go runtime and process
// figures, build info, database pool and job queue gauges. HTTP metrics are
// added by newPublicHandler.
func newRegistry(st store.Store, q *jobs.Queue, log *slog.Logger) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "gatehouse_build_info",
			Help:        "Build information; always 1.",
			ConstLabels: prometheus.Labels{"version": versionString(), "database": st.Dialect()},
		}, func() float64 { return 1 }),
		&poolCollector{store: st},
		&jobsCollector{queue: q, log: log},
	)
	return reg
}
