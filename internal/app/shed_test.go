package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// asyncAnswer is a response read by a goroutine, for the test goroutine to
// check.
type asyncAnswer struct {
	req  *http.Request
	res  *http.Response
	body []byte
	err  error
}

// goRequest starts req from its own goroutine; the channel yields its
// answer.
func goRequest(req *http.Request) <-chan asyncAnswer {
	done := make(chan asyncAnswer, 1)
	go func() {
		a := asyncAnswer{req: req}
		a.res, a.err = http.DefaultClient.Do(req)
		if a.err == nil {
			a.body, a.err = io.ReadAll(a.res.Body)
			a.res.Body.Close()
		}
		done <- a
	}()
	return done
}

// awaitAnswer reads the answer of goRequest, checks it against the
// OpenAPI document and returns its status, problem code and header.
func awaitAnswer(t *testing.T, done <-chan asyncAnswer) (int, string, http.Header) {
	t.Helper()
	var a asyncAnswer
	select {
	case a = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("no answer")
	}
	if a.err != nil {
		t.Fatalf("%s %s: %v", a.req.Method, a.req.URL.Path, a.err)
	}
	checkResponse(t, a.req, a.res, a.body)
	var p struct{ Code string }
	_ = json.Unmarshal(a.body, &p)
	return a.res.StatusCode, p.Code, a.res.Header
}

func shedLogin(t *testing.T, s *server, body io.Reader, size int) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", s.public+"/v1/auth/login", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = int64(size)
	return req
}

// shedLoginBody is a sign-in for an address without an account: the server
// still runs Argon2id (a dummy verification), so it is as slow as a real
// one.
func shedLoginBody(i int) []byte {
	return fmt.Appendf(nil, `{"email":"shed-%d@example.com","password":"not the password %d"}`, i, i)
}

// scrapeMetric scrapes the admin listener and returns the value of the
// unlabelled metric name.
func scrapeMetric(t *testing.T, s *server, name string) float64 {
	t.Helper()
	res, body := get(t, s.admin+"/metrics")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics = %d", res.StatusCode)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics lacks %s", name)
	return 0
}

