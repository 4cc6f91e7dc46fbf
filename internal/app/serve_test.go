package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/logging"
	"github.com/gatehouse/gatehouse/internal/ratepolicy"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// server is a Gatehouse running in process on ports chosen by the kernel.
type server struct {
	public, admin string // base URLs
	logs          *syncBuffer
	stop          func() error
	// clock is the server's clock: the real one until a test advances
	// it past an expiry instead of sleeping until it.
	clock *clocktest.Shifted
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig(t testing.TB, env map[string]string) *config.Config {
	t.Helper()
	base := map[string]string{
		"GATEHOUSE_ENV":        "test",
		"GATEHOUSE_HTTP_ADDR":  "127.0.0.1:0",
		"GATEHOUSE_ADMIN_ADDR": "127.0.0.1:0",
		"GATEHOUSE_DATA_DIR":   t.TempDir(),
	}
	for k, v := range env {
		base[k] = v
	}
	var environ []string
	for k, v := range base {
		environ = append(environ, k+"="+v)
	}
	cfg, _, err := config.Load(config.Source{Getenv: func(k string) string { return base[k] }, Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startServer(t testing.TB, cfg *config.Config) *server {
	t.Helper()
	return startServerWithClock(t, cfg, &clocktest.Shifted{})
}

// startServerWithClock starts a server on clock: another node of the same
// installation, or the same node restarted, shares the clock of the first.
func startServerWithClock(t testing.TB, cfg *config.Config, clock *clocktest.Shifted) *server {
	t.Helper()
	logs := &syncBuffer{}
	log := logging.New(logs, "debug", "json")
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, cfg, log, clock.Now, func(p, a net.Addr) { addrs <- [2]net.Addr{p, a} })
	}()
	var s *server
	select {
	case a := <-addrs:
		s = &server{public: "http://" + a[0].String(), admin: "http://" + a[1].String(), logs: logs, clock: clock}
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("server did not start in time\n%s", logs)
	}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("server did not stop in time")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("server stopped with error: %v", err)
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", logs)
		}
	})
	return s
}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return request(t, "GET", url, "", nil, header...)
}

// request sends body (none when nil) with contentType (none when empty)
// and the header name/value pairs, and returns the response and its body.
func request(t testing.TB, method, target, contentType string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	return doWith(t, http.DefaultClient, req)
}

// doWith sends req with client, reads the answer's body and checks the
// answer against the OpenAPI document.
func doWith(t testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	checkResponse(t, req, res, body)
	return res, body
}

func getReadiness(t *testing.T, s *server) (int, map[string]any) {
	t.Helper()
	return getReadinessAt(t, s.public)
}

// getReadinessAt reads /readyz of the listener at base (public or admin).
func getReadinessAt(t *testing.T, base string) (int, map[string]any) {
	t.Helper()
	res, body := get(t, base+"/readyz")
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return res.StatusCode, out
}

func checkStatus(body map[string]any, name string) string {
	checks, _ := body["checks"].(map[string]any)
	c, _ := checks[name].(map[string]any)
	s, _ := c["status"].(string)
	return s
}

// exerciseServer is the foundation's black-box contract, run against every
// backend combination.
func exerciseServer(t *testing.T, s *server, wantDB, wantState string) {
	t.Run("health", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/livez"} {
			if res, body := get(t, s.public+p); res.StatusCode != 200 {
				t.Errorf("%s = %d %s", p, res.StatusCode, body)
			}
		}
		code, body := getReadiness(t, s)
		if code != 200 || checkStatus(body, "database") != "ok" || checkStatus(body, "redis") != "ok" {
			t.Errorf("readyz = %d %v", code, body)
		}
		// The public body names no backend; the admin listener's does.
		if _, body := get(t, s.public+"/readyz"); strings.Contains(string(body), "backend") {
			t.Errorf("public readyz names backends: %s", body)
		}
		code, body = getReadinessAt(t, s.admin)
		checks, _ := body["checks"].(map[string]any)
		if code != 200 || checks == nil {
			t.Fatalf("admin readyz = %d %v", code, body)
		}
		if b := checks["database"].(map[string]any)["backend"]; b != wantDB {
			t.Errorf("database backend = %v, want %s", b, wantDB)
		}
		if b := checks["redis"].(map[string]any)["backend"]; b != wantState {
			t.Errorf("state backend = %v, want %s", b, wantState)
		}
	})

	t.Run("openapi", func(t *testing.T) {
		res, body := get(t, s.public+"/openapi.json")
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("openapi.json = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		doc, err := openapi3.NewLoader().LoadFromData(body)
		if err != nil {
			t.Fatal(err)
		}
		if doc.OpenAPIMajorMinor() != "3.1" {
			t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Errorf("served document is invalid: %v", err)
		}
	})

	t.Run("docs", func(t *testing.T) {
		res, body := get(t, s.public+"/docs")
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("/docs = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		if strings.Contains(string(body), "https://") || strings.Contains(string(body), "http://") {
			t.Errorf("/docs references external URLs")
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("/docs CSP = %q", csp)
		}
	})

	t.Run("problems", func(t *testing.T) {
		res, body := get(t, s.public+"/no/such/route", "X-Request-ID", "black-box-1")
		if res.StatusCode != 404 || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("unknown route = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		var p map[string]any
		json.Unmarshal(body, &p)
		if p["code"] != "not_found" || p["status"] != float64(404) {
			t.Errorf("problem = %s", body)
		}
		if got := res.Header.Get("X-Request-ID"); got != "black-box-1" {
			t.Errorf("X-Request-ID = %q", got)
		}
		if !strings.Contains(s.logs.String(), `"request_id":"black-box-1"`) {
			t.Errorf("request ID not in the access log")
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("security headers missing: %v", res.Header)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		res, body := get(t, s.admin+"/metrics")
		if res.StatusCode != 200 {
			t.Fatalf("/metrics = %d", res.StatusCode)
		}
		for _, want := range []string{
			`gatehouse_http_requests_total{method="GET",route="/healthz",status="200"}`,
			`gatehouse_http_request_duration_seconds_bucket{method="GET",route="/readyz",status="200"`,
			"gatehouse_db_pool_open_connections",
			"gatehouse_jobs_stats_up 1",
			"go_goroutines",
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if res, _ := get(t, s.public+"/metrics"); res.StatusCode != 404 {
			t.Errorf("/metrics on the public listener = %d, want 404", res.StatusCode)
		}
		if res, _ := get(t, s.admin+"/debug/pprof/"); res.StatusCode != 404 {
			t.Errorf("/debug/pprof/ without GATEHOUSE_ADMIN_PPROF = %d, want 404", res.StatusCode)
		}
	})
}

func TestAdminPprof(t *testing.T) {
	s := startServer(t, testConfig(t, map[string]string{"GATEHOUSE_ADMIN_PPROF": "true"}))
	res, body := get(t, s.admin+"/debug/pprof/")
	if res.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("/debug/pprof/ = %d %.200s", res.StatusCode, body)
	}
	res, body = get(t, s.admin+"/debug/pprof/heap")
	if res.StatusCode != 200 || len(body) == 0 {
		t.Errorf("/debug/pprof/heap = %d, %d bytes", res.StatusCode, len(body))
	}
	if res, _ := get(t, s.public+"/debug/pprof/"); res.StatusCode != 404 {
		t.Errorf("/debug/pprof/ on the public listener = %d, want 404", res.StatusCode)
	}
}

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tuneGC(func(string) string { return "" }, slog.New(slog.DiscardHandler))
	if got := debug.SetGCPercent(100); got != serverGCPercent {
		t.Errorf("GC percent without GOGC = %d, want %d", got, serverGCPercent)
	}
	tuneGC(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	}, slog.New(slog.DiscardHandler))
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent with GOGC set = %d, want it left alone (100)", got)
	}
}

