// Package storetest is the conformance suite of the store contract. Every
// backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { … })
//	}
package storetest

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/migrate"
)

// RawExecer is implemented by backends that can run arbitrary SQL. The suite
// uses it to prove guarantees the database itself enforces, such as the
// append-only audit log, which the typed methods never even try to break.
type RawExecer interface {
	RawExec(ctx context.Context, sql string) error
}

// MigratorSource is implemented by backends whose migration runner can be
// pointed at other migration files. The suite uses it to exercise failure
// and rolling-deploy cases with migrations of its own.
type MigratorSource interface {
	MigratorFrom(fsys fs.FS) (*migrate.Runner, error)
}

// Run runs the suite. open must return a new store on a new, empty database
// (no migrations applied) and close it when the test ends (Close must be
// safe to call again). Every subtest opens its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	RunWith(t, Options{Open: open})
}

// Options are the hooks of RunWith.
type Options struct {
	// Open is Run's open: a new store on a new, empty database, closed
	// when the test ends. Required.
	Open func(t *testing.T) store.Store
	// OpenMigrated, if set, returns a new store on a new database that
	// already has the backend's migrations applied (say, a copy of a
	// migrated template), closed when the test ends. The subtests that
	// start from a migrated database use it instead of Open; the suite
	// still runs Migrator().Up on it, which must apply nothing new
	// without error. Without it they call Open and migrate.
	OpenMigrated func(t *testing.T) store.Store
}

// RunWith runs the suite with opts. Tests of the migrations themselves
// always start from opts.Open's empty database.
func RunWith(t *testing.T, opts Options) {
	open := opts.Open
	openMigrated := open
	if opts.OpenMigrated != nil {
		openMigrated = opts.OpenMigrated
	}
	migrated := migrated(openMigrated)
	t.Run("Ping", func(t *testing.T) { testPing(t, open(t)) })
	t.Run("Dialect", func(t *testing.T) { testDialect(t, open(t)) })
	t.Run("Migrations", func(t *testing.T) {
		t.Run("RoundTrip", func(t *testing.T) { testMigrationsRoundTrip(t, open(t)) })
		t.Run("ParallelUp", func(t *testing.T) {
			s := open(t)
			UpConcurrently(t, s, s, s, s, s, s, s, s)
		})
		t.Run("FailedMigrationRollsBack", func(t *testing.T) { testFailedMigration(t, open(t)) })
		t.Run("UnknownAppliedVersion", func(t *testing.T) { testUnknownVersion(t, open(t)) })
	})
	t.Run("Audit", func(t *testing.T) {
		t.Run("RoundTrip", func(t *testing.T) { testAuditRoundTrip(t, migrated(t)) })
		t.Run("Defaults", func(t *testing.T) { testAuditDefaults(t, migrated(t)) })
		t.Run("Invalid", func(t *testing.T) { testAuditInvalid(t, migrated(t)) })
		t.Run("DuplicateID", func(t *testing.T) { testAuditDuplicate(t, migrated(t)) })
		t.Run("OrderAndPages", func(t *testing.T) { testAuditPages(t, migrated(t)) })
		t.Run("Filters", func(t *testing.T) { testAuditFilters(t, migrated(t)) })
		t.Run("MalformedCursor", func(t *testing.T) { testAuditMalformedCursor(t, migrated(t)) })
		t.Run("AppendOnly", func(t *testing.T) { testAuditAppendOnly(t, migrated(t)) })
		t.Run("ConcurrentAppendsAndLimits", func(t *testing.T) { testAuditConcurrent(t, migrated(t)) })
	})
	t.Run("Users", func(t *testing.T) { runUsers(t, open, migrated) })
	t.Run("OneTimeTokens", func(t *testing.T) { runTokens(t, migrated) })
	t.Run("Transactions", func(t *testing.T) { runTx(t, migrated) })
	t.Run("SigningKeys", func(t *testing.T) { runSigningKeys(t, migrated) })
	t.Run("Sessions", func(t *testing.T) { runSessions(t, migrated) })
	t.Run("MFA", func(t *testing.T) { runMFA(t, migrated) })
	t.Run("Organizations", func(t *testing.T) { runOrgs(t, migrated) })
	t.Run("Identities", func(t *testing.T) { runIdentities(t, migrated) })
	t.Run("Revocation", func(t *testing.T) { runRevocation(t, migrated) })
	t.Run("APIs", func(t *testing.T) { runAPIs(t, migrated) })
	t.Run("Webhooks", func(t *testing.T) { runWebhooks(t, migrated) })
	t.Run("RiskProfiles", func(t *testing.T) { runRiskProfiles(t, migrated) })
	t.Run("Security", func(t *testing.T) { runSecurity(t, migrated) })
	t.Run("Authz", func(t *testing.T) { runAuthz(t, migrated) })
	t.Run("APIKeys", func(t *testing.T) { runAPIKeys(t, migrated) })
	t.Run("Passkeys", func(t *testing.T) { runPasskeys(t, migrated) })
}

