// Command loadgen drives a running Gatehouse over HTTP with keep-alive
// connections and reports throughput and latency of four requests: token
// validation on an API call (validate: GET /v1/me), refresh with rotation
// (refresh: POST /oauth2/token, each client following its own chain),
// introspection of an access token (introspect: POST /oauth2/introspect)
// and login (login: POST /v1/auth/login); introspect-refresh, introspection
// of an opaque refresh token, runs on request. In the same run it measures
// the bare ceilings of the cryptography those requests are bound by (RS256
// verification for validate and introspect, RS256 signing of the new
// access token for refresh, Argon2id for login) and reports each scenario
// against its ceiling, measured just before and just after the scenario
// (the mean of the two, as this machine's speed drifts; the share of the
// measurement before alone is printed too, and --ceiling-after=false
// measures only before). Each scenario also reports where the machine's CPU
// went (Linux), and, with --pg-url, the database work per request.
//
// It sets up its own users and OAuth client with the gatehouse CLI, which
// must see the same GATEHOUSE_* environment as the server. bench/run.sh
// starts a server on each backend and runs this tool against it.
//
//	go run ./bench/loadgen --url http://127.0.0.1:8080 --gatehouse /tmp/gatehouse
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/password"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// defaultScenarios are the four the benchmarks track; introspect-refresh
// (introspection of an opaque refresh token) is there on request.
var (
	defaultScenarios = []string{"validate", "refresh", "introspect", "login"}
	allScenarios     = append(slices.Clone(defaultScenarios), "introspect-refresh", "login-refused", "authz-check", "healthz", "validate-apikey")
)

