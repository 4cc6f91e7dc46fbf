package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/user"
)

const usersUsage = `Usage:
  gatehouse users create --email EMAIL --password-stdin [--name NAME] [--admin] [--verified]
  gatehouse users import FILE.jsonl

create   makes an account; the password is read from standard input (one line).
import   reads one JSON object a line: email, password_hash (argon2id PHC, bcrypt
         or Django pbkdf2_sha256), optional email_verified, name, metadata. Bad
         lines are reported with their number; nothing of a bad line is written.
`

// userService builds the account use cases for a CLI command, against the
// same storage as a running server.
func (c *cli) userService(ctx context.Context, cfg *config.Config, log *slog.Logger) (*user.Service, func(), error) {
	keys, err := loadKeyring(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	db, st, closeAll, err := c.openForCLI(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	queue, err := db.newQueue(nil, jobsConfig(cfg, log, false))
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	policy, closePolicy, err := newPolicy(cfg, log)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	// Accounts made here are events like any other: the webhook outbox
	// records them in the same transaction.
	bus := event.NewBus()
	d := &deps{cfg: cfg, log: log, db: db, state: st, keys: keys, queue: queue, hasher: newHasher(cfg), policy: policy, bus: bus}
	hooks, err := newWebhookService(d)
	if err != nil {
		closePolicy()
		closeAll()
		return nil, nil, err
	}
	event.SubscribeAll(bus, func(ctx context.Context, tx event.Tx, e event.Event) error { return hooks.Record(ctx, tx, e) })
	subscribeAdminGrant(bus)
	svc, err := newUserService(d, nil)
	if err != nil {
		closePolicy()
		closeAll()
		return nil, nil, err
	}
	return svc, func() { closePolicy(); closeAll() }, nil
}

func (c *cli) users(ctx context.Context, args []string) int {
	if code, done := c.subcommandUsage(args, usersUsage); done {
		return code
	}
	switch args[0] {
	case "create":
		return c.usersCreate(ctx, args[1:])
	case "import":
		return c.usersImport(ctx, args[1:])
	default:
		fmt.Fprintf(c.env.Stderr, "gatehouse users: unknown subcommand %q\n\n%s", args[0], usersUsage)
		return exitUsage
	}
}

func (c *cli) usersCreate(ctx context.Context, args []string) int {
	var in user.NewUser
	var passwordStdin bool
	if _, ok := c.flags("users create", args, func(fs *flag.FlagSet) {
		fs.StringVar(&in.Email, "email", "", "email address (required)")
		fs.StringVar(&in.Name, "name", "", "display name")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (required)")
		fs.BoolVar(&in.Admin, "admin", false, "make the user an administrator")
		fs.BoolVar(&in.Verified, "verified", false, "mark the email address verified")
	}); !ok {
		return exitUsage
	}
	if in.Email == "" || !passwordStdin {
		fmt.Fprint(c.env.Stderr, "gatehouse users create: --email and --password-stdin are required\n\n"+usersUsage)
		return exitUsage
	}
	pw, err := readPassword(c.env.Stdin)
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "gatehouse users create: %v\n", err)
		return exitUsage
	}
	in.Password = pw
	cfg, log, ok := c.load()
	if !ok {
		return exitConfig
	}
	svc, closeAll, err := c.userService(ctx, cfg, log)
	if err != nil {
		return c.failed(log, "cannot open storage", err)
	}
	defer closeAll()
	u, err := svc.Create(ctx, in, httpapi.Meta{UserAgent: "gatehouse-cli"})
	if err != nil {
		return c.printFailure("users create", err)
	}
	if c.output == "json" {
		return c.printJSON(user.ProfileOf(u))
	}
	fmt.Fprintf(c.env.Stdout, "created user %s <%s>%s%s\n", u.ID, u.Email, flagNote(in.Admin, " admin"), flagNote(in.Verified, " verified"))
	return exitOK
}

func flagNote(on bool, s string) string {
	if on {
		return s
	}
	return ""
}

// readPassword reads one line from r; it never echoes it.
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no standard input")
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

// printFailure reports a domain error (validation problems field by field).
func (c *cli) printFailure(cmd string, err error) int {
	var p *httpapi.Problem
	if errors.As(err, &p) {
		if c.output == "json" {
			c.printJSON(p)
			return exitError
		}
		fmt.Fprintf(c.env.Stderr, "gatehouse %s: %s\n", cmd, p.Detail)
		for _, fe := range p.Errors {
			fmt.Fprintf(c.env.Stderr, "  %s: %s (%s)\n", fe.Field, fe.Message, fe.Rule)
		}
		return exitError
	}
	fmt.Fprintf(c.env.Stderr, "gatehouse %s: %v\n", cmd, err)
	return exitError
}

func (c *cli) usersImport(ctx context.Context, args []string) int {
	pos, ok := c.flags("users import", args, nil)
	if !ok {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprint(c.env.Stderr, "gatehouse users import: give exactly one FILE.jsonl (- for standard input)\n\n"+usersUsage)
		return exitUsage
	}
	var r io.Reader = c.env.Stdin
	if name := pos[0]; name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(c.env.Stderr, "gatehouse users import: %v\n", err)
			return exitError
		}
		defer f.Close()
		r = f
	}
	cfg, log, ok := c.load()
	if !ok {
		return exitConfig
	}
	svc, closeAll, err := c.userService(ctx, cfg, log)
	if err != nil {
		return c.failed(log, "cannot open storage", err)
	}
	defer closeAll()
	res, err := svc.Import(ctx, r, httpapi.Meta{UserAgent: "gatehouse-cli"})
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "gatehouse users import: %v\n", err)
		return exitError
	}
	code := exitOK
	if len(res.Failed) > 0 {
		code = exitError
	}
	if c.output == "json" {
		c.printJSON(res)
		return code
	}
	for _, f := range res.Failed {
		fmt.Fprintf(c.env.Stderr, "line %d: %s\n", f.Line, f.Error)
	}
	fmt.Fprintf(c.env.Stdout, "imported %d users, %d lines failed\n", res.Imported, len(res.Failed))
	return code
}
