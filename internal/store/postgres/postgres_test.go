package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/jobs"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/storetest"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

func open(t *testing.T, cfg postgres.Config) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// migrated opens a store on cfg.URL, which should come from
// testenv.PostgresMigratedURL (or PostgresURL), and applies what is left
// of the migrations.
func migrated(t *testing.T, cfg postgres.Config) *postgres.Store {
	t.Helper()
	s := open(t, cfg)
	if _, err := s.Migrator().Up(context.Background()); err != nil {
		t.Fatalf("Up: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.RunWith(t, storetest.Options{
		Open: func(t *testing.T) store.Store {
			return open(t, postgres.Config{URL: testenv.PostgresURL(t), MaxConns: 8})
		},
		OpenMigrated: func(t *testing.T) store.Store {
			return open(t, postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 8})
		},
	})
}

// Several nodes starting at once all run Up against one database.
func TestUpFromSeveralNodes(t *testing.T) {
	url := testenv.PostgresURL(t)
	var nodes []store.Store
	for range 4 {
		nodes = append(nodes, open(t, postgres.Config{URL: url, MaxConns: 2}))
	}
	storetest.UpConcurrently(t, nodes...)
}

func TestTruncateRejected(t *testing.T) {
	s := migrated(t, postgres.Config{URL: testenv.PostgresMigratedURL(t)})
	ctx := context.Background()
	if err := s.AppendAuditEvent(ctx, store.AuditEvent{Action: "test.kept"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RawExec(ctx, "TRUNCATE audit_events"); err == nil {
		t.Error("TRUNCATE audit_events succeeded, want the append-only trigger to reject it")
	}
	events, _, err := s.ListAuditEvents(ctx, store.AuditFilter{})
	if err != nil || len(events) != 1 {
		t.Errorf("after TRUNCATE: %d events, %v; want 1", len(events), err)
	}
}

func TestOpenInvalid(t *testing.T) {
	ctx := context.Background()
	if _, err := postgres.Open(ctx, postgres.Config{}); err == nil {
		t.Error("Open without URL succeeded")
	}
	if _, err := postgres.Open(ctx, postgres.Config{URL: "postgres://u:secret@host:notaport/db"}); err == nil {
		t.Error("Open with a malformed URL succeeded")
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q reveals the password", err)
	}
	if _, err := postgres.Open(ctx, postgres.Config{URL: closedURL(t)}); err == nil {
		t.Error("Open with an unreachable primary succeeded")
	}
}

// closedURL returns a URL to a local port nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "postgres://postgres@" + addr + "/gatehouse?sslmode=disable&connect_timeout=5"
}

// Reads go to replicas, round-robin, and fall back to the primary when a
// replica does not answer. Each "replica" here is a separate database with
// its own marker event, so a read shows where it went.
func TestReplicaRouting(t *testing.T) {
	ctx := context.Background()
	primaryURL, replicaA, replicaB := testenv.PostgresMigratedURL(t), testenv.PostgresMigratedURL(t), testenv.PostgresMigratedURL(t)
	for url, marker := range map[string]string{primaryURL: "primary", replicaA: "replica-a", replicaB: "replica-b"} {
		s := migrated(t, postgres.Config{URL: url})
		if err := s.AppendAuditEvent(ctx, store.AuditEvent{Action: "test.marker", SubjectID: marker}); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	readFrom := func(t *testing.T, s *postgres.Store) string {
		t.Helper()
		events, _, err := s.ListAuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatalf("ListAuditEvents: %v", err)
		}
		for _, e := range events {
			if e.Action == "test.marker" {
				return e.SubjectID
			}
		}
		t.Fatalf("no marker among %d events", len(events))
		return ""
	}
	down := closedURL(t)

	for _, tc := range []struct {
		name     string
		replicas []string
		want     []string // where successive reads go
	}{
		{"no replicas", nil, []string{"primary", "primary"}},
		{"one replica", []string{replicaA}, []string{"replica-a", "replica-a", "replica-a"}},
		{"round robin", []string{replicaA, replicaB}, []string{"replica-a", "replica-b", "replica-a", "replica-b"}},
		{"replica down", []string{down}, []string{"primary", "primary"}},
		{"one of two down", []string{down, replicaB}, []string{"replica-b", "replica-b", "replica-b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, postgres.Config{URL: primaryURL, ReplicaURLs: tc.replicas})
			for i, want := range tc.want {
				if got := readFrom(t, s); got != want {
					t.Errorf("read %d went to %s, want %s", i, got, want)
				}
			}
			// Writes always go to the primary.
			subject := "written-" + strings.ReplaceAll(tc.name, " ", "-")
			if err := s.AppendAuditEvent(ctx, store.AuditEvent{Action: "test.write", SubjectID: subject}); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE subject_id = $1", subject).Scan(&n); err != nil || n != 1 {
				t.Errorf("write on the primary: count %d, err %v; want 1", n, err)
			}
		})
	}
}

