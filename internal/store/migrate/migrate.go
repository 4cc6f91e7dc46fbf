// Package migrate runs versioned SQL migrations for the relational store
// backends. Migrations are pairs of files in an fs.FS:
//
//	0001_audit_events.up.sql
//	0001_audit_events.down.sql
//
// numbered from 1 without gaps or duplicates. Applied versions are recorded in
// a schema_migrations table (version, name, applied_at). Each migration runs
// in its own transaction together with its bookkeeping row, and every step
// holds the backend's migration lock, so several nodes may call Up at once.
//
// The runner is the same for every dialect; a backend supplies a small
// Driver that knows how to lock, how to run a script in a transaction and
// how to read and write the bookkeeping rows in its own SQL.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// Migration is one parsed up/down pair.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// Record is one bookkeeping row of schema_migrations.
type Record struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

// Driver is the dialect-specific part of the runner.
type Driver interface {
	// Locked runs fn in one transaction that holds the migration lock from
	// start to commit, so steps of concurrent runners never interleave. The
	// schema_migrations table exists when fn runs. The transaction commits
	// when fn returns nil and rolls back otherwise.
	Locked(ctx context.Context, fn func(Tx) error) error
}

// Tx is the transaction handed to the function given to Driver.Locked.
type Tx interface {
	// Exec runs a migration script, which may hold several statements.
	Exec(ctx context.Context, script string) error
	// Applied returns every bookkeeping row.
	Applied(ctx context.Context) ([]Record, error)
	// Insert adds a bookkeeping row.
	Insert(ctx context.Context, r Record) error
	// Delete removes the bookkeeping row of version.
	Delete(ctx context.Context, version int) error
}

