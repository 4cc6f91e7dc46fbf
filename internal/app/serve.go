package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/apikey"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/netintel"
	"github.com/gatehouse/gatehouse/internal/ratepolicy"
	"github.com/gatehouse/gatehouse/internal/rbac"
	"github.com/gatehouse/gatehouse/internal/throttle"
	"github.com/gatehouse/gatehouse/internal/token"
)

func (c *cli) serve(ctx context.Context, args []string) int {
	if _, ok := c.flags("serve", args, nil); !ok {
		return exitUsage
	}
	cfg, log, ok := c.load()
	if !ok {
		return exitConfig
	}
	tuneGC(c.env.Getenv, log)
	if err := runServer(ctx, cfg, log, time.Now, nil); err != nil {
		return c.failed(log, "gatehouse stopped with an error", err)
	}
	return exitOK
}

// failed reports a command's failure to open what it needs: a schema
// that is missing or out of date as one plain line saying what to run, any
// other error in the log.
func (c *cli) failed(log *slog.Logger, msg string, err error) int {
	var se *schemaError
	if errors.As(err, &se) {
		fmt.Fprintf(c.env.Stderr, "gatehouse: %v\n", se)
		return exitError
	}
	log.Error(msg, "error", err.Error())
	return exitError
}

// serverGCPercent is the garbage collector's target for `gatehouse serve`
// unless GOGC is set. Every password hash allocates Argon2id's memory (19
// MiB at the default parameters) and drops it when done. With Go's default
// of 100 and a live heap of about 15 MiB, that is a collection, and a scan
// of the whole live heap, for every hash: about 5% of a login's CPU. At
// 400 the heap may grow to five times the live data (some 75–150 MiB)
// before a collection, which cuts that cost by about three quarters. Set
// GOGC (and GOMEMLIMIT in a container) to choose otherwise.
const serverGCPercent = 400

func tuneGC(getenv func(string) string, log *slog.Logger) {
	if getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(serverGCPercent)
	log.Debug("garbage collector target set", "gogc", serverGCPercent)
}

// listening is called by runServer once both listeners are bound, with
// their addresses; tests use it to find ports chosen by the kernel.
type listening func(public, admin net.Addr)

