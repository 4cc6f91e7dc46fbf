package maintenance_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/maintenance"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/internal/token"
)

// backend is a migrated store and a way to list the IDs in one of its
// tables, to see rows the typed methods no longer return.
type backend struct {
	store store.Store
	ids   func(t *testing.T, table string) []string
}

var backends = []struct {
	name string
	open func(t *testing.T) backend
}{
	{"sqlite", func(t *testing.T) backend {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		migrate(t, s)
		return backend{store: s, ids: func(t *testing.T, table string) []string {
			t.Helper()
			rows, err := s.Writer().QueryContext(t.Context(), "SELECT id FROM "+table)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			return scanIDs(t, rows)
		}}
	}},
	{"postgres", func(t *testing.T) backend {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		migrate(t, s)
		return backend{store: s, ids: func(t *testing.T, table string) []string {
			t.Helper()
			rows, err := s.Pool().Query(t.Context(), "SELECT id::text FROM "+table)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			return scanIDs(t, rows)
		}}
	}},
}

func migrate(t *testing.T, s store.Store) {
	t.Helper()
	if _, err := s.Migrator().Up(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// The cleanup deletes what ended more than Retention before now (sessions,
// one-time tokens), denials that have ended, and signing keys that have
// expired, and keeps everything else.
func TestWorkPurges(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testWorkPurges(t, b.open(t)) })
	}
}