var fileName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.(up|down)\.sql$`)

// Load reads and validates the migrations in the root directory of fsys.
// Files not ending in .sql are ignored; every .sql file must be named
// NNNN_name.up.sql or NNNN_name.down.sql (lower-case name, digits and
// underscores). Versions must run 1, 2, 3, … and each up needs a down of the
// same name.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: read migrations: %w", err)
	}
	type pair struct {
		name         string
		up, down     string
		upSet, dnSet bool
		file         string
	}
	byVersion := map[int]*pair{}
	var problems []error
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			problems = append(problems, fmt.Errorf("%s: name must look like 0001_name.up.sql or 0001_name.down.sql", e.Name()))
			continue
		}
		version, _ := strconv.Atoi(m[1]) // four digits: always parses
		if version < 1 {
			problems = append(problems, fmt.Errorf("%s: versions start at 0001", e.Name()))
			continue
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", e.Name(), err)
		}
		p := byVersion[version]
		if p == nil {
			p = &pair{name: m[2], file: e.Name()}
			byVersion[version] = p
		} else if p.name != m[2] {
			problems = append(problems, fmt.Errorf("%s: version %d is also used by %s", e.Name(), version, p.file))
			continue
		}
		switch m[3] {
		case "up":
			if p.upSet {
				problems = append(problems, fmt.Errorf("%s: duplicate up migration for version %d", e.Name(), version))
			}
			p.up, p.upSet = string(body), true
		case "down":
			if p.dnSet {
				problems = append(problems, fmt.Errorf("%s: duplicate down migration for version %d", e.Name(), version))
			}
			p.down, p.dnSet = string(body), true
		}
	}
	versions := make([]int, 0, len(byVersion))
	for v := range byVersion {
		versions = append(versions, v)
	}
	sort.Ints(versions)
	migrations := make([]Migration, 0, len(versions))
	for i, v := range versions {
		p := byVersion[v]
		if want := i + 1; v != want {
			problems = append(problems, fmt.Errorf("version %d (%s) follows version %d: numbering must have no gaps and start at 1", v, p.name, want-1))
		}
		if !p.upSet {
			problems = append(problems, fmt.Errorf("version %d (%s) has no up migration", v, p.name))
		}
		if !p.dnSet {
			problems = append(problems, fmt.Errorf("version %d (%s) has no down migration", v, p.name))
		}
		migrations = append(migrations, Migration{Version: v, Name: p.name, Up: p.up, Down: p.down})
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("migrate: invalid migrations: %w", errors.Join(problems...))
	}
	return migrations, nil
}

// Runner applies one dialect's migrations. It implements store.Migrator.
type Runner struct {
	driver     Driver
	migrations []Migration
	now        func() time.Time
}

var _ store.Migrator = (*Runner)(nil)

// New loads the migrations in fsys (see Load) and returns a runner that
// applies them through d.
func New(fsys fs.FS, d Driver) (*Runner, error) {
	ms, err := Load(fsys)
	if err != nil {
		return nil, err
	}
	return &Runner{driver: d, migrations: ms, now: time.Now}, nil
}

// Up applies every pending migration in order, each in its own locked
// transaction, and returns those this call applied. Versions applied by a
// newer binary are left alone. On failure it returns the migrations applied
// before the failing one together with the error; the failing migration is
// rolled back entirely.
func (r *Runner) Up(ctx context.Context) ([]store.Migration, error) {
	var done []store.Migration
	for {
		var applied *store.Migration
		err := r.driver.Locked(ctx, func(tx Tx) error {
			recs, err := tx.Applied(ctx)
			if err != nil {
				return fmt.Errorf("read applied migrations: %w", err)
			}
			have := make(map[int]bool, len(recs))
			for _, rec := range recs {
				have[rec.Version] = true
			}
			for _, m := range r.migrations {
				if have[m.Version] {
					continue
				}
				if err := tx.Exec(ctx, m.Up); err != nil {
					return fmt.Errorf("apply %04d_%s: %w", m.Version, m.Name, err)
				}
				at := r.now().UTC().Truncate(time.Microsecond)
				if err := tx.Insert(ctx, Record{Version: m.Version, Name: m.Name, AppliedAt: at}); err != nil {
					return fmt.Errorf("record %04d_%s: %w", m.Version, m.Name, err)
				}
				applied = &store.Migration{Version: m.Version, Name: m.Name, Applied: true, AppliedAt: at}
				return nil
			}
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("migrate up: %w", err)
		}
		if applied == nil {
			return done, nil
		}
		done = append(done, *applied)
	}
}

// Down rolls back the most recently applied migration (the highest applied
// version) and returns it. With nothing applied it returns store.ErrNotFound.
// A latest version this binary does not know (applied by a newer release) is
// an error: roll it back with the binary that applied it.
func (r *Runner) Down(ctx context.Context) (store.Migration, error) {
	var rolled store.Migration
	err := r.driver.Locked(ctx, func(tx Tx) error {
		recs, err := tx.Applied(ctx)
		if err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		if len(recs) == 0 {
			return fmt.Errorf("no migration applied: %w", store.ErrNotFound)
		}
		last := recs[0]
		for _, rec := range recs[1:] {
			if rec.Version > last.Version {
				last = rec
			}
		}
		m, ok := r.find(last.Version)
		if !ok {
			return fmt.Errorf("latest applied migration %04d_%s is unknown to this binary (applied by a newer release); roll it back with that release", last.Version, last.Name)
		}
		if err := tx.Exec(ctx, m.Down); err != nil {
			return fmt.Errorf("roll back %04d_%s: %w", m.Version, m.Name, err)
		}
		if err := tx.Delete(ctx, m.Version); err != nil {
			return fmt.Errorf("unrecord %04d_%s: %w", m.Version, m.Name, err)
		}
		rolled = store.Migration{Version: m.Version, Name: m.Name}
		return nil
	})
	if err != nil {
		return store.Migration{}, fmt.Errorf("migrate down: %w", err)
	}
	return rolled, nil
}

// Status lists every migration this binary knows, applied or not, followed by
// any version applied in the database that it does not know (Unknown set),
// all in version order.
func (r *Runner) Status(ctx context.Context) ([]store.Migration, error) {
	var recs []Record
	err := r.driver.Locked(ctx, func(tx Tx) error {
		var err error
		recs, err = tx.Applied(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	applied := make(map[int]Record, len(recs))
	for _, rec := range recs {
		applied[rec.Version] = rec
	}
	out := make([]store.Migration, 0, len(r.migrations)+len(recs))
	for _, m := range r.migrations {
		s := store.Migration{Version: m.Version, Name: m.Name}
		if rec, ok := applied[m.Version]; ok {
			s.Applied, s.AppliedAt = true, rec.AppliedAt.UTC()
			delete(applied, m.Version)
		}
		out = append(out, s)
	}
	for _, rec := range applied {
		out = append(out, store.Migration{Version: rec.Version, Name: rec.Name, Applied: true, AppliedAt: rec.AppliedAt.UTC(), Unknown: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func (r *Runner) find(version int) (Migration, bool) {
	for _, m := range r.migrations {
		if m.Version == version {
			return m, true
		}
	}
	return Migration{}, false
}
