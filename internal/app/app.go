// Package app is where Gatehouse is wired together: it parses the command
// line, loads the configuration and runs the requested command. Each piece
// of wiring is a small function (openStore, openState, newPublicHandler …)
// so that the whole assembly can be read in one place.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/logging"
)

// version is set at build time with -ldflags "-X github.com/gatehouse/gatehouse/internal/app.version=v1.2.3".
var version = ""

// Env is the process environment, injected so tests can run commands in
// process.
type Env struct {
	Args    []string
	Getenv  func(string) string
	Environ []string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1
	exitUsage  = 2
	exitConfig = 3
)

const usage = `Gatehouse: a self-hosted authentication server.

Usage:
  gatehouse [--config FILE] <command> [arguments]

Commands:
  serve                      run the server
  migrate up|down|status     apply, roll back (one step) or list schema migrations
  users create|import        create an account, or import accounts with their password hashes
  keys rotate|list           rotate or list the JWT signing keys
  clients create|list|delete manage OAuth clients (introspection, revocation, client_credentials)
  apis create|update|list|delete
                             register the APIs (resource servers) tokens are issued for (RFC 8707)
  encryption-key generate    print a new key for GATEHOUSE_ENCRYPTION_KEYS
  version                    print the version (--output json: with the commit and Go version)

Global flags:
  --config FILE   YAML (.yaml/.yml) or TOML (.toml) config file; also GATEHOUSE_CONFIG.
                  Environment variables (GATEHOUSE_*) override the file.
  --output text|json   output format of CLI commands (default text)

Run "gatehouse <command> --help" for a command's flags.
`

// Run runs one command and returns the process exit code.
func Run(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	fs := flag.NewFlagSet("gatehouse", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("config", env.Getenv("GATEHOUSE_CONFIG"), "config file")
	output := fs.String("output", "text", "output format")
	showVersion := fs.Bool("version", false, "print the version")
	if err := fs.Parse(env.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(env.Stdout, usage)
			return exitOK
		}
		fmt.Fprintf(env.Stderr, "gatehouse: %v\n\n%s", err, usage)
		return exitUsage
	}
	args := fs.Args()
	if *showVersion {
		args = append([]string{"version"}, args...)
	}
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return exitUsage
	}
	c := &cli{env: env, configFile: *configFile, output: *output}
	code := c.run(ctx, args[0], args[1:])
	if c.helped {
		// Help that was asked for is a successful run, whatever the
		// command answered after printing it (every --help, -h or help).
		return exitOK
	}
	return code
}

// run dispatches one command.
func (c *cli) run(ctx context.Context, cmd string, rest []string) int {
	switch cmd {
	case "serve":
		return c.serve(ctx, rest)
	case "migrate":
		return c.migrate(ctx, rest)
	case "users":
		return c.users(ctx, rest)
	case "keys":
		return c.keys(ctx, rest)
	case "clients":
		return c.clients(ctx, rest)
	case "apis":
		return c.apis(ctx, rest)
	case "encryption-key":
		return c.encryptionKey(rest)
	case "version":
		return c.version(rest)
	case "help":
		fmt.Fprint(c.env.Stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(c.env.Stderr, "gatehouse: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// cli carries what every command needs.
type cli struct {
	env        Env
	configFile string
	output     string
	// helped records that the command printed the help it was asked for
	// (--help, -h or help), so that Run exits 0 as the top level does.
	helped bool
}

// isHelp reports whether arg asks for help where a subcommand is expected.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// subcommandUsage handles a command that takes a subcommand (migrate,
// users, keys, clients, apis, encryption-key) called without one or with a
// request for help: help asked for goes to stdout, a missing subcommand is
// a usage error on stderr. It reports whether it handled args.
func (c *cli) subcommandUsage(args []string, text string) (int, bool) {
	if len(args) == 0 {
		fmt.Fprint(c.env.Stderr, text)
		return exitUsage, true
	}
	if isHelp(args[0]) {
		fmt.Fprint(c.env.Stdout, text)
		c.helped = true
		return exitOK, true
	}
	return 0, false
}

// flags parses a command's own flags and returns its positional
// arguments. Flags may come before or after positional arguments, and
// --config and --output are accepted after the command name too.
func (c *cli) flags(name string, args []string, define func(fs *flag.FlagSet)) ([]string, bool) {
	fs := flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError)
	fs.SetOutput(c.env.Stderr)
	// The usage is printed below, where it is known whether it was asked
	// for (stdout, exit 0) or follows a mistake (stderr, exit 2).
	fs.Usage = func() {}
	fs.StringVar(&c.configFile, "config", c.configFile, "YAML or TOML config file")
	fs.StringVar(&c.output, "output", c.output, "output format: text or json")
	if define != nil {
		define(fs)
	}
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage of gatehouse %s:\n", name)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(c.env.Stderr)
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage(c.env.Stdout)
				c.helped = true
			} else {
				printUsage(c.env.Stderr)
			}
			return nil, false
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if c.output != "text" && c.output != "json" {
		fmt.Fprintf(c.env.Stderr, "gatehouse %s: --output must be text or json\n", name)
		return nil, false
	}
	return positional, true
}

// load reads and validates the configuration, printing one line per
// problem to stderr.
func (c *cli) load() (*config.Config, *slog.Logger, bool) {
	cfg, warnings, err := config.Load(config.Source{File: c.configFile, Getenv: c.env.Getenv, Environ: c.env.Environ})
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fmt.Fprintln(c.env.Stderr, "gatehouse: invalid configuration:")
			for _, p := range cerr.Problems {
				fmt.Fprintln(c.env.Stderr, "  "+p)
			}
		} else {
			fmt.Fprintf(c.env.Stderr, "gatehouse: %v\n", err)
		}
		return nil, nil, false
	}
	level := cfg.Logging.Level
	if cfg.Logging.Debug {
		level = "debug"
	}
	log := logging.New(c.env.Stderr, level, cfg.Logging.Format)
	for _, w := range warnings {
		log.Warn(w)
	}
	return cfg, log, true
}

// versionJSON is what `gatehouse version --output json` prints.
type versionJSON struct {
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from, when the Go
	// toolchain recorded one; Modified marks a build with local changes.
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

func (c *cli) version(args []string) int {
	pos, ok := c.flags("version", args, nil)
	if !ok {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(c.env.Stderr, "gatehouse version: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	v := versionString()
	if c.output == "json" {
		out := versionJSON{Version: v, GoVersion: runtime.Version()}
		if info, ok := debug.ReadBuildInfo(); ok {
			out.Commit, out.Modified = vcsRevision(info)
		}
		return c.printJSON(out)
	}
	fmt.Fprintln(c.env.Stdout, "gatehouse "+v)
	return exitOK
}

// vcsRevision is the revision and modified flag the Go toolchain recorded.
func vcsRevision(info *debug.BuildInfo) (rev string, modified bool) {
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return rev, modified
}

// versionString is the -ldflags version, else the module version or VCS
// revision recorded by the Go toolchain.
func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, modified := vcsRevision(info)
	var dirty string
	if modified {
		dirty = "-dirty"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev + dirty
}
