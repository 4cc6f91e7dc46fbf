package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests build the real binary and drive it as an operator would.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gatehouse")
	// Built without -race even when the tests run with it: a race
	// build's binary is several times slower, and the kill test's burst of
	// sign-ups must be answered in time.
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build gatehouse: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cleanEnv is the environment without any GATEHOUSE_ setting of the
// developer's, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func run(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code == -1 {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		env  []string
		want string
	}{
		{[]string{"GATEHOUSE_ENV=production", "GATEHOUSE_ISSUER=https://auth.example.com"}, "GATEHOUSE_ENCRYPTION_KEYS"},
		{[]string{"GATEHOUSE_HTTP_ADDR=nonsense"}, "GATEHOUSE_HTTP_ADDR"},
		{[]string{"GATEHOUSE_ENV=production", "GATEHOUSE_ISSUER=http://auth.example.com"}, "GATEHOUSE_ISSUER"},
		{[]string{"GATEHOUSE_ENV=production", "GATEHOUSE_DEBUG=true"}, "GATEHOUSE_DEBUG"},
	}
	for _, tt := range tests {
		_, stderr, code := run(t, dir, cleanEnv(tt.env...), "serve")
		if code == 0 {
			t.Errorf("%v: exit 0, want non-zero", tt.env)
		}
		if !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: stderr does not name %s:\n%s", tt.env, tt.want, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Errorf("a refused start created the data dir")
	}
}

func TestServeAndSIGTERM(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = cleanEnv("GATEHOUSE_HTTP_ADDR=127.0.0.1:0", "GATEHOUSE_ADMIN_ADDR=127.0.0.1:0", "GATEHOUSE_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })

	// Read the start-up line to learn the ports.
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var started map[string]any
	var all []string
	timeout := time.After(60 * time.Second)
	for started == nil {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("server exited before starting:\n%s", strings.Join(all, "\n"))
			}
			all = append(all, l)
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "gatehouse started" {
				started = rec
			}
		case <-timeout:
			t.Fatalf("no start-up line:\n%s", strings.Join(all, "\n"))
		}
	}
	public := "http://" + started["http_addr"].(string)
	admin := "http://" + started["admin_addr"].(string)
	for _, u := range []string{public + "/healthz", public + "/readyz", public + "/openapi.json", admin + "/metrics"} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s = %d", u, res.StatusCode)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "gatehouse.db")); err != nil {
		t.Errorf("embedded database not created in ./data: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "encryption.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("development key not created with mode 0600: %v %v", fi, err)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want exit 0", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("shutdown took %v, want < 5s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
}

func TestMigrateCommands(t *testing.T) {
	dir := t.TempDir()
	env := cleanEnv()

	stdout, stderr, code := run(t, dir, env, "migrate", "status", "--output", "json")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, stderr)
	}
	var status struct {
		Database   string `json:"database"`
		Migrations []struct {
			Version int  `json:"version"`
			Applied bool `json:"applied"`
		} `json:"migrations"`
	}
	if err := json.Unmarshal([]byte(stdout), &status); err != nil {
		t.Fatalf("status output %q: %v", stdout, err)
	}
	if status.Database != "sqlite" || len(status.Migrations) == 0 || status.Migrations[0].Applied {
		t.Fatalf("fresh status = %+v", status)
	}

	if _, stderr, code := run(t, dir, env, "migrate", "up"); code != 0 {
		t.Fatalf("up: exit %d\n%s", code, stderr)
	}
	stdout, _, _ = run(t, dir, env, "migrate", "status")
	if !regexp.MustCompile(`0001\s+\S+\s+applied`).MatchString(stdout) {
		t.Errorf("status after up:\n%s", stdout)
	}
	stdout, _, code = run(t, dir, env, "migrate", "up")
	if code != 0 || !strings.Contains(stdout, "nothing to do") {
		t.Errorf("second up = %d %q", code, stdout)
	}
	stdout, stderr, code = run(t, dir, env, "migrate", "down", "--output", "json")
	if code != 0 || !strings.Contains(stdout, `"rolled back"`) {
		t.Errorf("down = %d %q %s", code, stdout, stderr)
	}
	if _, _, code := run(t, dir, env, "migrate", "sideways"); code != 2 {
		t.Errorf("unknown subcommand exit = %d, want 2", code)
	}
}

func TestVersionAndUsage(t *testing.T) {
	stdout, _, code := run(t, t.TempDir(), cleanEnv(), "version")
	if code != 0 || !strings.HasPrefix(stdout, "gatehouse ") {
		t.Errorf("version = %d %q", code, stdout)
	}
	if _, _, code := run(t, t.TempDir(), cleanEnv(), "frobnicate"); code != 2 {
		t.Errorf("unknown command exit = %d, want 2", code)
	}
	stdout, _, code = run(t, t.TempDir(), cleanEnv(), "encryption-key", "generate", "--id", "prod1")
	if code != 0 || !regexp.MustCompile(`^prod1:[A-Za-z0-9+/]{43}=\n$`).MatchString(stdout) {
		t.Errorf("encryption-key generate = %d %q", code, stdout)
	}
}
