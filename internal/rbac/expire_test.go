package rbac_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/rbac"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// expireStores open a migrated store of each backend.
var expireStores = map[string]func(t *testing.T) store.Store{
	"sqlite": func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrator().Up(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	},
	"postgres": func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// TestRoleExpired: the job records one role.expired event per grant whose
// window ended within the lookback, however often and on however many
// nodes it runs, and none for a grant still valid or long expired.
func TestRoleExpired(t *testing.T) {
	for name, open := range expireStores {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			s := open(t)
			now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
			u, err := s.CreateUser(ctx, store.User{Email: "e@example.com", EmailNormalized: "e@example.com", Status: store.UserActive})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreatePermission(ctx, store.Permission{Name: "reports:read"}); err != nil {
				t.Fatal(err)
			}
			role, err := s.CreateRole(ctx, store.Role{Name: "reporter", Allow: []store.RolePermission{{Permission: "reports:read"}}})
			if err != nil {
				t.Fatal(err)
			}
			grant := func(until time.Time) store.RoleGrant {
				g, err := s.CreateGrant(ctx, store.RoleGrant{UserID: u.ID, RoleID: role.ID, ValidUntil: until})
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			expired := grant(now.Add(-time.Minute))
			grant(now.Add(time.Minute))                      // still valid
			grant(now.Add(-rbac.ExpireLookback - time.Hour)) // recorded long ago, or never
			grant(time.Time{})                               // never expires

			clock := now
			w := &rbac.ExpireWorker{Store: s, Now: func() time.Time { return clock }}
			for run := range 3 {
				n, err := w.Run(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[bool]int{true: 1, false: 0}[run == 0]; n != want {
					t.Fatalf("run %d recorded %d expiries, want %d", run, n, want)
				}
			}
			events, _, err := s.ListAuditEvents(ctx, store.AuditFilter{SubjectID: u.ID})
			if err != nil {
				t.Fatal(err)
			}
			var got []store.AuditEvent
			for _, e := range events {
				if e.Action == "role.expired" {
					got = append(got, e)
				}
			}
			if len(got) != 1 {
				t.Fatalf("%d role.expired events, want 1: %+v", len(got), got)
			}
			if d := got[0].Data; d["grant_id"] != expired.ID || d["role"] != "reporter" || !got[0].OccurredAt.Equal(expired.ValidUntil) {
				t.Errorf("role.expired event = %+v, want grant %s of reporter at %v", got[0], expired.ID, expired.ValidUntil)
			}
			// Two minutes later the second grant has expired too.
			clock = now.Add(2 * time.Minute)
			if n, err := w.Run(ctx); err != nil || n != 1 {
				t.Fatalf("run after the second expiry = %d, %v; want 1", n, err)
			}
		})
	}
}