// runServer runs Gatehouse until ctx is cancelled (SIGTERM or SIGINT), then
// shuts down gracefully: the listeners stop accepting, in-flight requests
// finish, the job queue stops taking jobs and lets running ones finish, and
// connections are closed. It returns nil after a clean shutdown.
func runServer(ctx context.Context, cfg *config.Config, log *slog.Logger, now func() time.Time, ready listening) error {
	keys, err := loadKeyring(cfg, log)
	if err != nil {
		return err
	}
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := prepareSchema(ctx, cfg, db, log); err != nil {
		return err
	}
	// The built-in roles of the administration API: a release may define
	// one the migrations did not seed. Nodes starting together may race;
	// each creation tolerates the other's.
	if err := rbac.EnsureBuiltins(ctx, db.store); err != nil {
		return fmt.Errorf("built-in roles: %w", err)
	}
	state, err := openState(ctx, cfg, log, now)
	if err != nil {
		return err
	}
	defer state.Close()

	// The token manager's background reload runs until shutdown.
	tokensCtx, stopTokens := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTokens()
	tokens, err := startTokens(tokensCtx, cfg, db, keys, state, log, now)
	if err != nil {
		return err
	}
	defer func() {
		stopTokens()
		<-tokens.Done()
	}()
	// Reactions between domains go through the bus; newServices
	// subscribes them.
	bus := event.NewBus()
	workers, err := newWorkers(cfg, db, keys, tokens, log, bus, now)
	if err != nil {
		return err
	}
	queue, err := db.newQueue(workers, jobsConfig(cfg, log, true))
	if err != nil {
		return fmt.Errorf("job queue: %w", err)
	}
	policy, closePolicy, err := newPolicy(cfg, log)
	if err != nil {
		return err
	}
	defer closePolicy()

	// The rate-limit policy: a bad file refuses the start, naming every
	// problem; later changes are picked up while running.
	limits, err := ratepolicy.NewWatcher(cfg.RateLimits.File, rateDefaults(cfg), log, ratepolicy.DefaultInterval)
	if err != nil {
		return fmt.Errorf("GATEHOUSE_RATE_LIMITS_FILE: %w", err)
	}
	rateStats := throttle.NewStats(state.kv, now, log)
	// Network intelligence: a bad database or IP list refuses the start;
	// later changes are picked up while running.
	intel, err := netintel.New(netintel.Config{
		CityDB: cfg.NetIntel.GeoIPCityDB, ASNDB: cfg.NetIntel.GeoIPASNDB, Lists: cfg.NetIntel.IPListFiles(), Log: log, Now: now,
	})
	if err != nil {
		return fmt.Errorf("network intelligence: %w", err)
	}
	defer intel.Close()
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	background.Go(func() { intel.Run(bgCtx) })
	background.Go(func() { limits.Run(bgCtx) })
	background.Go(func() { rateStats.Run(bgCtx, 5*time.Second) })
	defer func() {
		stopBackground()
		background.Wait()
	}()

	reg := newRegistry(db.store, queue, log)
	// The features count their own limits (register-ip, email-address, …)
	// under the policy in force, after validating a request.
	rateMetrics := throttle.NewMetrics(reg)
	bypass, err := bypassNetworks(cfg)
	if err != nil {
		return err
	}
	state.limiter = &throttle.FeatureLimiter{Bypass: bypass, Inner: state.limiter, Multi: state.multi, Policy: limits.Policy, Stats: rateStats, Metrics: rateMetrics}
	errs, err := errorTable()
	if err != nil {
		return err
	}
	// API keys are accepted where the routes say so, in front of access
	// tokens; their cache hears the other nodes' revocations and their
	// use is counted and flushed until shutdown.
	keyAuthn, err := apikey.NewAuthenticator(apikey.AuthenticatorDeps{
		Inner: token.Authenticator{Tokens: tokens}, Store: db.store, Keys: keys.DerivedKeys(apikey.HashPurpose),
		KV: state.kv, Now: now, Log: log,
	})
	if err != nil {
		return err
	}
	if err := keyAuthn.Start(bgCtx); err != nil {
		return err
	}
	background.Go(func() { keyAuthn.Run(bgCtx) })
	deps := &deps{cfg: cfg, log: log, db: db, state: state, keys: keys, queue: queue, reg: reg, bus: bus, now: now,
		errors: errs, hasher: newHasher(cfg), policy: policy, tokens: tokens, authn: token.Authenticator{Tokens: tokens},
		keyAuthn: keyAuthn, limits: limits, rateStats: rateStats, rateMetrics: rateMetrics, intel: intel}
	if deps.svc, err = newServices(deps); err != nil {
		return err
	}
	// The services' own workers join the bundle now: after the queue was
	// made (the services enqueue through it), before it starts.
	if err := addServiceWorkers(workers, deps.svc); err != nil {
		return err
	}
	if err := addWebhookWorkers(workers, deps); err != nil {
		return err
	}
	// The permission cache hears the other nodes' invalidations until
	// shutdown.
	if err := deps.svc.checker.Start(bgCtx); err != nil {
		return err
	}
	public, err := newPublicHandler(deps)
	if err != nil {
		return err
	}
	admin := newAdminHandler(deps)

	publicLn, err := net.Listen("tcp", cfg.Server.HTTPAddr)
	if err != nil {
		return fmt.Errorf("GATEHOUSE_HTTP_ADDR: cannot listen on %s: %w", cfg.Server.HTTPAddr, err)
	}
	adminLn, err := net.Listen("tcp", cfg.Server.AdminAddr)
	if err != nil {
		publicLn.Close()
		return fmt.Errorf("GATEHOUSE_ADMIN_ADDR: cannot listen on %s: %w", cfg.Server.AdminAddr, err)
	}
	if cfg.TLS() {
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile)
		if err != nil {
			publicLn.Close()
			adminLn.Close()
			return fmt.Errorf("GATEHOUSE_TLS_CERT_FILE: %w", err)
		}
		publicLn = tls.NewListener(publicLn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	}

	// Jobs run on a context that SIGTERM does not cancel: Stop below lets
	// running jobs finish instead.
	if err := queue.Start(context.WithoutCancel(ctx)); err != nil {
		publicLn.Close()
		adminLn.Close()
		return fmt.Errorf("job queue: %w", err)
	}

	servers := []*http.Server{newHTTPServer(cfg, public, log), newHTTPServer(cfg, admin, log)}
	errc := make(chan error, 2)
	for i, ln := range []net.Listener{publicLn, adminLn} {
		go func() {
			if err := servers[i].Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	log.Info("gatehouse started",
		"version", versionString(), "env", cfg.Env,
		"http_addr", publicLn.Addr().String(), "admin_addr", adminLn.Addr().String(),
		"database", db.store.Dialect(), "state", state.backend, "tls", cfg.TLS())
	if ready != nil {
		ready(publicLn.Addr(), adminLn.Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.HTTP.ShutdownTimeout.String())
	case serveErr = <-errc:
		log.Error("listener failed; shutting down", "error", serveErr.Error())
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			log.Warn("HTTP shutdown did not finish in time", "error", err.Error())
			s.Close()
		}
	}
	if err := queue.Stop(sctx); err != nil {
		log.Warn("job queue did not stop cleanly", "error", err.Error())
	}
	log.Info("gatehouse stopped")
	return serveErr
}

func newHTTPServer(cfg *config.Config, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
