package ratepolicy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logs records what a Watcher logs and lets a test wait for a message.
type logs struct {
	mu      sync.Mutex
	records []string // "LEVEL message key=value …"
	added   chan struct{}
}

func newLogs() *logs { return &logs{added: make(chan struct{}, 1000)} }

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		s += " " + a.String()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, s)
	l.mu.Unlock()
	l.added <- struct{}{}
	return nil
}

// count returns how many records contain substr.
func (l *logs) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

// waitFor waits until n records contain substr.
func (l *logs) waitFor(t *testing.T, substr string, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for l.count(substr) < n {
		select {
		case <-l.added:
		case <-timeout:
			t.Fatalf("no %d log records with %q; have:\n%s", n, substr, strings.Join(l.records, "\n"))
		}
	}
}

const (
	policyA = "rules: [{name: a, routes: [login], key: ip, limit: 10/1m}]\n"
	policyB = "rules: [{name: b, routes: [register], key: ip, limit: 5/1h}]\n"
	policyC = "rules: [{name: c, routes: [token], key: client, limit: 100/1m}]\n"
	badFile = "rules: [{name: bad, routes: [logn], key: phone, limit: 10/1m}]\n"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func ruleNames(p *Policy) string {
	var names []string
	for _, r := range p.Rules {
		names = append(names, r.Name)
	}
	return strings.Join(names, ",")
}

func TestWatcherWithoutFile(t *testing.T) {
	d := Defaults{RegisterPerIP: PerHour(3)}
	w, err := NewWatcher("", d, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p := w.Policy(); p.Source != "default" || p.Rule("register-ip").Limit != PerHour(3) {
		t.Errorf("policy %s with register-ip %v, want the default with 3/1h", p.Source, p.Rule("register-ip"))
	}
	if err := w.Reload(); err != nil {
		t.Errorf("Reload without a file: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	cancel()
	<-done
}

func TestWatcherRefusesABadFileAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, badFile)
	_, err := NewWatcher(path, Defaults{}, nil, 0)
	if err == nil {
		t.Fatal("NewWatcher accepted a bad file")
	}
	for _, want := range []string{
		path + `:1: rule 1 "bad" routes: "logn" is not a route group`,
		path + `:1: rule 1 "bad" key: "phone" is not a key part`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not list %q:\n%v", want, err)
		}
	}
	if _, err := NewWatcher(filepath.Join(t.TempDir(), "missing.yaml"), Defaults{}, nil, 0); err == nil {
		t.Error("NewWatcher accepted a missing file")
	}
}

// TestWatcherReload checks Reload: a new file takes effect, a bad one is
// logged and the policy in force stays.
func TestWatcherReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyA)
	l := newLogs()
	w, err := NewWatcher(path, Defaults{}, slog.New(l), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p := w.Policy(); ruleNames(p) != "a" || p.Source != path {
		t.Fatalf("policy %s from %s, want a from %s", ruleNames(p), p.Source, path)
	}

	writeFile(t, path, policyB)
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := ruleNames(w.Policy()); got != "b" {
		t.Fatalf("after Reload: rules %s, want b", got)
	}

	writeFile(t, path, badFile)
	err = w.Reload()
	if err == nil || !strings.Contains(err.Error(), `"logn" is not a route group`) {
		t.Fatalf("Reload of a bad file = %v, want its problems", err)
	}
	if got := ruleNames(w.Policy()); got != "b" {
		t.Errorf("after a bad file: rules %s, want b kept", got)
	}
	if l.count(`ERROR rate-limit policy file is invalid`) != 1 || l.count(`"phone" is not a key part`) != 1 {
		t.Errorf("the bad file was not logged with its problems:\n%s", strings.Join(l.records, "\n"))
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(); err == nil {
		t.Error("Reload of a missing file succeeded")
	}
	if got := ruleNames(w.Policy()); got != "b" {
		t.Errorf("after a missing file: rules %s, want b kept", got)
	}
}

// TestWatcherPoll checks what one look at the file does: nothing while
// it is unchanged, a reload when it changes, one log line per bad content
// or read error however often it is seen.
func TestWatcherPoll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyA)
	l := newLogs()
	w, err := NewWatcher(path, Defaults{}, slog.New(l), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before := w.Policy()
	w.poll()
	if w.Policy() != before || l.count("loaded") != 0 {
		t.Fatal("an unchanged file was loaded again")
	}

	writeFile(t, path, policyB)
	w.poll()
	if got := ruleNames(w.Policy()); got != "b" || l.count("INFO rate-limit policy loaded") != 1 {
		t.Fatalf("after a change: rules %s, %d loaded logs; want b, 1", got, l.count("loaded"))
	}

	writeFile(t, path, badFile)
	w.poll()
	w.poll()
	if got := ruleNames(w.Policy()); got != "b" || l.count("is invalid") != 1 {
		t.Fatalf("after a bad file polled twice: rules %s, %d invalid logs; want b, 1", got, l.count("is invalid"))
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w.poll()
	w.poll()
	if got := ruleNames(w.Policy()); got != "b" || l.count("cannot be read") != 1 {
		t.Fatalf("after the file went: rules %s, %d read logs; want b, 1", got, l.count("cannot be read"))
	}

	writeFile(t, path, policyC)
	w.poll()
	if got := ruleNames(w.Policy()); got != "c" {
		t.Fatalf("after the file came back: rules %s, want c", got)
	}
}

// TestWatcherRun checks that Run picks up a changed file by itself and
// reloads on SIGHUP. The signal is sent to this process only once Run has
// said it is watching, so after signal.Notify: it cannot end the test.
func TestWatcherRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyA)
	l := newLogs()
	w, err := NewWatcher(path, Defaults{}, slog.New(l), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	l.waitFor(t, "watching the rate-limit policy file", 1)

	writeFile(t, path, policyB)
	l.waitFor(t, "rate-limit policy loaded", 1)
	if got := ruleNames(w.Policy()); got != "b" {
		t.Fatalf("after a change: rules %s, want b", got)
	}

	writeFile(t, path, badFile)
	l.waitFor(t, "rate-limit policy file is invalid", 1)
	if got := ruleNames(w.Policy()); got != "b" {
		t.Fatalf("after a bad file: rules %s, want b kept", got)
	}

	// SIGHUP reloads even a file the poll has already seen.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitFor(t, "rate-limit policy file is invalid", 2)
}

// TestWatcherSIGHUP checks the signal alone: with polling too slow to
// matter, a changed file is loaded on SIGHUP.
func TestWatcherSIGHUP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, policyA)
	l := newLogs()
	w, err := NewWatcher(path, Defaults{}, slog.New(l), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	l.waitFor(t, "watching the rate-limit policy file", 1)

	writeFile(t, path, policyC)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.waitFor(t, "rate-limit policy loaded", 1)
	if got := ruleNames(w.Policy()); got != "c" {
		t.Fatalf("after SIGHUP: rules %s, want c", got)
	}
}