type options struct {
	url, gatehouse, pgURL string
	clients               int
	duration, warmup      time.Duration
	ceilingDuration       time.Duration
	ceilingAfter          bool
	pgSettle              time.Duration
	scenarios             []string
	argon2                password.Params
	serverPID             int
	json                  bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var scen string
	var mem, tm, threads uint
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://localhost:8080", "public base URL of the running server")
	fs.StringVar(&o.gatehouse, "gatehouse", "gatehouse", "path to the gatehouse binary, run with this environment to create users and a client")
	fs.IntVar(&o.clients, "clients", 8, "concurrent clients (one user each)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up per scenario")
	fs.DurationVar(&o.ceilingDuration, "ceiling-duration", 5*time.Second, "time per bare crypto ceiling")
	fs.BoolVar(&o.ceilingAfter, "ceiling-after", true, "measure each scenario's ceiling again right after it and compare the scenario with the mean of the two measurements (the machine's speed drifts)")
	fs.StringVar(&scen, "scenarios", strings.Join(defaultScenarios, ","), "comma-separated scenarios, of "+strings.Join(allScenarios, ","))
	fs.UintVar(&mem, "argon2-memory-kib", 19456, "Argon2id memory in KiB (must match the server's GATEHOUSE_ARGON2_MEMORY_KIB)")
	fs.UintVar(&tm, "argon2-time", 2, "Argon2id passes (must match GATEHOUSE_ARGON2_TIME)")
	fs.UintVar(&threads, "argon2-threads", 1, "Argon2id lanes (must match GATEHOUSE_ARGON2_THREADS)")
	fs.StringVar(&o.pgURL, "pg-url", "", "optional: URL of the server's PostgreSQL database, to count table lookups per request from pg_stat_user_tables")
	fs.DurationVar(&o.pgSettle, "pg-settle", 11*time.Second, "idle wait before each PostgreSQL statistics reading (PostgreSQL flushes idle backends' counters every 10s)")
	fs.IntVar(&o.serverPID, "server-pid", 0, "optional: process id of the server, to report its CPU use (Linux)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	if o.clients < 1 {
		errs = append(errs, errors.New("--clients must be at least 1"))
	}
	if o.duration <= 0 || o.ceilingDuration <= 0 || o.warmup < 0 || o.pgSettle < 0 {
		errs = append(errs, errors.New("--duration and --ceiling-duration must be positive, --warmup and --pg-settle not negative"))
	}
	for s := range strings.SplitSeq(scen, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case !slices.Contains(allScenarios, s):
			errs = append(errs, fmt.Errorf("unknown scenario %q (want %s)", s, strings.Join(allScenarios, ",")))
		case !slices.Contains(o.scenarios, s):
			o.scenarios = append(o.scenarios, s)
		}
	}
	if len(o.scenarios) == 0 {
		errs = append(errs, errors.New("--scenarios names none"))
	}
	if mem > 1<<32-1 || tm > 1<<32-1 || threads > 255 {
		errs = append(errs, errors.New("argon2 parameters out of range"))
	}
	o.argon2 = password.Params{Memory: uint32(mem), Time: uint32(tm), Threads: uint8(threads),
		SaltLen: password.DefaultParams.SaltLen, KeyLen: password.DefaultParams.KeyLen}
	if err := o.argon2.Validate(); err != nil {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

// report is the whole run, as printed.
type report struct {
	Date       time.Time          `json:"date"`
	URL        string             `json:"url"`
	Clients    int                `json:"clients"`
	Duration   string             `json:"duration_per_scenario"`
	Warmup     string             `json:"warmup_per_scenario"`
	GoVersion  string             `json:"go_version"`
	NumCPU     int                `json:"num_cpu"`
	GOMAXPROCS int                `json:"gomaxprocs"`
	Argon2     string             `json:"argon2"`
	Ceilings   map[string]ceiling `json:"ceilings"`
	Scenarios  []scenarioReport   `json:"scenarios"`
}

type scenarioReport struct {
	Name        string  `json:"name"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	Throughput  float64 `json:"throughput_per_sec"` // successful requests per second
	P50         float64 `json:"p50_ms"`
	P90         float64 `json:"p90_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
	Connections int64   `json:"connections_opened"`
	// Ceiling names the bare ceiling this scenario is compared with;
	// PctOfCeiling is Throughput as a percentage of it.
	Ceiling      string  `json:"ceiling,omitempty"`
	PctOfCeiling float64 `json:"pct_of_ceiling,omitempty"`
	// CeilingBefore and CeilingAfter are the ceiling's rates measured just
	// before and (with --ceiling-after) just after the scenario;
	// PctOfCeiling is against their mean, PctOfCeilingBefore against the
	// one before alone.
	CeilingBefore      float64   `json:"ceiling_before,omitempty"`
	CeilingAfter       float64   `json:"ceiling_after,omitempty"`
	PctOfCeilingBefore float64   `json:"pct_of_ceiling_before,omitempty"`
	WarmupErrors       int64     `json:"warmup_errors,omitempty"`
	Recoveries         int64     `json:"refresh_chains_restarted,omitempty"`
	CPU                *cpuUse   `json:"cpu,omitempty"`
	DB                 *dbCost   `json:"db,omitempty"`
	Samples            []*sample `json:"error_samples,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	rep, err := measure(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 1
		}
	} else {
		printText(stdout, rep)
	}
	for _, s := range rep.Scenarios {
		if s.Errors > 0 || s.WarmupErrors > 0 {
			return 3 // figures printed, but some requests failed
		}
	}
	return 0
}

func measure(ctx context.Context, o options, log io.Writer) (*report, error) {
	rep := &report{
		Date: time.Now().UTC(), URL: o.url, Clients: o.clients,
		Duration: o.duration.String(), Warmup: o.warmup.String(),
		GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Argon2:   fmt.Sprintf("m=%d KiB, t=%d, p=%d", o.argon2.Memory, o.argon2.Time, o.argon2.Threads),
		Ceilings: map[string]ceiling{},
	}
	a := newAPI(o.url, o.clients)
	defer a.close()
	if r := a.do(ctx, http.MethodGet, "/readyz", "", ""); !r.ok() {
		return nil, fmt.Errorf("server not ready: %s", describe(r))
	}
	workers, clientID, clientSecret, err := setup(ctx, o, a, log)
	if err != nil {
		return nil, err
	}

	var pg *pgStats
	var before counters
	if o.pgURL != "" {
		if pg, err = openPGStats(ctx, o.pgURL); err != nil {
			return nil, fmt.Errorf("--pg-url: %w", err)
		}
		defer pg.Close(context.Background())
		if before, err = settledSnapshot(ctx, pg, o.pgSettle, log); err != nil {
			return nil, err
		}
	}

	m := &meter{o: o, log: log, ceilings: rep.Ceilings}
	all := scenarios(a, clientID, clientSecret)
	for _, name := range o.scenarios {
		sr, counted, err := m.scenario(ctx, a, all[name], workers)
		if err != nil {
			return nil, err
		}
		if pg != nil {
			after, err := settledSnapshot(ctx, pg, o.pgSettle, log)
			if err != nil {
				return nil, err
			}
			// The counters cover the warm-up too (and any logins that
			// restarted a refresh chain: see Recoveries).
			sr.DB = costOf(before, after, counted)
			before = after
		}
		rep.Scenarios = append(rep.Scenarios, sr)
	}
	for _, key := range ceilingKeys {
		if _, err := m.ceiling(ctx, key); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// setup creates the users and the OAuth client through the CLI and signs
// every worker in twice: one session for the tokens validate and the
// introspect scenarios present, one for the refresh chain, so that
// nothing the chain does can touch the other tokens.
func setup(ctx context.Context, o options, a *api, log io.Writer) (workers []*worker, clientID, clientSecret string, err error) {
	fmt.Fprintf(log, "loadgen: creating %d users and an OAuth client with %s…\n", o.clients, o.gatehouse)
	g := cli{bin: o.gatehouse}
	accts, err := g.createUsers(ctx, strings.ToLower(rand.Text()[:8]), o.clients)
	if err != nil {
		return nil, "", "", err
	}
	if slices.Contains(o.scenarios, "introspect") || slices.Contains(o.scenarios, "introspect-refresh") {
		if clientID, clientSecret, err = g.createClient(ctx); err != nil {
			return nil, "", "", err
		}
	}
	var reader func(ctx context.Context, userID string) error
	if slices.Contains(o.scenarios, "authz-check") || slices.Contains(o.scenarios, "validate-apikey") {
		if reader, err = authzSetup(ctx, g, a); err != nil {
			return nil, "", "", err
		}
	}
	for _, ac := range accts {
		w := &worker{acct: ac}
		t, r := a.login(ctx, ac.email, ac.password)
		if !r.ok() {
			return nil, "", "", fmt.Errorf("setup login: %s", describe(r))
		}
		w.userID, w.access, w.sessionRefresh = t.User.ID, t.AccessToken, t.RefreshToken
		if t, r = a.login(ctx, ac.email, ac.password); !r.ok() {
			return nil, "", "", fmt.Errorf("setup login: %s", describe(r))
		}
		w.refresh = t.RefreshToken
		if reader != nil {
			if err := reader(ctx, w.userID); err != nil {
				return nil, "", "", err
			}
		}
		if slices.Contains(o.scenarios, "validate-apikey") {
			if w.apiKey, err = a.createKey(ctx, w.access); err != nil {
				return nil, "", "", err
			}
		}
		workers = append(workers, w)
	}
	return workers, clientID, clientSecret, nil
}

// ceilingKeys are the bare ceilings, in the order they are printed;
// ceilingFor names the one each scenario is compared with.
var (
	ceilingKeys = []string{"rs256_verify", "rs256_sign", "argon2id"}
	ceilingFor  = map[string]string{
		"validate": "rs256_verify", "introspect": "rs256_verify", "authz-check": "rs256_verify", "validate-apikey": "rs256_verify", // every call verifies a token (or, validate-apikey, an API key)
		"refresh": "rs256_sign", // every call signs a new access token
		"login":   "argon2id",   // every call verifies a password
		// what a password check would have cost each refused sign-in
		"login-refused": "argon2id",
	}
)

// meter runs scenarios and the ceilings they are compared with.
type meter struct {
	o        options
	log      io.Writer
	ceilings map[string]ceiling
}

// ceiling measures a bare ceiling once, with the server idle. Each is
// measured just before the first scenario compared with it, so that both
// see the machine in about the same state.
func (m *meter) ceiling(ctx context.Context, key string) (ceiling, error) {
	if c, ok := m.ceilings[key]; ok {
		return c, nil
	}
	c, err := m.measure(ctx, key)
	if err != nil {
		return c, err
	}
	m.ceilings[key] = c
	return c, nil
}

// measure measures a bare ceiling, with the server idle.
func (m *meter) measure(ctx context.Context, key string) (ceiling, error) {
	fmt.Fprintf(m.log, "loadgen: measuring the %s ceiling (%s)…\n", key, m.o.ceilingDuration)
	cpu0 := readCPU(m.o.serverPID)
	var c ceiling
	var err error
	switch key {
	case "rs256_verify":
		c, err = rs256Ceiling(ctx, m.o.clients, m.o.ceilingDuration, false)
	case "rs256_sign":
		c, err = rs256Ceiling(ctx, m.o.clients, m.o.ceilingDuration, true)
	default:
		c, err = argon2Ceiling(ctx, m.o.argon2, m.o.clients, m.o.ceilingDuration)
	}
	if err != nil {
		return c, err
	}
	// Includes the RSA key generation, short next to the run.
	c.CPU = cpuBetween(cpu0, readCPU(m.o.serverPID), runtime.NumCPU())
	return c, nil
}

// scenario measures one scenario: its ceiling, a warm-up, the measured
// run. counted is the number of requests of warm-up and run together.
func (m *meter) scenario(ctx context.Context, a *api, sc scenario, workers []*worker) (sr scenarioReport, counted int64, err error) {
	var ceil ceiling
	key := ceilingFor[sc.name]
	if key != "" {
		if ceil, err = m.ceiling(ctx, key); err != nil {
			return sr, 0, err
		}
	}
	fmt.Fprintf(m.log, "loadgen: %s: %s warm-up, %s measured, %d clients…\n", sc.name, m.o.warmup, m.o.duration, m.o.clients)
	dials := a.dials.Load()
	var warm outcome
	if m.o.warmup > 0 {
		warm = runPhase(ctx, sc, workers, m.o.warmup)
	}
	cpu0 := readCPU(m.o.serverPID)
	res := runPhase(ctx, sc, workers, m.o.duration)
	cpu := cpuBetween(cpu0, readCPU(m.o.serverPID), runtime.NumCPU())
	if ctx.Err() != nil {
		return sr, 0, ctx.Err()
	}
	lat := summarize(res.latencies)
	samples := append(warm.samples, res.samples...)
	sr = scenarioReport{
		Name: sc.name, Requests: res.requests, Errors: res.errors, WarmupErrors: warm.errors,
		Seconds:    res.elapsed.Seconds(),
		Throughput: float64(res.requests-res.errors) / res.elapsed.Seconds(),
		P50:        ms(lat.P50), P90: ms(lat.P90), P99: ms(lat.P99), Max: ms(lat.Max),
		Connections: a.dials.Load() - dials,
		Recoveries:  warm.recoveries + res.recoveries,
		CPU:         cpu,
		Samples:     samples[:min(maxSamples, len(samples))],
	}
	if key != "" {
		sr.Ceiling, sr.CeilingBefore = ceil.Name, ceil.OpsPerSec
		sr.PctOfCeilingBefore = 100 * sr.Throughput / ceil.OpsPerSec
		sr.PctOfCeiling = sr.PctOfCeilingBefore
		if m.o.ceilingAfter {
			after, err := m.measure(ctx, key)
			if err != nil {
				return sr, 0, err
			}
			sr.CeilingAfter = after.OpsPerSec
			sr.PctOfCeiling = 100 * sr.Throughput / ((ceil.OpsPerSec + after.OpsPerSec) / 2)
			// The next scenario with this ceiling starts from the latest
			// measurement.
			after.CPU = ceil.CPU
			m.ceilings[key] = after
		}
	}
	return sr, warm.requests + res.requests, nil
}

// settledSnapshot waits for the server's statistics to reach PostgreSQL
// and reads them.
func settledSnapshot(ctx context.Context, pg *pgStats, settle time.Duration, log io.Writer) (counters, error) {
	if settle > 0 {
		fmt.Fprintf(log, "loadgen: waiting %s for PostgreSQL statistics…\n", settle)
		select {
		case <-ctx.Done():
			return counters{}, ctx.Err()
		case <-time.After(settle):
		}
	}
	s, err := pg.snapshot(ctx)
	if err != nil {
		return counters{}, fmt.Errorf("read PostgreSQL statistics: %w", err)
	}
	return s, nil
}

func printText(w io.Writer, rep *report) {
	fmt.Fprintf(w, "Gatehouse load test, %s\n", rep.Date.Format(time.RFC3339))
	fmt.Fprintf(w, "server %s, %d clients, %s per scenario (after %s warm-up), keep-alive\n", rep.URL, rep.Clients, rep.Duration, rep.Warmup)
	fmt.Fprintf(w, "load generator: %s, NumCPU %d, GOMAXPROCS %d\n\n", rep.GoVersion, rep.NumCPU, rep.GOMAXPROCS)

	fmt.Fprintln(w, "Bare ceilings (in the load generator, server idle, each just before its first scenario):")
	for _, k := range ceilingKeys {
		c, ok := rep.Ceilings[k]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "  %-40s %10.1f ops/s  (%d goroutines, %d at once)\n", c.Name, c.OpsPerSec, c.Goroutines, c.Concurrency)
		if c.CPU != nil {
			fmt.Fprintf(w, "  %-40s cpu: %s\n", "", c.CPU)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-18s %9s %7s %9s %8s %8s %8s %8s %6s %8s\n",
		"scenario", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "conns", "ceiling")
	for _, s := range rep.Scenarios {
		pct := "-"
		if s.Ceiling != "" {
			pct = fmt.Sprintf("%.1f%%", s.PctOfCeiling)
		}
		fmt.Fprintf(w, "%-18s %9d %7d %9.1f %8.2f %8.2f %8.2f %8.2f %6d %8s\n",
			s.Name, s.Requests, s.Errors, s.Throughput, s.P50, s.P90, s.P99, s.Max, s.Connections, pct)
	}
	fmt.Fprintln(w, "\nreq/s: successful requests per second. errors: non-2xx, transport failures or wrong bodies.")
	fmt.Fprintln(w, "conns: TCP connections opened. ceiling: req/s as a share of the ceiling of the crypto")
	fmt.Fprintln(w, "every such request does: RS256 verify (validate, introspect), RS256 sign (refresh: a new")
	fmt.Fprintln(w, "access token), Argon2id (login).")
	for _, s := range rep.Scenarios {
		if s.CeilingAfter > 0 {
			fmt.Fprintf(w, "ceiling %s: %.1f ops/s before, %.1f after; %.1f%% of their mean (%.1f%% of the one before)\n",
				s.Name, s.CeilingBefore, s.CeilingAfter, s.PctOfCeiling, s.PctOfCeilingBefore)
		}
	}
	for _, s := range rep.Scenarios {
		if s.CPU != nil {
			fmt.Fprintf(w, "cpu %s: %s\n", s.Name, s.CPU)
		}
	}
	for _, s := range rep.Scenarios {
		if s.DB != nil {
			fmt.Fprintf(w, "db %s: %s\n", s.Name, s.DB)
		}
	}
	for _, s := range rep.Scenarios {
		if s.WarmupErrors > 0 {
			fmt.Fprintf(w, "%s: %d errors during the warm-up\n", s.Name, s.WarmupErrors)
		}
		if s.Recoveries > 0 {
			fmt.Fprintf(w, "%s: %d refresh chains restarted by a new login after a failure\n", s.Name, s.Recoveries)
		}
		for _, e := range s.Samples {
			fmt.Fprintf(w, "error %s: %s", s.Name, e.Request)
			if e.Status != 0 {
				fmt.Fprintf(w, " -> HTTP %d", e.Status)
			}
			fmt.Fprintf(w, " (%s)", e.Reason)
			if e.Body != "" {
				fmt.Fprintf(w, " body: %s", strings.TrimSpace(e.Body))
			}
			fmt.Fprintln(w)
		}
	}
}
