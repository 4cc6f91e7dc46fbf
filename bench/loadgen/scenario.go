package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// worker is one simulated client: its account and the tokens it holds.
type worker struct {
	acct   account
	userID string
	access string // access token for validate and introspect
	// sessionRefresh is the refresh token issued with access, never
	// rotated: what introspect-refresh presents.
	sessionRefresh string
	refresh        string // newest refresh token of its own rotation chain
	apiKey         string // a personal API key, for validate-apikey
}

// scenario is one kind of request, made in a loop by every worker.
type scenario struct {
	name string
	// do makes one request; a non-empty reason marks it failed even if
	// it was 2xx.
	do func(ctx context.Context, w *worker) (response, string)
	// recover, if set, runs (untimed) after a failure so the worker can
	// go on, e.g. by starting a new refresh chain.
	recover func(ctx context.Context, w *worker) error
	// want, when not 0, is the status that counts as success instead of
	// any 2xx (429 for a flood the rate limiter refuses).
	want int
}

// succeeded reports whether r is what sc expects.
func (sc scenario) succeeded(r response) bool {
	if sc.want != 0 {
		return r.err == nil && r.status == sc.want
	}
	return r.ok()
}

// outcome is what one phase of a scenario measured.
type outcome struct {
	requests, errors, recoveries int64
	elapsed                      time.Duration
	latencies                    []time.Duration
	samples                      []*sample
}

const maxSamples = 5

// runPhase runs sc on every worker until d has passed. Requests under way
// at the deadline finish and count; elapsed runs until the last one ends.
func runPhase(ctx context.Context, sc scenario, workers []*worker, d time.Duration) outcome {
	var (
		mu      sync.Mutex
		out     outcome
		nreq    atomic.Int64
		nerr    atomic.Int64
		nrec    atomic.Int64
		perWork = make([][]time.Duration, len(workers))
		wg      sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for i, w := range workers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				r, why := sc.do(ctx, w)
				lat = append(lat, time.Since(t0))
				nreq.Add(1)
				if sc.succeeded(r) && why == "" {
					continue
				}
				if ctx.Err() != nil {
					break // interrupted: not the server's failure
				}
				nerr.Add(1)
				mu.Lock()
				if len(out.samples) < maxSamples {
					out.samples = append(out.samples, r.failure(why))
				}
				mu.Unlock()
				if sc.recover != nil {
					if err := sc.recover(ctx, w); err != nil {
						mu.Lock()
						if len(out.samples) < maxSamples {
							out.samples = append(out.samples, &sample{Request: "recover " + sc.name, Reason: err.Error()})
						}
						mu.Unlock()
						time.Sleep(100 * time.Millisecond) // do not spin on a dead server
					} else {
						nrec.Add(1)
					}
				}
			}
			perWork[i] = lat
		})
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	out.requests, out.errors, out.recoveries = nreq.Load(), nerr.Load(), nrec.Load()
	for _, l := range perWork {
		out.latencies = append(out.latencies, l...)
	}
	return out
}

// floodAddress is the client address of login-refused, given to the
// server in X-Forwarded-For.
const floodAddress = "203.0.113.9"

// scenarios builds the named scenarios against a.
func scenarios(a *api, clientID, clientSecret string) map[string]scenario {
	relogin := func(ctx context.Context, w *worker) error {
		t, r := a.login(ctx, w.acct.email, w.acct.password)
		if !r.ok() {
			return fmt.Errorf("login to restart the refresh chain: %s", describe(r))
		}
		w.refresh = t.RefreshToken
		return nil
	}
	return map[string]scenario{
		"validate": {
			name: "validate",
			do: func(ctx context.Context, w *worker) (response, string) {
				return a.me(ctx, w.access, w.userID)
			},
		},
		"refresh": {
			name: "refresh",
			do: func(ctx context.Context, w *worker) (response, string) {
				t, r := a.refresh(ctx, w.refresh)
				if r.ok() {
					w.refresh = t.RefreshToken
				}
				return r, ""
			},
			recover: relogin,
		},
		"introspect": {
			name: "introspect",
			do: func(ctx context.Context, w *worker) (response, string) {
				return a.introspect(ctx, clientID, clientSecret, w.access, "access_token")
			},
		},
		"introspect-refresh": {
			name: "introspect-refresh",
			do: func(ctx context.Context, w *worker) (response, string) {
				return a.introspect(ctx, clientID, clientSecret, w.sessionRefresh, "refresh_token")
			},
		},
		// authz-check asks POST /v1/authz/check for a permission the
		// user holds through a role (setup grants it): a cached check
		// after the first.
		"authz-check": {
			name: "authz-check",
			do: func(ctx context.Context, w *worker) (response, string) {
				return a.check(ctx, w.access)
			},
		},
		// healthz is the cheapest request through the server's whole
		// HTTP stack and middleware: the HTTP ceiling of the same run,
		// for scenarios whose cost is mostly HTTP (authz-check).
		// validate-apikey is validate with the user's personal API key
		// instead of an access token.
		"validate-apikey": {
			name: "validate-apikey",
			do: func(ctx context.Context, w *worker) (response, string) {
				return a.meWithKey(ctx, w.apiKey, w.userID)
			},
		},
		"healthz": {
			name: "healthz",
			do: func(ctx context.Context, w *worker) (response, string) {
				r := a.do(ctx, http.MethodGet, "/healthz", "", "")
				if !r.ok() {
					return r, "status"
				}
				return r, ""
			},
		},
		"login": {
			name: "login",
			do: func(ctx context.Context, w *worker) (response, string) {
				_, r := a.login(ctx, w.acct.email, w.acct.password)
				return r, ""
			},
		},
		// login-refused floods sign-in from one client address that the
		// rate-limit policy refuses (run the server with
		// GATEHOUSE_TRUSTED_PROXIES=127.0.0.1/32, a policy file limiting
		// the login group by ip, and GATEHOUSE_RATE_LIMIT_BYPASS_CIDRS=127.0.0.1/32
		// so that the setup's own sign-ins pass): every answer must be a 429,
		// which costs no password hash.
		"login-refused": {
			name: "login-refused",
			do: func(ctx context.Context, w *worker) (response, string) {
				return a.loginFrom(ctx, w.acct.email, w.acct.password, floodAddress), ""
			},
			want: http.StatusTooManyRequests,
		},
	}
}

// describe is a one-line account of a failed response.
func describe(r response) string {
	if r.err != nil && r.status == 0 {
		return r.err.Error()
	}
	s := fmt.Sprintf("%s %s: HTTP %d %s", r.method, r.path, r.status, r.body[:min(len(r.body), 300)])
	if r.err != nil {
		s += " (" + r.err.Error() + ")"
	}
	return s
}
