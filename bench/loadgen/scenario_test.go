package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A fake server: GET /v1/me fails every third call and answers another
// user every fifth; POST /oauth2/token rotates "rN" to "rN+1" and refuses
// anything but the newest token of the chain.
func fakeServer(t *testing.T) *httptest.Server {
	var calls atomic.Int64
	var newest atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case n%3 == 0:
			http.Error(w, `{"title":"boom"}`, http.StatusInternalServerError)
		case n%5 == 0:
			fmt.Fprint(w, `{"id":"someone-else"}`)
		default:
			fmt.Fprint(w, `{"id":"u1"}`)
		}
	})
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		got := r.PostFormValue("refresh_token")
		cur := newest.Load()
		if got != fmt.Sprintf("r%d", cur) || !newest.CompareAndSwap(cur, cur+1) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":"a","refresh_token":"r%d"}`, cur+1)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestRunPhaseCountsFailures(t *testing.T) {
	srv := fakeServer(t)
	a := newAPI(srv.URL, 2)
	sc := scenarios(a, "", "")["validate"]
	workers := []*worker{{userID: "u1", access: "x"}, {userID: "u1", access: "x"}}
	out := runPhase(t.Context(), sc, workers, 200*time.Millisecond)
	if out.requests < 30 {
		t.Fatalf("only %d requests in 200ms", out.requests)
	}
	// Calls 3, 6, 9 … fail with 500 and 5, 10, 20 … (not multiples of 3)
	// with the wrong profile: 7 of every 15.
	want := out.requests * 7 / 15
	if out.errors < want-2 || out.errors > want+2 {
		t.Errorf("errors = %d of %d, want about %d", out.errors, out.requests, want)
	}
	if len(out.samples) != maxSamples {
		t.Fatalf("%d samples, want %d", len(out.samples), maxSamples)
	}
	var sawStatus, sawBody bool
	for _, s := range out.samples {
		sawStatus = sawStatus || (s.Status == 500 && strings.Contains(s.Body, "boom"))
		sawBody = sawBody || (s.Status == 200 && strings.Contains(s.Reason, "profile"))
	}
	if !sawStatus || !sawBody {
		t.Errorf("samples miss a 500 with its body or a wrong profile: %+v", out.samples)
	}
	if d := a.dials.Load(); d > 2 {
		t.Errorf("%d connections opened for 2 clients: keep-alive is not working", d)
	}
	if len(out.latencies) != int(out.requests) {
		t.Errorf("%d latencies for %d requests", len(out.latencies), out.requests)
	}
}

func TestRefreshFollowsTheChain(t *testing.T) {
	srv := fakeServer(t)
	a := newAPI(srv.URL, 1)
	sc := scenarios(a, "", "")["refresh"]
	w := &worker{refresh: "r0"}
	out := runPhase(t.Context(), sc, []*worker{w}, 100*time.Millisecond)
	if out.errors != 0 || out.requests < 10 {
		t.Fatalf("%d errors in %d requests: %+v", out.errors, out.requests, out.samples)
	}
	if want := fmt.Sprintf("r%d", out.requests); w.refresh != want {
		t.Errorf("worker holds %s after %d refreshes, want %s", w.refresh, out.requests, want)
	}
}

// The client copes with a server that closes connections: after each
// answer (Connection: close) and while one is idle (it is sent again on a
// new connection, not counted as an error).
func TestClientReconnects(t *testing.T) {
	var got atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.Host == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got.Add(1)
		fmt.Fprint(w, `{"id":"u1"}`)
	})
	t.Run("ConnectionClose", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(h)
		srv.Config.SetKeepAlivesEnabled(false)
		srv.Start()
		defer srv.Close()
		a := newAPI(srv.URL, 1)
		for i := range 3 {
			if r, why := a.me(t.Context(), "tok", "u1"); why != "" {
				t.Fatalf("call %d: %s: %+v", i, why, r)
			}
		}
		if d := a.dials.Load(); d != 3 {
			t.Errorf("%d connections for 3 calls answered with Connection: close, want 3", d)
		}
	})
	t.Run("ClosedWhileIdle", func(t *testing.T) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		a := newAPI(srv.URL, 1)
		if _, why := a.me(t.Context(), "tok", "u1"); why != "" {
			t.Fatal(why)
		}
		srv.CloseClientConnections()
		if r, why := a.me(t.Context(), "tok", "u1"); why != "" {
			t.Fatalf("call after the server closed the idle connection: %s: %+v", why, r)
		}
		if d := a.dials.Load(); d != 2 {
			t.Errorf("%d connections, want 2", d)
		}
	})
}