func testPing(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Ping(canceled); err == nil {
		t.Error("Ping with a canceled context succeeded, want an error")
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after a canceled Ping: %v", err)
	}
	st := s.Stats()
	if st.MaxOpen <= 0 || st.Open < 0 || st.InUse < 0 || st.Idle < 0 {
		t.Errorf("Stats() = %+v, want MaxOpen > 0 and no negative figure", st)
	}

	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

func testDialect(t *testing.T, s store.Store) {
	if d := s.Dialect(); d != store.DialectPostgres && d != store.DialectSQLite {
		t.Errorf("Dialect() = %q, want %q or %q", d, store.DialectPostgres, store.DialectSQLite)
	}
}

// ignoreAppliedAt compares migrations without their timestamps, which
// checkAppliedAt checks on its own.
var ignoreAppliedAt = cmpopts.IgnoreFields(store.Migration{}, "AppliedAt")

func checkAppliedAt(t *testing.T, ms []store.Migration) {
	t.Helper()
	for _, m := range ms {
		if m.Applied != !m.AppliedAt.IsZero() || (m.Applied && m.AppliedAt.Location() != time.UTC) {
			t.Errorf("migration %d: Applied = %v, AppliedAt = %v; want a UTC AppliedAt exactly when applied", m.Version, m.Applied, m.AppliedAt)
		}
	}
}

func testMigrationsRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := s.Migrator()

	pending, err := m.Status(ctx)
	if err != nil {
		t.Fatalf("Status on an empty database: %v", err)
	}
	if len(pending) == 0 {
		t.Fatal("Status lists no migrations; the backend should embed at least 0001")
	}
	for i, p := range pending {
		if p.Version != i+1 || p.Name == "" || p.Applied || !p.AppliedAt.IsZero() || p.Unknown {
			t.Fatalf("Status on an empty database [%d] = %+v, want version %d, a name, not applied", i, p, i+1)
		}
	}
	if pending[0].Name != "audit_events" {
		t.Errorf("first migration is %q, want audit_events", pending[0].Name)
	}
	if _, err := m.Down(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Down with nothing applied: err = %v, want ErrNotFound", err)
	}

	all := make([]store.Migration, len(pending))
	for i, p := range pending {
		p.Applied = true
		all[i] = p
	}
	applied, err := m.Up(ctx)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if diff := cmp.Diff(all, applied, ignoreAppliedAt); diff != "" {
		t.Fatalf("Up applied (-want +got):\n%s", diff)
	}
	checkAppliedAt(t, applied)
	status, err := m.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if diff := cmp.Diff(applied, status); diff != "" {
		t.Errorf("Status after Up differs from what Up returned (-up +status):\n%s", diff)
	}

	again, err := m.Up(ctx)
	if err != nil || len(again) != 0 {
		t.Errorf("second Up = %v, %v; want nothing applied and no error", again, err)
	}

	for i := len(all) - 1; i >= 0; i-- {
		got, err := m.Down(ctx)
		if err != nil {
			t.Fatalf("Down #%d: %v", len(all)-i, err)
		}
		if got.Version != all[i].Version || got.Name != all[i].Name || got.Applied {
			t.Fatalf("Down #%d = %+v, want version %d %s, not applied", len(all)-i, got, all[i].Version, all[i].Name)
		}
		status, err := m.Status(ctx)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		for _, st := range status {
			if want := st.Version < all[i].Version; st.Applied != want {
				t.Fatalf("after rolling back %d, Status shows %d applied=%v", all[i].Version, st.Version, st.Applied)
			}
		}
	}
	if _, err := m.Down(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Down after rolling everything back: err = %v, want ErrNotFound", err)
	}
	if err := s.AppendAuditEvent(ctx, store.AuditEvent{Action: "test.after_down"}); err == nil {
		t.Error("AppendAuditEvent succeeded after the audit_events migration was rolled back")
	}

	reapplied, err := m.Up(ctx)
	if err != nil {
		t.Fatalf("Up after Down: %v", err)
	}
	if diff := cmp.Diff(all, reapplied, ignoreAppliedAt); diff != "" {
		t.Errorf("Up after Down applied (-want +got):\n%s", diff)
	}
	if err := s.AppendAuditEvent(ctx, store.AuditEvent{Action: "test.after_up"}); err != nil {
		t.Errorf("AppendAuditEvent after re-applying: %v", err)
	}
}

// UpConcurrently calls Migrator().Up on every store at once (pass the same
// store several times, or several stores on one database to play several
// nodes) and checks that every call succeeds and every migration is applied
// exactly once.
func UpConcurrently(t *testing.T, stores ...store.Store) {
	t.Helper()
	ctx := context.Background()
	results := make([][]store.Migration, len(stores))
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { results[i], errs[i] = s.Migrator().Up(ctx) })
	}
	wg.Wait()
	count := map[int]int{}
	for i := range stores {
		if errs[i] != nil {
			t.Errorf("concurrent Up #%d: %v", i, errs[i])
		}
		for _, m := range results[i] {
			count[m.Version]++
		}
	}
	status, err := stores[0].Migrator().Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	for _, m := range status {
		if !m.Applied {
			t.Errorf("after concurrent Up, migration %d is not applied", m.Version)
		}
		if count[m.Version] != 1 {
			t.Errorf("migration %d was applied %d times by %d concurrent Up calls, want once", m.Version, count[m.Version], len(stores))
		}
	}
}

