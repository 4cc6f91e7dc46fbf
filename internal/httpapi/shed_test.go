package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse/gatehouse/internal/logging"
)

// shedFixture is the public chain with Shed(2) in it and a route whose
// requests block until their gate is closed.
type shedFixture struct {
	handler http.Handler
	metrics *Metrics
	// entered receives the gate of each request that reached the handler.
	entered chan string
	gates   map[string]chan struct{}
}

func newShedFixture(t *testing.T, limit int) *shedFixture {
	t.Helper()
	log := logging.New(io.Discard, "debug", "json")
	f := &shedFixture{
		entered: make(chan string, 16),
		// Read-only once serving starts; the tests close the channels.
		gates: map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})},
	}
	rt := NewRouter(ErrorWriter{Log: log})
	(&Health{}).Routes(rt)
	rt.Handle("GET /slow", func(w http.ResponseWriter, r *http.Request) error {
		gate := r.URL.Query().Get("gate")
		f.entered <- gate
		<-f.gates[gate]
		return WriteJSON(w, http.StatusOK, map[string]string{"gate": gate})
	})
	rt.Handle("GET /fast", func(w http.ResponseWriter, r *http.Request) error {
		return WriteJSON(w, http.StatusOK, map[string]string{})
	})
	rt.Handle("GET /panic", func(w http.ResponseWriter, r *http.Request) error {
		panic("handler failed")
	})
	ips, err := NewClientIPResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.metrics = NewMetrics(prometheus.NewRegistry())
	f.handler = Chain(rt, RequestID(), Observe(log, f.metrics, ips), Recover(log),
		SecurityHeaders(false), Shed(limit, IsHealthCheck, 3, f.metrics), BodyLimit(1024))
	return f
}

// serve answers one request; it fails the test instead of hanging when
// the request is queued rather than answered.
func (f *shedFixture) serve(t *testing.T, target string) *httptest.ResponseRecorder {
	t.Helper()
	done := f.start(target)
	select {
	case rec := <-done:
		return rec
	case <-time.After(10 * time.Second):
		t.Fatalf("GET %s was not answered: queued instead of shed?", target)
		return nil
	}
}

// start sends a request from its own goroutine; the channel yields its
// answer.
func (f *shedFixture) start(target string) <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		done <- rec
	}()
	return done
}

// fill starts two requests behind gate and waits until both are in the
// handler.
func (f *shedFixture) fill(t *testing.T, gate string) []<-chan *httptest.ResponseRecorder {
	t.Helper()
	held := []<-chan *httptest.ResponseRecorder{f.start("/slow?gate=" + gate), f.start("/slow?gate=" + gate)}
	for range held {
		select {
		case g := <-f.entered:
			if g != gate {
				t.Fatalf("request of gate %q entered, want %q", g, gate)
			}
		case rec := <-held[0]:
			t.Fatalf("a request of gate %q was answered %d below the limit (body %s)", gate, rec.Code, rec.Body)
		case rec := <-held[1]:
			t.Fatalf("a request of gate %q was answered %d below the limit (body %s)", gate, rec.Code, rec.Body)
		case <-time.After(10 * time.Second):
			t.Fatalf("the requests of gate %q did not both reach the handler", gate)
		}
	}
	return held
}

func (f *shedFixture) checkShed(t *testing.T, target string) {
	t.Helper()
	rec := f.serve(t, target)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET %s while saturated: status %d, want 503 (body %s)", target, rec.Code, rec.Body)
	}
	p := decodeProblem(t, rec)
	if p.Code != CodeOverloaded || p.RequestID == "" || p.Detail == "" {
		t.Errorf("problem = %+v, want code overloaded with a detail and the request ID", p)
	}
	if got := rec.Header().Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After = %q, want 3", got)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("a shed response lacks the security headers")
	}
}

func TestShed(t *testing.T) {
	f := newShedFixture(t, 2)
	if got := testutil.ToFloat64(f.metrics.inFlightLimit); got != 2 {
		t.Errorf("in-flight limit gauge = %v, want 2", got)
	}

	held := f.fill(t, "a")
	f.checkShed(t, "/fast")
	f.checkShed(t, "/slow?gate=a")
	for _, path := range []string{"/healthz", "/livez", "/readyz"} {
		if rec := f.serve(t, path); rec.Code != http.StatusOK {
			t.Errorf("GET %s while saturated: status %d, want 200 (body %s)", path, rec.Code, rec.Body)
		}
	}
	if got := testutil.ToFloat64(f.metrics.shed); got != 2 {
		t.Errorf("gatehouse_http_shed_total = %v, want 2", got)
	}

	// Releasing the held requests frees their slots: both finish, and the
	// limit again admits two requests at once, and no more.
	close(f.gates["a"])
	for _, done := range held {
		if rec := <-done; rec.Code != http.StatusOK {
			t.Errorf("held request: status %d, want 200 (body %s)", rec.Code, rec.Body)
		}
	}
	held = f.fill(t, "b")
	f.checkShed(t, "/fast")
	close(f.gates["b"])
	for _, done := range held {
		<-done
	}
	if rec := f.serve(t, "/fast"); rec.Code != http.StatusOK {
		t.Errorf("GET /fast after release: status %d, want 200 (body %s)", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(f.metrics.shed); got != 3 {
		t.Errorf("gatehouse_http_shed_total = %v, want 3", got)
	}
}

// A handler that panics gives its slot back: the panic goes through Shed
// to Recover, and the limit still admits two requests after limit panics.
func TestShedReleasesOnPanic(t *testing.T) {
	f := newShedFixture(t, 2)
	for range 3 {
		if rec := f.serve(t, "/panic"); rec.Code != http.StatusInternalServerError {
			t.Fatalf("GET /panic: status %d, want 500", rec.Code)
		}
	}
	held := f.fill(t, "a")
	f.checkShed(t, "/fast")
	close(f.gates["a"])
	for _, done := range held {
		<-done
	}
}

func TestShedDefaults(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	h := Shed(0, nil, 0, m)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	want := float64(InflightPerCPU * runtime.GOMAXPROCS(0))
	if got := testutil.ToFloat64(m.inFlightLimit); got != want || DefaultMaxInflight() != int(want) {
		t.Errorf("limit = %v (DefaultMaxInflight %d), want %v", got, DefaultMaxInflight(), want)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.Code)
	}

	// With nothing exempt, a limit of one and one request held, a health
	// check is shed like any other request, with the default Retry-After.
	release, entered := make(chan struct{}), make(chan struct{})
	h = Shed(1, nil, 0, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/slow", nil))
	}()
	<-entered
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	close(release)
	<-done
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("status %d, Retry-After %q; want 503 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestIsHealthCheck(t *testing.T) {
	for path, want := range map[string]bool{
		"/healthz": true, "/livez": true, "/readyz": true,
		"/healthz/": false, "/v1/me": false, "/": false, "/readyz.json": false,
	} {
		if got := IsHealthCheck(httptest.NewRequest("GET", path, nil)); got != want {
			t.Errorf("IsHealthCheck(%s) = %v, want %v", path, got, want)
		}
	}
}
