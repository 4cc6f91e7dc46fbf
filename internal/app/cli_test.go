package app

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"
)

// runCLI runs one gatehouse command in process with exactly the settings
// in env (nothing from the developer's environment) and returns what it
// printed and its exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = Run(ctx, Env{Args: args, Getenv: func(k string) string { return env[k] }, Environ: environ,
		Stdin: strings.NewReader(strongPassword + "\n"), Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code
}

// TestHelpIsConsistent: every way of asking any command for help prints
// its usage on stdout and exits 0, as `gatehouse --help` does; a mistake
// prints the usage on stderr and exits 2.
func TestHelpIsConsistent(t *testing.T) {
	env := map[string]string{"GATEHOUSE_ENV": "test", "GATEHOUSE_DATA_DIR": t.TempDir()}
	for _, tc := range []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"--help"}, "gatehouse [--config FILE] <command>"},
		{[]string{"-h"}, "gatehouse [--config FILE] <command>"},
		{[]string{"help"}, "gatehouse [--config FILE] <command>"},
		{[]string{"users", "--help"}, "gatehouse users create --email EMAIL"},
		{[]string{"users", "-h"}, "gatehouse users import FILE.jsonl"},
		{[]string{"users", "help"}, "gatehouse users create --email EMAIL"},
		{[]string{"users", "create", "--help"}, "Usage of gatehouse users create:"},
		{[]string{"users", "import", "--help"}, "Usage of gatehouse users import:"},
		{[]string{"migrate", "--help"}, "gatehouse migrate up|down|status"},
		{[]string{"migrate", "status", "--help"}, "Usage of gatehouse migrate status:"},
		{[]string{"keys", "--help"}, "gatehouse keys rotate"},
		{[]string{"keys", "list", "-h"}, "Usage of gatehouse keys list:"},
		{[]string{"clients", "--help"}, "gatehouse clients create --name NAME"},
		{[]string{"clients", "create", "--help"}, "-name string"},
		{[]string{"encryption-key", "--help"}, "gatehouse encryption-key generate [--id KEY_ID]"},
		{[]string{"encryption-key", "generate", "--help"}, "-id string"},
		{[]string{"serve", "--help"}, "Usage of gatehouse serve:"},
		{[]string{"version", "--help"}, "Usage of gatehouse version:"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := runCLI(t, env, tc.args...)
			if code != 0 || !strings.Contains(stdout, tc.want) || stderr != "" {
				t.Errorf("exit %d, stdout %q (want it to contain %q), stderr %q", code, stdout, tc.want, stderr)
			}
		})
	}
	for _, args := range [][]string{
		{"users"}, {"users", "rename"}, {"users", "create", "--bogus"}, {"migrate"}, {"keys"},
		{"clients"}, {"encryption-key"}, {"serve", "--bogus"}, {"version", "extra"}, {"version", "--output", "yaml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, code := runCLI(t, env, args...)
			if code != exitUsage || stdout != "" || stderr == "" {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q", code, exitUsage, stdout, stderr)
			}
		})
	}
}

// TestVersionOutput: --output json works after the command as before it,
// like every other command's.
func TestVersionOutput(t *testing.T) {
	env := map[string]string{"GATEHOUSE_ENV": "test"}
	text, _, code := runCLI(t, env, "version")
	if code != 0 || text != "gatehouse "+versionString()+"\n" {
		t.Fatalf("version = %d %q", code, text)
	}
	if out, _, code := runCLI(t, env, "--version"); code != 0 || out != text {
		t.Errorf("--version = %d %q, want %q", code, out, text)
	}
	for _, args := range [][]string{
		{"version", "--output", "json"},
		{"version", "--output=json"},
		{"--output", "json", "version"},
	} {
		stdout, stderr, code := runCLI(t, env, args...)
		var got map[string]any
		if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != 0 {
			t.Errorf("%v = %d %q %q: %v", args, code, stdout, stderr, err)
			continue
		}
		if got["version"] != versionString() || got["go_version"] != runtime.Version() {
			t.Errorf("%v = %v, want version %q and go_version %q", args, got, versionString(), runtime.Version())
		}
	}
}

