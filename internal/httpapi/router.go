package httpapi

import (
	"context"
	"net/http"
	"sort"
	"strings"
)

// HandlerFunc is an HTTP handler that returns an error instead of writing
// one; the router turns the error into a problem response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route is one registered pattern.
type Route struct {
	Method string // empty for patterns without a method
	Path   string
	// Documented is false for routes deliberately left out of the OpenAPI
	// document (static assets).
	Documented bool
	// Permission is the RBAC permission the route requires (registered
	// with HandlePermission), "" for none.
	Permission string
}

// Router wraps http.ServeMux: it records every registered pattern (so a test
// can hold the OpenAPI document against them), adapts error-returning
// handlers, and answers unknown routes and wrong methods with problem+json.
type Router struct {
	mux    *http.ServeMux
	errors ErrorWriter
	routes []Route
	guard  Guard
}

// Guard runs for every request that matches a route, before its handler,
// with the route's pattern ("POST /v1/auth/login"): the rate limiter. It
// returns the request to go on with, or false when it has answered the
// request itself (a refusal).
type Guard func(w http.ResponseWriter, r *http.Request, pattern string) (*http.Request, bool)

// SetGuard installs g; call it before serving.
func (rt *Router) SetGuard(g Guard) { rt.guard = g }

// NewRouter returns an empty router writing errors with ew.
func NewRouter(ew ErrorWriter) *Router {
	return &Router{mux: http.NewServeMux(), errors: ew}
}

// Handle registers an error-returning handler for a Go 1.22 pattern such as
// "POST /v1/auth/login". A request whose path or query string is not valid
// text (see ValidText) is refused before h runs.
func (rt *Router) Handle(pattern string, h HandlerFunc) {
	rt.record(pattern, true)
	rt.handle(pattern, h)
}

// HandlePermission is Handle for a route guarded by permission (h does the
// check); the permission is recorded with the route, so that a test can
// hold the OpenAPI document's x-gatehouse-permission against it.
func (rt *Router) HandlePermission(pattern, permission string, h HandlerFunc) {
	rt.record(pattern, true)
	rt.routes[len(rt.routes)-1].Permission = permission
	rt.handle(pattern, h)
}

func (rt *Router) handle(pattern string, h HandlerFunc) {
	rt.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if p := checkRequestText(r); p != nil {
			rt.errors.Write(w, r, p)
			return
		}
		if err := h(w, r); err != nil {
			rt.errors.Write(w, r, err)
		}
	})
}

// HandleHTTP registers a plain http.Handler (e.g. OAuth endpoints that write
// their own RFC 6749 errors).
func (rt *Router) HandleHTTP(pattern string, h http.Handler) {
	rt.record(pattern, true)
	rt.mux.Handle(pattern, h)
}

// HandleUndocumented registers a handler left out of the OpenAPI document,
// such as static documentation assets.
func (rt *Router) HandleUndocumented(pattern string, h http.Handler) {
	rt.record(pattern, false)
	rt.mux.Handle(pattern, h)
}

func (rt *Router) record(pattern string, documented bool) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	rt.routes = append(rt.routes, Route{Method: method, Path: path, Documented: documented})
}

// Routes returns the registered routes sorted by path and method.
func (rt *Router) Routes() []Route {
	out := append([]Route(nil), rt.routes...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// ServeHTTP dispatches to the matching handler. Requests that match no
// pattern get a 404 problem; a known path with the wrong method gets a 405
// problem with the Allow header. Canonicalising redirects pass through.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := rt.mux.Handler(r)
	if pattern != "" {
		if ri := routeInfoFrom(r.Context()); ri != nil {
			ri.pattern = pattern
		}
		if rt.guard != nil {
			var ok bool
			if r, ok = rt.guard(w, r, pattern); !ok {
				return
			}
		}
		rt.mux.ServeHTTP(w, r)
		return
	}
	// No pattern: the mux's own handler would write a plain-text 404/405 or
	// a redirect. Capture what it decided and answer in problem+json.
	rec := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		WriteProblem(w, r, NewProblem(http.StatusNotFound, "not_found", "No such route: "+r.Method+" "+r.URL.Path))
	case http.StatusMethodNotAllowed:
		p := NewProblem(http.StatusMethodNotAllowed, "method_not_allowed", "The route does not accept "+r.Method+".")
		p.Header = http.Header{"Allow": rec.header.Values("Allow")}
		WriteProblem(w, r, p)
	default:
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
	}
}

// headerRecorder captures the status and headers of the mux's internal
// not-found, method-not-allowed and redirect handlers; their bodies are
// plain text and discarded.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return len(b), nil
}
func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

// routeInfo lets the router tell outer middleware (metrics, access log)
// which pattern matched, without relying on the request pointer.
type routeInfo struct {
	pattern  string
	apiKeyID string // the API key the request authenticated with
}

// NoteAPIKey records, for the access log line, the ID of the API key the
// request authenticated with (never the key itself).
func NoteAPIKey(ctx context.Context, id string) {
	if ri := routeInfoFrom(ctx); ri != nil {
		ri.apiKeyID = id
	}
}

type routeKey struct{}

func withRouteInfo(ctx context.Context) (context.Context, *routeInfo) {
	ri := &routeInfo{}
	return context.WithValue(ctx, routeKey{}, ri), ri
}

func routeInfoFrom(ctx context.Context) *routeInfo {
	ri, _ := ctx.Value(routeKey{}).(*routeInfo)
	return ri
}

// routeLabel is the metrics label for a matched pattern: the path part
// only, or "unmatched" so unknown URLs cannot blow up label cardinality.
func routeLabel(ri *routeInfo) string {
	if ri == nil || ri.pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(ri.pattern, " "); ok {
		return path
	}
	return ri.pattern
}