func TestServeEmbedded(t *testing.T) {
	s := startServer(t, testConfig(t, nil))
	exerciseServer(t, s, "sqlite", "memory")
	if err := s.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestServePostgresRedis(t *testing.T) {
	dbURL := testenv.PostgresURL(t)
	redisURL, prefix := testenv.Redis(t)
	s := startServer(t, testConfig(t, map[string]string{
		"GATEHOUSE_DATABASE_URL":     dbURL,
		"GATEHOUSE_REDIS_URL":        redisURL,
		"GATEHOUSE_REDIS_KEY_PREFIX": prefix,
	}))
	exerciseServer(t, s, "postgres", "redis")
}

// TestReadinessFollowsDatabase puts a TCP proxy between Gatehouse and
// PostgreSQL, cuts it to simulate the database going away, and restores it:
// /readyz must turn 503 naming the database, then 200 again without a
// restart.
func TestReadinessFollowsDatabase(t *testing.T) {
	dbURL := testenv.PostgresURL(t)
	p := testenv.NewProxy(t, testenv.HostPort(t, dbURL))
	s := startServer(t, testConfig(t, map[string]string{
		"GATEHOUSE_DATABASE_URL":       p.Via(dbURL),
		"GATEHOUSE_DATABASE_MIN_CONNS": "0",
	}))
	if code, body := getReadiness(t, s); code != 200 {
		t.Fatalf("readyz before = %d %v", code, body)
	}
	p.Cut()
	code, body := getReadiness(t, s)
	if code != 503 || checkStatus(body, "database") != "unavailable" || checkStatus(body, "redis") != "ok" {
		t.Fatalf("readyz with the database gone = %d %v", code, body)
	}
	p.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body = getReadiness(t, s)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz did not recover: %d %v", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	cfg := testConfig(t, nil)
	log := logging.New(io.Discard, "error", "json")
	ctx := context.Background()
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := openState(ctx, cfg, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rt, err := newRouter(&deps{cfg: cfg, log: log, db: db, state: st})
	if err != nil {
		t.Fatal(err)
	}
	body, err := specJSON(cfg)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("api/openapi.yaml is invalid: %v", err)
	}
	registered := map[string]bool{}
	for _, r := range rt.Routes() {
		if !r.Documented {
			continue
		}
		key := r.Method + " " + r.Path
		registered[key] = true
		item := doc.Paths.Find(r.Path)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s is not in api/openapi.yaml", key)
			continue
		}
		// The permission an RBAC-guarded route needs is documented as
		// the operation's x-gatehouse-permission, and only there.
		documented, _ := item.GetOperation(r.Method).Extensions["x-gatehouse-permission"].(string)
		if documented != r.Permission {
			t.Errorf("%s needs permission %q; api/openapi.yaml's x-gatehouse-permission says %q", key, r.Permission, documented)
		}
		if strings.HasPrefix(r.Path, "/v1/admin/") && r.Permission == "" {
			t.Errorf("administration route %s names no permission", key)
		}
	}
	// The rate-limit route groups name real routes.
	for _, pattern := range ratepolicy.GroupPatterns() {
		if !registered[pattern] {
			t.Errorf("route group pattern %s is no route", pattern)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !registered[method+" "+path] {
				t.Errorf("api/openapi.yaml documents %s %s, which no handler serves", method, path)
			}
		}
	}
}
