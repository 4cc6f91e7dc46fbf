package httpapi

import (
	"net/http"
	"runtime"
)

// CodeOverloaded is the problem code of a request refused because the
// server already has as many requests in flight as it will take.
const CodeOverloaded = "overloaded"

// RetryAfterOverloaded is the Retry-After (seconds) sent with a shed
// request. Requests in flight end every few milliseconds, each freeing a
// slot, so a short wait lets the client (or its load balancer, on another
// node) try again soon without leaving capacity idle; clients that retry
// at once anyway are refused for next to nothing.
const RetryAfterOverloaded = 1

// InflightPerCPU is the default cap on requests in flight per CPU
// (GOMAXPROCS). At the 1–5 ms an ordinary request takes, one CPU works
// through 512 of them in 0.5–2.5 s: bursts that the server can answer
// promptly pass, and only a pile-up that would otherwise wait towards the
// read and write timeouts is shed. 512 requests cost a few tens of MiB of
// goroutine stacks and buffers, which every deployment can afford.
const InflightPerCPU = 512

// DefaultMaxInflight is the cap Shed applies when given none: InflightPerCPU
// times GOMAXPROCS.
func DefaultMaxInflight() int { return InflightPerCPU * runtime.GOMAXPROCS(0) }

const overloadedDetail = "The server is handling as many requests as it can; try again shortly."

// Shed caps the requests in flight through it at limit
// (DefaultMaxInflight when limit <= 0), with a buffered channel as a
// semaphore that is never waited on. A request beyond the cap is answered
// at once with a 503 problem, code overloaded, and Retry-After:
// retryAfter seconds (RetryAfterOverloaded when retryAfter <= 0); it is
// never queued, so a flood is refused in microseconds instead of waiting
// until every request times out. Requests for which exempt returns true
// (the health checks, see IsHealthCheck) are neither counted nor shed;
// exempt may be nil.
//
// Shed requests are counted in m (gatehouse_http_shed_total) when m is
// not nil, and m's gatehouse_http_requests_in_flight_limit reports the
// limit. They never reach the router, so the request metrics show them
// as 503 on the route "unmatched".
func Shed(limit int, exempt func(*http.Request) bool, retryAfter int, m *Metrics) Middleware {
	if limit <= 0 {
		limit = DefaultMaxInflight()
	}
	if retryAfter <= 0 {
		retryAfter = RetryAfterOverloaded
	}
	if m != nil {
		m.inFlightLimit.Set(float64(limit))
	}
	slots := make(chan struct{}, limit)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if exempt != nil && exempt(r) {
				next.ServeHTTP(w, r)
				return
			}
			select {
			case slots <- struct{}{}:
			default:
				if m != nil {
					m.shed.Inc()
				}
				p := NewProblem(http.StatusServiceUnavailable, CodeOverloaded, overloadedDetail)
				p.RetryAfter = retryAfter
				WriteProblem(w, r, p)
				return
			}
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		})
	}
}

// IsHealthCheck reports whether r asks for one of the health endpoints
// that Health mounts (/healthz, /livez, /readyz): a load balancer must see
// them answer while the server sheds other requests, or it would take a
// busy node for a dead one.
func IsHealthCheck(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/livez", "/readyz":
		return true
	}
	return false
}