// waitInFlight polls the admin listener until the public one has n
// requests in flight.
func waitInFlight(t *testing.T, s *server, n float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for scrapeMetric(t, s, "gatehouse_http_requests_in_flight") != n {
		if time.Now().After(deadline) {
			t.Fatalf("the public listener never had %v requests in flight", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkOverloaded checks that the answer of done is 503 overloaded with
// Retry-After.
func checkOverloaded(t *testing.T, what string, done <-chan asyncAnswer) {
	t.Helper()
	status, code, h := awaitAnswer(t, done)
	if status != http.StatusServiceUnavailable || code != "overloaded" || h.Get("Retry-After") != "1" {
		t.Errorf("%s while saturated: %d %q, Retry-After %q; want 503 overloaded, 1", what, status, code, h.Get("Retry-After"))
	}
}

// TestShed: with GATEHOUSE_MAX_INFLIGHT=2, requests beyond two in flight
// are refused at once with 503 overloaded while the health checks and the
// admin listener answer, and the server takes requests again once the
// slow ones end. Argon2id is made slow (64 MiB, 8 passes, one hash at a
// time) so that sign-ins are the slow requests.
func TestShed(t *testing.T) {
	s := startServer(t, testConfig(t, map[string]string{
		"GATEHOUSE_MAX_INFLIGHT":              "2",
		"GATEHOUSE_ARGON2_MEMORY_KIB":         "65536",
		"GATEHOUSE_ARGON2_TIME":               "8",
		"GATEHOUSE_PASSWORD_HASH_CONCURRENCY": "1",
	}))
	if got := scrapeMetric(t, s, "gatehouse_http_requests_in_flight_limit"); got != 2 {
		t.Errorf("gatehouse_http_requests_in_flight_limit = %v, want 2", got)
	}

	// Two sign-ins whose bodies arrive slowly hold both slots for as long
	// as the test keeps their bodies open: the refusals below happen
	// while they are in flight, so they cannot have waited for them.
	t.Run("slow uploads", func(t *testing.T) {
		var held []<-chan asyncAnswer
		var writers []*io.PipeWriter
		for i := range 2 {
			body := shedLoginBody(i)
			pr, pw := io.Pipe()
			writers = append(writers, pw)
			held = append(held, goRequest(shedLogin(t, s, pr, len(body))))
			defer pw.Close()
			// The first half now, the rest once the test has seen the
			// refusals.
			if _, err := pw.Write(body[:len(body)/2]); err != nil {
				t.Fatal(err)
			}
		}
		waitInFlight(t, s, 2)

		body := shedLoginBody(10)
		checkOverloaded(t, "POST /v1/auth/login", goRequest(shedLogin(t, s, bytes.NewReader(body), len(body))))
		req, _ := http.NewRequest("GET", s.public+"/v1/me", nil)
		req.Header.Set("Authorization", "Bearer not-a-token")
		checkOverloaded(t, "GET /v1/me", goRequest(req))
		for _, path := range []string{"/healthz", "/livez", "/readyz"} {
			if res, body := get(t, s.public+path); res.StatusCode != http.StatusOK {
				t.Errorf("GET %s while saturated: %d %s, want 200", path, res.StatusCode, body)
			}
		}
		if res, _ := get(t, s.admin+"/readyz"); res.StatusCode != http.StatusOK {
			t.Errorf("admin /readyz while saturated: %d, want 200", res.StatusCode)
		}
		if got := scrapeMetric(t, s, "gatehouse_http_shed_total"); got != 2 {
			t.Errorf("gatehouse_http_shed_total = %v, want 2", got)
		}

		// The uploads end: both sign-ins run (and fail: no such account),
		// and the server takes requests again.
		for i, pw := range writers {
			body := shedLoginBody(i)
			if _, err := pw.Write(body[len(body)/2:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
		}
		for _, done := range held {
			if status, code, _ := awaitAnswer(t, done); status != http.StatusUnauthorized || code != "invalid_credentials" {
				t.Errorf("held sign-in: %d %q, want 401 invalid_credentials", status, code)
			}
		}
		if c, b, _ := call(t, "POST", s.public+"/v1/auth/login", map[string]string{"email": "shed-11@example.com", "password": "wrong"}); c != 401 || b["code"] != "invalid_credentials" {
			t.Errorf("sign-in after the load: %d %v, want 401 invalid_credentials", c, b)
		}
	})

	// A burst of sign-ins, each running Argon2id: two are admitted, and
	// the rest are refused while those two are still hashing.
	t.Run("burst of sign-ins", func(t *testing.T) {
		before := scrapeMetric(t, s, "gatehouse_http_shed_total")
		var admitted []<-chan asyncAnswer
		for i := range 2 {
			body := shedLoginBody(20 + i)
			admitted = append(admitted, goRequest(shedLogin(t, s, bytes.NewReader(body), len(body))))
		}
		waitInFlight(t, s, 2)
		start := time.Now()
		var burst []<-chan asyncAnswer
		for i := range 8 {
			body := shedLoginBody(30 + i)
			burst = append(burst, goRequest(shedLogin(t, s, bytes.NewReader(body), len(body))))
		}
		for i, done := range burst {
			checkOverloaded(t, fmt.Sprintf("sign-in %d of the burst", i), done)
		}
		t.Logf("8 excess sign-ins refused in %v", time.Since(start))
		// Hashes run one at a time, so the second admitted sign-in waits
		// for the first: the burst was answered before they both ended.
		var ended int
		for i, done := range admitted {
			select {
			case a := <-done:
				ended++
				admitted[i] = replayAnswer(a)
			default:
			}
		}
		if ended == len(admitted) {
			t.Error("the burst was answered only after the slow sign-ins ended")
		}
		for _, done := range admitted {
			if status, code, _ := awaitAnswer(t, done); status != http.StatusUnauthorized || code != "invalid_credentials" {
				t.Errorf("admitted sign-in: %d %q, want 401 invalid_credentials", status, code)
			}
		}
		if got := scrapeMetric(t, s, "gatehouse_http_shed_total") - before; got != 8 {
			t.Errorf("gatehouse_http_shed_total rose by %v, want 8", got)
		}
	})
}

// replayAnswer returns a channel that yields a again.
func replayAnswer(a asyncAnswer) <-chan asyncAnswer {
	ch := make(chan asyncAnswer, 1)
	ch <- a
	return ch
}
