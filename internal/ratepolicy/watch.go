package ratepolicy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultInterval is how often a Watcher looks at its file when
// NewWatcher is given no interval.
const DefaultInterval = 5 * time.Second

// Watcher holds the policy in force. With a file, it reads the file again
// on SIGHUP and when its content changes, and keeps the policy it has when
// the new file is bad (logging every problem).
type Watcher struct {
	path     string
	log      *slog.Logger
	interval time.Duration
	current  atomic.Pointer[Policy]

	mu      sync.Mutex // one load at a time; guards the fields below
	seen    [sha256.Size]byte
	readErr string // the last error reading the file, logged once
}

// NewWatcher returns a Watcher of the policy file at path, read now: a bad
// file is an error listing every problem. With path "" the policy is
// Default(d) and never changes. interval is how often Run looks at the
// file (DefaultInterval when not positive); log may be nil.
func NewWatcher(path string, d Defaults, log *slog.Logger, interval time.Duration) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	w := &Watcher{path: path, log: log, interval: interval}
	if path == "" {
		w.current.Store(Default(d))
		return w, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rate-limit policy: %w", err)
	}
	p, err := Parse(data, path)
	if err != nil {
		return nil, fmt.Errorf("rate-limit policy %s is invalid:\n%w", path, err)
	}
	w.current.Store(p)
	w.seen = sha256.Sum256(data)
	return w, nil
}

// Policy returns the policy in force. Safe for concurrent use.
func (w *Watcher) Policy() *Policy { return w.current.Load() }

// Reload reads the file again and puts it in force, whatever its content
// was before; a bad file is logged and returned as an error, and the
// policy in force stays. Without a file it does nothing.
func (w *Watcher) Reload() error {
	if w.path == "" {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.log.Error("rate-limit policy not reloaded: cannot read the file; the policy in force stays", "path", w.path, "error", err.Error())
		return fmt.Errorf("rate-limit policy: %w", err)
	}
	w.readErr = ""
	return w.load(data)
}

// poll reloads the file if its content changed since it was last read.
// A file that cannot be read is logged once, until it can be again.
func (w *Watcher) poll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	data, err := os.ReadFile(w.path)
	if err != nil {
		if err.Error() != w.readErr {
			w.readErr = err.Error()
			w.log.Error("rate-limit policy file cannot be read; the policy in force stays", "path", w.path, "error", err.Error())
		}
		return
	}
	w.readErr = ""
	if sha256.Sum256(data) == w.seen {
		return
	}
	_ = w.load(data) // logged
}

// load parses data and puts it in force if it is valid. The caller holds
// w.mu.
func (w *Watcher) load(data []byte) error {
	w.seen = sha256.Sum256(data)
	p, err := Parse(data, w.path)
	if err != nil {
		w.log.Error("rate-limit policy file is invalid; the policy in force stays", "path", w.path, "problems", err.Error())
		return fmt.Errorf("rate-limit policy %s is invalid:\n%w", w.path, err)
	}
	w.current.Store(p)
	w.log.Info("rate-limit policy loaded", "path", w.path, "rules", len(p.Rules))
	return nil
}

// Run keeps the policy current until ctx ends: it reloads the file on
// SIGHUP and when its content changes (read every interval and compared
// by hash, so that no change is missed however coarse the file system's
// times). Without a file it only waits for ctx.
func (w *Watcher) Run(ctx context.Context) {
	if w.path == "" {
		<-ctx.Done()
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	w.log.Info("watching the rate-limit policy file", "path", w.path, "interval", w.interval.String())
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = w.Reload() // logged
		case <-t.C:
			w.poll()
		}
	}
}
