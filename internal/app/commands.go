package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/gatehouse/gatehouse/internal/jobs"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

const migrateUsage = `Usage: gatehouse migrate up|down|status

  up      apply every pending migration (Gatehouse's, then the job queue's)
  down    roll back the most recent Gatehouse migration (one step)
  status  list migrations and whether each is applied
`

func (c *cli) migrate(ctx context.Context, args []string) int {
	if code, done := c.subcommandUsage(args, migrateUsage); done {
		return code
	}
	sub := args[0]
	if _, ok := c.flags("migrate "+sub, args[1:], nil); !ok {
		return exitUsage
	}
	if sub != "up" && sub != "down" && sub != "status" {
		fmt.Fprintf(c.env.Stderr, "gatehouse migrate: unknown subcommand %q\n\n%s", sub, migrateUsage)
		return exitUsage
	}
	cfg, log, ok := c.load()
	if !ok {
		return exitConfig
	}
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		log.Error("cannot open the database", "error", err.Error())
		return exitError
	}
	defer db.Close()

	switch sub {
	case "up":
		before, err := db.store.Migrator().Status(ctx)
		if err == nil {
			err = migrateUp(ctx, db, log)
		}
		if err != nil {
			log.Error("migration failed", "error", err.Error())
			return exitError
		}
		after, err := db.store.Migrator().Status(ctx)
		if err != nil {
			log.Error("migration status", "error", err.Error())
			return exitError
		}
		return c.printMigrations(newlyApplied(before, after), "applied")
	case "down":
		m, err := db.store.Migrator().Down(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return c.printMigrations(nil, "rolled back")
		}
		if err != nil {
			log.Error("rollback failed", "error", err.Error())
			return exitError
		}
		return c.printMigrations([]store.Migration{m}, "rolled back")
	default:
		list, err := db.store.Migrator().Status(ctx)
		if err != nil {
			log.Error("migration status", "error", err.Error())
			return exitError
		}
		q, err := db.newQueue(nil, jobs.Config{Logger: log})
		if err != nil {
			log.Error("job queue", "error", err.Error())
			return exitError
		}
		river, err := q.MigrateStatus(ctx)
		if err != nil {
			log.Error("job queue migration status", "error", err.Error())
			return exitError
		}
		return c.printStatus(db.store.Dialect(), list, river)
	}
}

func newlyApplied(before, after []store.Migration) []store.Migration {
	was := map[int]bool{}
	for _, m := range before {
		was[m.Version] = m.Applied
	}
	var out []store.Migration
	for _, m := range after {
		if m.Applied && !was[m.Version] {
			out = append(out, m)
		}
	}
	return out
}

type migrationJSON struct {
	Version   int        `json:"version"`
	Name      string     `json:"name"`
	Applied   bool       `json:"applied"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	// Unknown marks a migration applied by a newer release.
	Unknown bool `json:"unknown,omitempty"`
}

func toJSON(list []store.Migration) []migrationJSON {
	out := make([]migrationJSON, 0, len(list))
	for _, m := range list {
		j := migrationJSON{Version: m.Version, Name: m.Name, Applied: m.Applied, Unknown: m.Unknown}
		if !m.AppliedAt.IsZero() {
			t := m.AppliedAt.UTC()
			j.AppliedAt = &t
		}
		out = append(out, j)
	}
	return out
}

func (c *cli) printMigrations(list []store.Migration, verb string) int {
	if c.output == "json" {
		return c.printJSON(map[string]any{verb: toJSON(list)})
	}
	if len(list) == 0 {
		fmt.Fprintf(c.env.Stdout, "nothing to do: no migration %s\n", verb)
		return exitOK
	}
	for _, m := range list {
		fmt.Fprintf(c.env.Stdout, "%s %04d_%s\n", verb, m.Version, m.Name)
	}
	return exitOK
}

func (c *cli) printStatus(dialect string, list []store.Migration, river jobs.MigrationStatus) int {
	if c.output == "json" {
		return c.printJSON(map[string]any{
			"database":   dialect,
			"migrations": toJSON(list),
			"job_queue":  map[string]any{"current": river.Current, "latest": river.Latest, "pending": river.Pending},
		})
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "database: %s\n\nVERSION\tNAME\tSTATUS\tAPPLIED AT\n", dialect)
	for _, m := range list {
		status, at := "pending", ""
		if m.Applied {
			status, at = "applied", m.AppliedAt.UTC().Format(time.RFC3339)
		}
		if m.Unknown {
			status = "applied by a newer release"
		}
		fmt.Fprintf(tw, "%04d\t%s\t%s\t%s\n", m.Version, m.Name, status, at)
	}
	fmt.Fprintf(tw, "\njob queue schema: version %d of %d", river.Current, river.Latest)
	if len(river.Pending) > 0 {
		fmt.Fprintf(tw, " (pending: %v)", river.Pending)
	}
	fmt.Fprintln(tw)
	tw.Flush()
	return exitOK
}

func (c *cli) printJSON(v any) int {
	enc := json.NewEncoder(c.env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(c.env.Stderr, "gatehouse: %v\n", err)
		return exitError
	}
	return exitOK
}

const encryptionKeyUsage = "Usage: gatehouse encryption-key generate [--id KEY_ID]\n\nPrints a new <key-id>:<base64> key. Put it first in GATEHOUSE_ENCRYPTION_KEYS to make it current; keep older keys after it until every secret has been re-encrypted.\n"

func (c *cli) encryptionKey(args []string) int {
	if code, done := c.subcommandUsage(args, encryptionKeyUsage); done {
		return code
	}
	if args[0] != "generate" {
		fmt.Fprint(c.env.Stderr, encryptionKeyUsage)
		return exitUsage
	}
	var id string
	if _, ok := c.flags("encryption-key generate", args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "k"+time.Now().UTC().Format("20060102150405"), "key id ([A-Za-z0-9_-], up to 32 characters)")
	}); !ok {
		return exitUsage
	}
	key, err := secret.GenerateKeyString(id)
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "gatehouse encryption-key generate: %v\n", err)
		return exitUsage
	}
	if c.output == "json" {
		return c.printJSON(map[string]string{"key": key})
	}
	fmt.Fprintln(c.env.Stdout, key)
	return exitOK
}
