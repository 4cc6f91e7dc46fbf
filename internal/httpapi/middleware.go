package httpapi

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/logging"
)

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// Chain applies middleware so that the first one listed is the outermost.
func Chain(h http.Handler, mw ...Middleware) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// RequestIDHeader is the header carrying the request ID both ways.
const RequestIDHeader = "X-Request-ID"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:@/+=-]{1,128}$`)

// RequestID honours a well-formed incoming X-Request-ID (anything else is
// replaced, so the header cannot inject into logs), otherwise generates one,
// returns it on the response and puts it in the request context, where the
// logger picks it up.
func RequestID() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get(RequestIDHeader)
			if !validRequestID.MatchString(id) {
				id = newRequestID()
			}
			w.Header().Set(RequestIDHeader, id)
			next.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
		})
	}
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := s.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// Observe is the outer middleware of the chain: it logs one JSON access line
// per request and records request metrics by route pattern and status. It
// logs the path without the query string, which may carry one-time tokens.
func Observe(log *slog.Logger, m *Metrics, ips *ClientIPResolver) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ctx, ri := withRouteInfo(r.Context())
			ctx = withClientIP(ctx, ips.Resolve(r))
			sw := &statusWriter{ResponseWriter: w}
			if m != nil {
				m.inFlight.Inc()
				defer m.inFlight.Dec()
			}
			next.ServeHTTP(sw, r.WithContext(ctx))
			elapsed := time.Since(start)
			route := routeLabel(ri)
			status := sw.code()
			if m != nil {
				labels := []string{r.Method, route, strconv.Itoa(status)}
				m.requests.WithLabelValues(labels...).Inc()
				m.duration.WithLabelValues(labels...).Observe(elapsed.Seconds())
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Int64("bytes", sw.bytes),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.String("client_ip", ClientIP(ctx)),
				slog.String("user_agent", truncate(r.UserAgent(), 256)),
			}
			if ri.apiKeyID != "" {
				attrs = append(attrs, slog.String("api_key_id", ri.apiKeyID))
			}
			log.LogAttrs(ctx, level, "http request", attrs...)
		})
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Recover turns a panic into a 500 problem and logs it with its stack.
func Recover(log *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic serving request",
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				WriteProblem(w, r, NewProblem(http.StatusInternalServerError, "internal_error",
					"An unexpected error occurred. Quote the request ID when reporting it."))
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// APIContentSecurityPolicy is the policy for JSON responses: nothing may be
// loaded and the response may not be framed.
const APIContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// SecurityHeaders sets the headers every response carries. HSTS is sent
// when hsts is true (TLS or production). Handlers serving HTML (the API
// docs) may replace Content-Security-Policy with their own.
func SecurityHeaders(hsts bool) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Content-Security-Policy", APIContentSecurityPolicy)
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			h.Set("Cache-Control", "no-store")
			if hsts {
				h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// CORS allows browser calls from the listed origins only. Credentials are
// allowed for those origins; no wildcard is ever sent.
func CORS(allowed []string) Middleware {
	origins := make(map[string]bool, len(allowed))
	for _, o := range allowed {
		origins[strings.TrimRight(o, "/")] = true
	}
	allowHeaders := []string{"Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if !origins[origin] {
				if preflight {
					WriteProblem(w, r, NewProblem(http.StatusForbidden, "cors_origin_not_allowed",
						"The origin is not allowed to call this API."))
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Expose-Headers", "X-Request-ID, Retry-After, WWW-Authenticate, Location")
			if !preflight {
				next.ServeHTTP(w, r)
				return
			}
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
			var granted []string
			for _, req := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
				req = http.CanonicalHeaderKey(strings.TrimSpace(req))
				if slices.Contains(allowHeaders, req) {
					granted = append(granted, req)
				}
			}
			if len(granted) > 0 {
				h.Set("Access-Control-Allow-Headers", strings.Join(granted, ", "))
			}
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
		})
	}
}

// BodyLimit caps request bodies at n bytes; reading past it fails with an
// *http.MaxBytesError, which becomes a 413 problem. A declared
// Content-Length over the limit is refused before the handler runs.
func BodyLimit(n int64) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				WriteProblem(w, r, NewProblem(http.StatusRequestEntityTooLarge, "request_too_large",
					"The request body is larger than "+strconv.FormatInt(n, 10)+" bytes."))
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r2 := *r
				r2.Body = http.MaxBytesReader(w, r.Body, n)
				r = &r2
			}
			next.ServeHTTP(w, r)
		})
	}
}