func migratorFrom(t *testing.T, s store.Store, files fstest.MapFS) store.Migrator {
	t.Helper()
	src, ok := s.(MigratorSource)
	if !ok {
		t.Skipf("%T does not implement storetest.MigratorSource", s)
	}
	m, err := src.MigratorFrom(files)
	if err != nil {
		t.Fatalf("MigratorFrom: %v", err)
	}
	return m
}

func rawExec(t *testing.T, s store.Store) RawExecer {
	t.Helper()
	r, ok := s.(RawExecer)
	if !ok {
		t.Fatalf("%T does not implement storetest.RawExecer", s)
	}
	return r
}

func file(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }

// These migrations use SQL both dialects accept.
var (
	oneUp   = file("CREATE TABLE storetest_one (x INTEGER);")
	oneDown = file("DROP TABLE storetest_one;")
	twoUp   = file("CREATE TABLE storetest_two (x INTEGER);\nINSERT INTO storetest_two (x) VALUES (1);")
	twoDown = file("DROP TABLE storetest_two;")
	// badTwoUp creates a table, then fails: the table must not survive.
	badTwoUp = file("CREATE TABLE storetest_two (x INTEGER);\nINSERT INTO storetest_no_such_table (x) VALUES (1);")
)

func testFailedMigration(t *testing.T, s store.Store) {
	ctx := context.Background()
	bad := migratorFrom(t, s, fstest.MapFS{
		"0001_one.up.sql": oneUp, "0001_one.down.sql": oneDown,
		"0002_two.up.sql": badTwoUp, "0002_two.down.sql": twoDown,
	})
	applied, err := bad.Up(ctx)
	if err == nil {
		t.Fatal("Up with a failing migration succeeded")
	}
	if len(applied) != 1 || applied[0].Version != 1 {
		t.Errorf("Up with a failing second migration returned %+v, want only version 1", applied)
	}
	status, err := bad.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if len(status) != 2 || !status[0].Applied || status[1].Applied {
		t.Errorf("Status after a failed migration = %+v, want 1 applied, 2 pending", status)
	}
	// Creating the table again only works if the failed migration's
	// CREATE TABLE was rolled back with it.
	raw := rawExec(t, s)
	if err := raw.RawExec(ctx, "CREATE TABLE storetest_two (x INTEGER)"); err != nil {
		t.Fatalf("the failed migration left its table behind: %v", err)
	}
	if err := raw.RawExec(ctx, "DROP TABLE storetest_two"); err != nil {
		t.Fatal(err)
	}

	fixed := migratorFrom(t, s, fstest.MapFS{
		"0001_one.up.sql": oneUp, "0001_one.down.sql": oneDown,
		"0002_two.up.sql": twoUp, "0002_two.down.sql": twoDown,
	})
	applied, err = fixed.Up(ctx)
	if err != nil {
		t.Fatalf("Up after fixing the migration: %v", err)
	}
	if len(applied) != 1 || applied[0].Version != 2 {
		t.Errorf("Up after fixing the migration applied %+v, want only version 2", applied)
	}
}

func testUnknownVersion(t *testing.T, s store.Store) {
	ctx := context.Background()
	newer := migratorFrom(t, s, fstest.MapFS{
		"0001_one.up.sql": oneUp, "0001_one.down.sql": oneDown,
		"0002_two.up.sql": twoUp, "0002_two.down.sql": twoDown,
	})
	older := migratorFrom(t, s, fstest.MapFS{
		"0001_one.up.sql": oneUp, "0001_one.down.sql": oneDown,
	})
	if _, err := newer.Up(ctx); err != nil {
		t.Fatalf("newer Up: %v", err)
	}

	status, err := older.Status(ctx)
	if err != nil {
		t.Fatalf("older Status with a newer version applied: %v", err)
	}
	want := []store.Migration{
		{Version: 1, Name: "one", Applied: true},
		{Version: 2, Name: "two", Applied: true, Unknown: true},
	}
	if diff := cmp.Diff(want, status, ignoreAppliedAt); diff != "" {
		t.Errorf("older Status (-want +got):\n%s", diff)
	}
	checkAppliedAt(t, status)
	if applied, err := older.Up(ctx); err != nil || len(applied) != 0 {
		t.Errorf("older Up with a newer version applied = %+v, %v; want nothing applied, no error", applied, err)
	}
	if _, err := older.Down(ctx); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("older Down of a version it does not know: err = %v, want a non-ErrNotFound error", err)
	}
	if got, err := newer.Down(ctx); err != nil || got.Version != 2 {
		t.Fatalf("newer Down = %+v, %v; want version 2", got, err)
	}
	status, err = older.Status(ctx)
	if err != nil {
		t.Fatalf("older Status: %v", err)
	}
	if diff := cmp.Diff([]store.Migration{{Version: 1, Name: "one", Applied: true}}, status, ignoreAppliedAt); diff != "" {
		t.Errorf("older Status after the newer version was rolled back (-want +got):\n%s", diff)
	}
}