// With a replica configured, the user lookups of login and token flows
// still read the primary (they must see their own writes), ListUsers reads
// the replica, and inside a transaction everything reads the transaction.
// The "replica" is a separate database holding other users, so a read
// shows where it went.
func TestUserReadRouting(t *testing.T) {
	ctx := context.Background()
	primaryURL, replicaURL := testenv.PostgresMigratedURL(t), testenv.PostgresMigratedURL(t)
	seed := func(url, email string) store.User {
		s := migrated(t, postgres.Config{URL: url})
		defer s.Close()
		u, err := s.CreateUser(ctx, store.User{Email: email, EmailNormalized: email})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AppendAuditEvent(ctx, store.AuditEvent{Action: "test.marker", SubjectID: email}); err != nil {
			t.Fatal(err)
		}
		return u
	}
	onPrimary := seed(primaryURL, "primary@example.com")
	seed(replicaURL, "replica@example.com")
	s := open(t, postgres.Config{URL: primaryURL, ReplicaURLs: []string{replicaURL}})

	if _, err := s.GetUser(ctx, onPrimary.ID); err != nil {
		t.Errorf("GetUser did not read the primary: %v", err)
	}
	if _, err := s.GetUserForUpdate(ctx, onPrimary.ID); err != nil {
		t.Errorf("GetUserForUpdate did not read the primary: %v", err)
	}
	if _, err := s.GetUserByEmail(ctx, "primary@example.com"); err != nil {
		t.Errorf("GetUserByEmail did not read the primary: %v", err)
	}
	listed := func(t *testing.T, st store.Store) (user, event string) {
		t.Helper()
		users, _, err := st.ListUsers(ctx, store.UserFilter{})
		if err != nil || len(users) != 1 {
			t.Fatalf("ListUsers = %d users, %v; want 1", len(users), err)
		}
		events, _, err := st.ListAuditEvents(ctx, store.AuditFilter{})
		if err != nil || len(events) != 1 {
			t.Fatalf("ListAuditEvents = %d events, %v; want 1", len(events), err)
		}
		return users[0].EmailNormalized, events[0].SubjectID
	}
	if user, event := listed(t, s); user != "replica@example.com" || event != "replica@example.com" {
		t.Errorf("outside a transaction the listings read %s and %s, want the replica", user, event)
	}
	err := s.InTx(ctx, func(tx store.Store) error {
		if user, event := listed(t, tx); user != "primary@example.com" || event != "primary@example.com" {
			t.Errorf("inside a transaction the listings read %s and %s, want the transaction", user, event)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type welcomeArgs struct {
	UserID string `json:"user_id"`
}

func (welcomeArgs) Kind() string { return "store_test_welcome" }

// DriverTx is what the job queue's InsertTx takes: a job enqueued in InTx
// exists exactly when the transaction's writes commit.
func TestEnqueueInTx(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, postgres.Config{URL: testenv.PostgresMigratedURL(t)})
	q, err := jobs.NewPostgres(s.Pool(), nil, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{false, true} {
		email := fmt.Sprintf("commit-%v@example.com", commit)
		err := s.InTx(ctx, func(tx store.Store) error {
			u, err := tx.CreateUser(ctx, store.User{Email: email, EmailNormalized: email})
			if err != nil {
				return err
			}
			if _, err := q.InsertTx(ctx, tx.DriverTx(), welcomeArgs{UserID: u.ID}, nil); err != nil {
				return err
			}
			if !commit {
				return errors.New("roll back")
			}
			return nil
		})
		if commit != (err == nil) {
			t.Fatalf("InTx(commit %v): %v", commit, err)
		}
	}
	var n int
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'store_test_welcome'").Scan(&n); err != nil || n != 1 {
		t.Errorf("jobs after one committed and one rolled-back transaction: %d, %v; want 1", n, err)
	}
}

// Text PostgreSQL cannot hold that reaches a query anyway is the caller's
// mistake (ErrInvalidText, a 4xx), not a failure of the store.
func TestInvalidTextIsErrInvalidText(t *testing.T) {
	s := migrated(t, postgres.Config{URL: testenv.PostgresMigratedURL(t)})
	for _, email := range []string{"a\x00b@example.com", "a\xffb@example.com", "caf\xc3"} {
		if _, err := s.GetUserByEmail(context.Background(), email); !errors.Is(err, store.ErrInvalidText) {
			t.Errorf("GetUserByEmail(%q) = %v, want ErrInvalidText", email, err)
		}
	}
}