func testWorkPurges(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.store
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	const day = 24 * time.Hour
	const justOver = maintenance.Retention + time.Hour
	const justUnder = maintenance.Retention - time.Hour

	want := map[string][2][]string{}
	note := func(table string, purged bool, id string) {
		w := want[table]
		if purged {
			w[0] = append(w[0], id)
		} else {
			w[1] = append(w[1], id)
		}
		want[table] = w
	}

	// Sessions: ended (expired or revoked) more than Retention ago go.
	user, err := s.CreateUser(ctx, store.User{Email: "u@example.com", EmailNormalized: "u@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	session := func(name string, created, expires, revoked time.Time, purged bool) {
		t.Helper()
		x, err := s.CreateSession(ctx,
			store.Session{UserID: user.ID, CreatedAt: created, ExpiresAt: expires, IP: "192.0.2.1", AMR: []string{"pwd"}},
			store.RefreshToken{TokenHash: hash("refresh " + name)})
		if err != nil {
			t.Fatalf("CreateSession(%s): %v", name, err)
		}
		if !revoked.IsZero() {
			if _, err := s.RevokeSession(ctx, x.ID, "test", revoked); err != nil {
				t.Fatalf("RevokeSession(%s): %v", name, err)
			}
		}
		note("sessions", purged, x.ID)
	}
	session("expired long ago", now.Add(-30*day), now.Add(-justOver), time.Time{}, true)
	session("expired lately", now.Add(-30*day), now.Add(-justUnder), time.Time{}, false)
	session("revoked long ago", now.Add(-30*day), now.Add(30*day), now.Add(-justOver), true)
	session("revoked lately", now.Add(-30*day), now.Add(30*day), now.Add(-justUnder), false)
	session("live", now.Add(-day), now.Add(30*day), time.Time{}, false)

	// One-time tokens: expired or consumed more than Retention ago go. A
	// new token supersedes the user's unconsumed ones of the same purpose,
	// so each gets its own user.
	ott := func(name string, created, expires, consumed time.Time, purged bool) {
		t.Helper()
		email := strings.ReplaceAll(name, " ", "-") + "@example.com"
		owner, err := s.CreateUser(ctx, store.User{Email: email, EmailNormalized: email})
		if err != nil {
			t.Fatal(err)
		}
		tok := store.OneTimeToken{ID: uuid.Must(uuid.NewV7()).String(), UserID: owner.ID, Purpose: store.PurposePasswordReset,
			TokenHash: hash("ott " + name), Email: email, CreatedAt: created, ExpiresAt: expires}
		if err := s.CreateOneTimeToken(ctx, tok); err != nil {
			t.Fatalf("CreateOneTimeToken(%s): %v", name, err)
		}
		if !consumed.IsZero() {
			if _, err := s.ConsumeOneTimeToken(ctx, tok.Purpose, tok.TokenHash, consumed); err != nil {
				t.Fatalf("ConsumeOneTimeToken(%s): %v", name, err)
			}
		}
		note("one_time_tokens", purged, tok.ID)
	}
	ott("expired long ago", now.Add(-30*day), now.Add(-justOver), time.Time{}, true)
	ott("expired lately", now.Add(-30*day), now.Add(-justUnder), time.Time{}, false)
	ott("consumed long ago", now.Add(-30*day), now.Add(day), now.Add(-justOver), true)
	ott("consumed lately", now.Add(-30*day), now.Add(day), now.Add(-justUnder), false)
	ott("live", now.Add(-time.Hour), now.Add(day), time.Time{}, false)

	// Denials go once they have ended.
	denial := func(kind, id string, until time.Time, purged bool) {
		t.Helper()
		if err := s.AddDenial(ctx, store.Denial{Kind: kind, ID: id, Until: until}); err != nil {
			t.Fatalf("AddDenial(%s): %v", id, err)
		}
		note("access_denials", purged, id)
	}
	denial(store.DenyToken, "jti-ended", now.Add(-time.Second), true)
	denial(store.DenySession, uuid.NewString(), now.Add(-day), true)
	denial(store.DenyToken, "jti-active", now.Add(time.Minute), false)
	denial(store.DenySession, uuid.NewString(), now.Add(day), false)

	// Signing keys go once they have expired.
	signingKey := func(id string, activated, retired, expires time.Time, purged bool) {
		t.Helper()
		err := s.CreateSigningKey(ctx, store.SigningKey{ID: id, Algorithm: "ES256", PrivateKey: "v1.test." + id + ".sealed",
			PublicKey: `{"kid":"` + id + `"}`, CreatedAt: activated, ActivatedAt: activated, RetiredAt: retired, ExpiresAt: expires})
		if err != nil {
			t.Fatalf("CreateSigningKey(%s): %v", id, err)
		}
		note("signing_keys", purged, id)
	}
	signingKey("key-expired", now.Add(-90*day), now.Add(-60*day), now.Add(-time.Second), true)
	signingKey("key-retired", now.Add(-60*day), now.Add(-time.Hour), now.Add(time.Hour), false)
	signingKey("key-current", now.Add(-time.Hour), time.Time{}, time.Time{}, false)

	keyString, err := secret.GenerateKeyString("test")
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := secret.ParseKeys(keyString)
	if err != nil {
		t.Fatal(err)
	}
	state := memory.New(clock)
	t.Cleanup(func() { state.Close() })
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	keys, err := token.NewManager(token.Config{Issuer: "https://auth.example.test", Algorithm: "ES256"}, s, keyring, state, log, clock)
	if err != nil {
		t.Fatal(err)
	}

	w := &maintenance.Worker{Store: s, Keys: keys, Now: clock, Log: log}
	if err := w.Work(ctx, nil); err != nil {
		t.Fatalf("Work: %v", err)
	}
	for table, w := range want {
		got := b.ids(t, table)
		for _, id := range w[0] {
			if slices.Contains(got, id) {
				t.Errorf("%s: %s was kept, want it purged", table, id)
			}
		}
		for _, id := range w[1] {
			if !slices.Contains(got, id) {
				t.Errorf("%s: %s was purged, want it kept", table, id)
			}
		}
	}
	for _, field := range []string{"sessions_purged=2", "one_time_tokens_purged=2", "signing_keys_purged=1", "denials_purged=2"} {
		if !strings.Contains(logs.String(), field) {
			t.Errorf("log %q does not report %s", logs.String(), field)
		}
	}

	// Nothing is left to purge at the same time.
	logs.Reset()
	if err := w.Work(ctx, nil); err != nil {
		t.Fatalf("second Work: %v", err)
	}
	if !strings.Contains(logs.String(), "sessions_purged=0 one_time_tokens_purged=0 signing_keys_purged=0 denials_purged=0") {
		t.Errorf("second run logged %q, want nothing purged", logs.String())
	}
}

// rows is what scanIDs needs of database/sql's and pgx's result sets.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanIDs reads a result set of one text column.
func scanIDs(t *testing.T, r rows) []string {
	t.Helper()
	var ids []string
	for r.Next() {
		var id string
		if err := r.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