// TestCommandsNameAMissingSchema: with automatic migration off (as in
// production), serve and the commands that use the tables refuse an empty
// or partly migrated database with one line saying what to run, before
// they touch a table, on both backends.
func TestCommandsNameAMissingSchema(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"GATEHOUSE_DATA_DIR": t.TempDir()}
		checkMissingSchema(t, env)
		// Partly migrated: everything but the last migration.
		if _, stderr, code := runCLI(t, env, "migrate", "up"); code != 0 {
			t.Fatalf("migrate up: exit %d\n%s", code, stderr)
		}
		if _, stderr, code := runCLI(t, env, "migrate", "down"); code != 0 {
			t.Fatalf("migrate down: exit %d\n%s", code, stderr)
		}
		checkSchemaRefused(t, env, "the database schema is out of date, 1 migration pending: run `gatehouse migrate up`")
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		checkMissingSchema(t, map[string]string{"GATEHOUSE_DATA_DIR": t.TempDir(), "GATEHOUSE_DATABASE_URL": testenv.PostgresURL(t)})
		// Gatehouse's tables without the job queue's: its migrations are
		// pending too.
		env := map[string]string{"GATEHOUSE_DATA_DIR": t.TempDir(), "GATEHOUSE_DATABASE_URL": testenv.PostgresMigratedURL(t)}
		stdout, stderr, code := runCLI(t, withManualMigration(env), "migrate", "status", "--output", "json")
		var status struct {
			JobQueue struct {
				Pending []int `json:"pending"`
			} `json:"job_queue"`
		}
		if err := json.Unmarshal([]byte(stdout), &status); err != nil || code != 0 || len(status.JobQueue.Pending) == 0 {
			t.Fatalf("migrate status = %d %q %s: %v", code, stdout, stderr, err)
		}
		pending := strconv.Itoa(len(status.JobQueue.Pending)) + " migrations"
		if len(status.JobQueue.Pending) == 1 {
			pending = "1 migration"
		}
		checkSchemaRefused(t, env, "the database schema is out of date, "+pending+" pending: run `gatehouse migrate up`")
		// Once migrated, the same commands work.
		if _, stderr, code := runCLI(t, withManualMigration(env), "migrate", "up"); code != 0 {
			t.Fatalf("migrate up: exit %d\n%s", code, stderr)
		}
		if stdout, stderr, code := runCLI(t, withManualMigration(env), "keys", "list"); code != 0 || !strings.Contains(stdout, "KID") {
			t.Errorf("keys list after migrate up = %d %q %s", code, stdout, stderr)
		}
	})
}

// withManualMigration is env with automatic migration off, the way a
// production deployment runs, and ports chosen by the kernel.
func withManualMigration(env map[string]string) map[string]string {
	out := map[string]string{
		"GATEHOUSE_ENV":          "test",
		"GATEHOUSE_AUTO_MIGRATE": "false",
		"GATEHOUSE_HTTP_ADDR":    "127.0.0.1:0",
		"GATEHOUSE_ADMIN_ADDR":   "127.0.0.1:0",
		"GATEHOUSE_LOG_LEVEL":    "error",
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// checkMissingSchema runs the commands against an empty database and
// checks that none of them created anything in it.
func checkMissingSchema(t *testing.T, env map[string]string) {
	t.Helper()
	checkSchemaRefused(t, env, "the database has no schema: run `gatehouse migrate up`")
	stdout, stderr, code := runCLI(t, withManualMigration(env), "migrate", "status", "--output", "json")
	var status struct {
		Migrations []struct {
			Applied bool `json:"applied"`
		} `json:"migrations"`
		JobQueue struct {
			Current int `json:"current"`
		} `json:"job_queue"`
	}
	if err := json.Unmarshal([]byte(stdout), &status); err != nil || code != 0 || len(status.Migrations) == 0 {
		t.Fatalf("migrate status = %d %q %s: %v", code, stdout, stderr, err)
	}
	for _, m := range status.Migrations {
		if m.Applied {
			t.Errorf("a refused command applied a migration: %+v", status)
		}
	}
	if status.JobQueue.Current != 0 {
		t.Errorf("a refused command migrated the job queue: %+v", status)
	}
}

// checkSchemaRefused runs serve and the commands that use the tables and
// wants each to exit 1 with want, alone on its line, on stderr.
func checkSchemaRefused(t *testing.T, env map[string]string, want string) {
	t.Helper()
	env = withManualMigration(env)
	for _, args := range [][]string{
		{"serve"},
		{"keys", "list"},
		{"keys", "rotate"},
		{"clients", "list"},
		{"users", "create", "--email", "ada@example.com", "--password-stdin"},
	} {
		stdout, stderr, code := runCLI(t, env, args...)
		if code != exitError || stdout != "" || !strings.Contains(stderr, "gatehouse: "+want+"\n") {
			t.Errorf("%v = exit %d, stdout %q, stderr %q; want exit %d and %q", args, code, stdout, stderr, exitError, want)
		}
	}
}
