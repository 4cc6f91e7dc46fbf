package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/store"
)

func runRiskProfiles(t *testing.T, migrated func(t *testing.T) store.Store) {
	t.Run("PutGet", func(t *testing.T) { testRiskProfilePutGet(t, migrated(t)) })
	t.Run("Invalid", func(t *testing.T) { testRiskProfileInvalid(t, migrated(t)) })
	t.Run("Cascade", func(t *testing.T) { testRiskProfileCascade(t, migrated(t)) })
	t.Run("InTx", func(t *testing.T) { testRiskProfileInTx(t, migrated(t)) })
	t.Run("ParallelPuts", func(t *testing.T) { testRiskProfileParallel(t, migrated(t)) })
	t.Run("SessionColumns", func(t *testing.T) { testSessionRisk(t, migrated(t)) })
}

var riskAt = time.Date(2034, 5, 6, 7, 8, 9, 123456789, time.UTC)

func mustRiskProfile(t *testing.T, s store.Store, userID string) store.RiskProfile {
	t.Helper()
	p, err := s.GetRiskProfile(context.Background(), userID)
	if err != nil {
		t.Fatalf("GetRiskProfile(%s): %v", userID, err)
	}
	return p
}

func testRiskProfilePutGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := mustCreateUser(t, s, newUser("alice@example.com"))
	bob := mustCreateUser(t, s, newUser("bob@example.com"))

	if _, err := s.GetRiskProfile(ctx, alice.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRiskProfile before any Put: %v, want ErrNotFound", err)
	}
	// The document comes back byte for byte, key order and spacing kept.
	doc := []byte(`{"sign_ins": 3, "countries": {"FR": {"n": 3, "last": "2034-05-06T07:08:09Z"}}, "a": [1.5, "é"]}`)
	if err := s.PutRiskProfile(ctx, store.RiskProfile{UserID: alice.ID, Profile: doc, UpdatedAt: riskAt}); err != nil {
		t.Fatalf("PutRiskProfile: %v", err)
	}
	want := store.RiskProfile{UserID: alice.ID, Profile: doc, UpdatedAt: micro(riskAt)}
	if diff := gocmp.Diff(want, mustRiskProfile(t, s, alice.ID)); diff != "" {
		t.Fatalf("GetRiskProfile (-want +got):\n%s", diff)
	}
	// Put replaces; a zero UpdatedAt is now.
	doc2 := []byte(`{"sign_ins":4}`)
	if err := s.PutRiskProfile(ctx, store.RiskProfile{UserID: alice.ID, Profile: doc2}); err != nil {
		t.Fatalf("PutRiskProfile (update): %v", err)
	}
	got := mustRiskProfile(t, s, alice.ID)
	if string(got.Profile) != string(doc2) || got.UserID != alice.ID {
		t.Errorf("after the update: %+v, want profile %s", got, doc2)
	}
	checkNow(t, "UpdatedAt", got.UpdatedAt)
	// A user ID in another spelling names the same user.
	upper := strings.ToUpper(alice.ID)
	if p, err := s.GetRiskProfile(ctx, upper); err != nil || p.UserID != alice.ID {
		t.Errorf("GetRiskProfile(%s) = %+v, %v; want alice's", upper, p, err)
	}
	// Users do not meet.
	if _, err := s.GetRiskProfile(ctx, bob.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's profile: %v, want ErrNotFound", err)
	}
	if err := s.PutRiskProfile(ctx, store.RiskProfile{UserID: bob.ID, Profile: []byte(`{}`), UpdatedAt: riskAt}); err != nil {
		t.Fatal(err)
	}
	if string(mustRiskProfile(t, s, alice.ID).Profile) != string(doc2) || string(mustRiskProfile(t, s, bob.ID).Profile) != `{}` {
		t.Error("one user's Put changed another's profile")
	}
}

func testRiskProfileInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := mustCreateUser(t, s, newUser("alice@example.com"))
	for _, bad := range []string{"", "[]", `"x"`, "nope", `{"a":`, "{\"a\":\"\x00\"}", "{\"a\":\"\xff\"}"} {
		err := s.PutRiskProfile(ctx, store.RiskProfile{UserID: alice.ID, Profile: []byte(bad)})
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("PutRiskProfile(%q) = %v, want a validation error", bad, err)
		}
	}
	if _, err := s.GetRiskProfile(ctx, alice.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after refused Puts: %v, want ErrNotFound", err)
	}
	for _, id := range []string{uuid.NewString(), "", "not-a-uuid", "\x00"} {
		if err := s.PutRiskProfile(ctx, store.RiskProfile{UserID: id, Profile: []byte(`{}`)}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PutRiskProfile for user %q: %v, want ErrNotFound", id, err)
		}
		if _, err := s.GetRiskProfile(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRiskProfile(%q): %v, want ErrNotFound", id, err)
		}
	}
}

func testRiskProfileCascade(t *testing.T, s store.Store) {
	ctx := context.Background()
	gone := mustCreateUser(t, s, newUser("gone@example.com"))
	kept := mustCreateUser(t, s, newUser("kept@example.com"))
	for _, u := range []store.User{gone, kept} {
		if err := s.PutRiskProfile(ctx, store.RiskProfile{UserID: u.ID, Profile: []byte(`{"sign_ins":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rawExec(t, s).RawExec(ctx, "DELETE FROM users WHERE id = '"+gone.ID+"'"); err != nil {
		t.Fatalf("delete user: %v", err)
	}
	if _, err := s.GetRiskProfile(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("profile of a deleted user: %v, want ErrNotFound", err)
	}
	mustRiskProfile(t, s, kept.ID)
}

func testRiskProfileInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := mustCreateUser(t, s, newUser("alice@example.com"))
	if err := s.PutRiskProfile(ctx, store.RiskProfile{UserID: alice.ID, Profile: []byte(`{"v":1}`), UpdatedAt: riskAt}); err != nil {
		t.Fatal(err)
	}
	rollback := errors.New("roll back")
	err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.PutRiskProfile(ctx, store.RiskProfile{UserID: alice.ID, Profile: []byte(`{"v":2}`)}); err != nil {
			return err
		}
		if p, err := tx.GetRiskProfile(ctx, alice.ID); err != nil || string(p.Profile) != `{"v":2}` {
			t.Errorf("GetRiskProfile in the transaction = %s, %v; want its own write", p.Profile, err)
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("InTx = %v, want the rollback error", err)
	}
	if p := mustRiskProfile(t, s, alice.ID); string(p.Profile) != `{"v":1}` || !p.UpdatedAt.Equal(micro(riskAt)) {
		t.Errorf("after the rollback: %s at %v, want the first profile", p.Profile, p.UpdatedAt)
	}
}

// testRiskProfileParallel: concurrent first Puts of one user's profile
// (two sign-ins at once) never clash; one of them is kept whole.
func testRiskProfileParallel(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := mustCreateUser(t, s, newUser("alice@example.com"))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.PutRiskProfile(ctx, store.RiskProfile{UserID: alice.ID, Profile: fmt.Appendf(nil, `{"writer":%d}`, i)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("parallel PutRiskProfile: %v", err)
		}
	}
	p := mustRiskProfile(t, s, alice.ID)
	var writer int
	if _, err := fmt.Sscanf(string(p.Profile), `{"writer":%d}`, &writer); err != nil || writer < 0 || writer >= n {
		t.Errorf("profile after parallel Puts = %s, want one writer's", p.Profile)
	}
}

// testSessionRisk: the location and risk columns of sessions, on every
// path that writes or returns a session.
func testSessionRisk(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := mustCreateUser(t, s, newUser("risk@example.com"))

	// Not scored: Risk stays nil; scored 0 without reasons is not nil.
	plain, _ := newSession(t, s, user.ID, riskAt, time.Hour)
	if plain.Risk != nil || plain.Country != "" || plain.City != "" || plain.ASN != 0 {
		t.Errorf("session without location or risk = %+v", plain)
	}
	zero, tok := mustCreateSession(t, s,
		store.Session{UserID: user.ID, CreatedAt: riskAt, ExpiresAt: riskAt.Add(time.Hour), Risk: &store.SessionRisk{}},
		store.RefreshToken{TokenHash: refreshHash()})
	want := &store.SessionRisk{Score: 0}
	if diff := gocmp.Diff(want, zero.Risk); diff != "" {
		t.Errorf("Risk scored 0 (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(want, mustGetSession(t, s, zero.ID).Risk); diff != "" {
		t.Errorf("GetSession Risk scored 0 (-want +got):\n%s", diff)
	}

	// A rotation and a revocation keep them.
	scored, tok := mustCreateSession(t, s,
		store.Session{
			UserID: user.ID, CreatedAt: riskAt, ExpiresAt: riskAt.Add(time.Hour), Country: "FR", City: "Paris", ASN: 3215,
			Risk: &store.SessionRisk{Score: 100, Reasons: []string{"blocklisted_ip", "tor_exit"}},
		},
		store.RefreshToken{TokenHash: refreshHash()})
	res, err := s.RotateRefreshToken(ctx, store.RotateRequest{
		PresentedHash: tok.TokenHash, Next: store.RefreshToken{TokenHash: refreshHash()}, SealedNext: "sealed", Now: riskAt.Add(time.Minute),
		LastSeenIP: "198.51.100.1",
	})
	if err != nil || res.Outcome != store.Rotated {
		t.Fatalf("RotateRefreshToken = %v, %v", res.Outcome, err)
	}
	for what, got := range map[string]store.Session{"rotated": res.Session, "stored": mustGetSession(t, s, scored.ID)} {
		if got.Country != "FR" || got.City != "Paris" || got.ASN != 3215 || !gocmp.Equal(got.Risk, scored.Risk) {
			t.Errorf("%s session = %q %q %d %+v, want %q %q %d %+v", what, got.Country, got.City, got.ASN, got.Risk,
				scored.Country, scored.City, scored.ASN, scored.Risk)
		}
	}
	list, err := s.ListUserSessions(ctx, user.ID, riskAt.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range list {
		if x.ID == scored.ID {
			found = true
			if !gocmp.Equal(x.Risk, scored.Risk) || x.ASN != 3215 {
				t.Errorf("listed session risk %+v, ASN %d", x.Risk, x.ASN)
			}
		}
	}
	if !found {
		t.Errorf("ListUserSessions does not list %s", scored.ID)
	}

	// Invalid values are refused, and nothing is written.
	for name, x := range map[string]store.Session{
		"score above 100": {Risk: &store.SessionRisk{Score: 101}},
		"negative score":  {Risk: &store.SessionRisk{Score: -1}},
		"empty reason":    {Risk: &store.SessionRisk{Score: 10, Reasons: []string{""}}},
		"reason with NUL": {Risk: &store.SessionRisk{Score: 10, Reasons: []string{"a\x00"}}},
		"country":         {Country: "\xff"},
		"city":            {City: "a\x00b"},
	} {
		x.UserID, x.CreatedAt, x.ExpiresAt = user.ID, riskAt, riskAt.Add(time.Hour)
		before := count(t, s, "SELECT count(*) FROM sessions")
		if _, err := s.CreateSession(ctx, x, store.RefreshToken{TokenHash: refreshHash()}); err == nil ||
			errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: CreateSession = %v, want a validation error", name, err)
		}
		if after := count(t, s, "SELECT count(*) FROM sessions"); after != before {
			t.Errorf("%s: %d sessions after a refused CreateSession, want %d", name, after, before)
		}
	}
	// The caller's Risk is not changed by the store.
	r := &store.SessionRisk{Score: 5}
	if _, err := s.CreateSession(ctx, store.Session{UserID: user.ID, ExpiresAt: riskAt.Add(time.Hour), Risk: r},
		store.RefreshToken{TokenHash: refreshHash()}); err != nil {
		t.Fatal(err)
	}
	if r.Reasons != nil {
		t.Errorf("CreateSession changed the caller's Risk: %+v", r)
	}
}
