package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Check is one readiness check, such as "database" or "redis".
type Check struct {
	Name string
	// Backend describes what is checked (e.g. "postgres", "sqlite", "redis",
	// "memory"); it is shown in the readiness body.
	Backend string
	Ping    func(ctx context.Context) error
}

// Health serves the liveness and readiness endpoints.
type Health struct {
	Checks  []Check
	Timeout time.Duration // per check; default 2s
	Log     *slog.Logger
	// Detailed puts each check's backend and, for a failed check, its
	// error text in the readiness body. Only the admin listener sets it:
	// on the public one the body says ok or unavailable per check and
	// nothing about backends, addresses or driver messages.
	Detailed bool
}

// CheckResult is one check's entry in the readiness body. Backend and
// Error are set only with Health.Detailed.
type CheckResult struct {
	Status  string `json:"status"` // "ok" or "unavailable"
	Backend string `json:"backend,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Readiness is the body of GET /readyz.
type Readiness struct {
	Status string                 `json:"status"`
	Checks map[string]CheckResult `json:"checks"`
}

// Routes mounts /healthz, /livez and /readyz.
func (h *Health) Routes(rt *Router) {
	rt.Handle("GET /healthz", h.alive)
	rt.Handle("GET /livez", h.alive)
	rt.Handle("GET /readyz", h.ready)
}

func (h *Health) alive(w http.ResponseWriter, r *http.Request) error {
	return WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Health) ready(w http.ResponseWriter, r *http.Request) error {
	res := h.Run(r.Context())
	status := http.StatusOK
	if res.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	return WriteJSON(w, status, res)
}

// Run performs every check concurrently, each with its own timeout. Failure
// details go to the log, and into the result only with Detailed.
func (h *Health) Run(ctx context.Context) Readiness {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	out := Readiness{Status: "ok", Checks: make(map[string]CheckResult, len(h.Checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range h.Checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			err := c.Ping(cctx)
			res := CheckResult{Status: "ok"}
			if h.Detailed {
				res.Backend = c.Backend
			}
			if err != nil {
				res.Status = "unavailable"
				if h.Detailed {
					res.Error = err.Error()
				}
				if h.Log != nil {
					h.Log.WarnContext(ctx, "readiness check failed", "check", c.Name, "error", err.Error())
				}
			}
			mu.Lock()
			defer mu.Unlock()
			out.Checks[c.Name] = res
			if err != nil {
				out.Status = "unavailable"
			}
		})
	}
	wg.Wait()
	return out
}
