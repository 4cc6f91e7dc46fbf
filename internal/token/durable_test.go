package token_test

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/internal/token"
)

// revokedSet is a set of tokens revoked in each way there is, and one that
// is not.
type revokedSet struct {
	loggedOut, clientRevoked, killed, control string
}

// revokeEveryWay issues tokens on m and revokes all but the control one:
// one by its session (logout), one by its jti (a client_credentials token
// revoked through /oauth2/revoke) and one by the kill switch.
func revokeEveryWay(t *testing.T, m *token.Manager, clk *clocktest.Clock) revokedSet {
	t.Helper()
	ctx := t.Context()
	var s revokedSet
	s.killed = issue(t, m, defaultClaims("killed"))
	clk.Advance(2 * time.Second)
	if err := m.RevokeIssuedBefore(ctx, clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	// Issued after the kill switch, so only their own revocation refuses
	// them.
	s.loggedOut = issue(t, m, defaultClaims("logged-out"))
	s.clientRevoked = issue(t, m, defaultClaims(""))
	s.control = issue(t, m, defaultClaims("live"))
	if err := m.DenySession(ctx, "logged-out", time.Time{}); err != nil {
		t.Fatal(err)
	}
	cc := mustVerify(t, m, s.clientRevoked)
	if err := m.DenyToken(ctx, cc.ID, cc.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	return s
}

// wantRevokedSet checks that m refuses the revoked tokens as invalid and
// accepts the control token.
func wantRevokedSet(t *testing.T, name string, m *token.Manager, s revokedSet) {
	t.Helper()
	for what, raw := range map[string]string{"logged out": s.loggedOut, "revoked by its client": s.clientRevoked, "cut off by the kill switch": s.killed} {
		if _, err := m.Verify(t.Context(), raw); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("%s: Verify of a token %s = %v, want ErrInvalid", name, what, err)
		}
	}
	mustVerify(t, m, s.control)
}

// TestRevocationSurvivesAnEmptyKVAfterRestart: the embedded default keeps
// its kv state in process, so every restart starts it empty. The deny list
// and the kill switch come back from the database before the first token
// is verified.
func TestRevocationSurvivesAnEmptyKVAfterRestart(t *testing.T) {
	clk := newClock()
	st, kr := sqliteStore(t), newKeyring(t)
	before := startManager(t, st, kr, memoryKV(t, clk), clk, baseConfig())
	s := revokeEveryWay(t, before, clk)
	wantRevokedSet(t, "before the restart", before, s)

	after := startManager(t, st, kr, memoryKV(t, clk), clk, baseConfig())
	wantRevokedSet(t, "after the restart", after, s)
	if got, want := after.RevokedBefore(), before.RevokedBefore(); !got.Equal(want) || got.IsZero() {
		t.Errorf("kill switch after the restart = %v, want %v", got, want)
	}
}

// TestRevocationSurvivesRedisLosingItsData: Redis restarted without
// persistence (here: every key of the installation deleted) while two
// nodes run, and a third starts after. No node accepts a revoked token at
// any moment; while the deny list is being rebuilt, every token is refused
// as unavailable (503), and afterwards the revoked ones are invalid again.
func TestRevocationSurvivesRedisLosingItsData(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	url, prefix := testenv.Redis(t)
	st, kr := postgresStore(t), newKeyring(t)
	kvs := []kv.Store{redisKVAt(t, url, prefix), redisKVAt(t, url, prefix), redisKVAt(t, url, prefix)}
	fast := func(m *token.Manager) { m.SetIntervals(time.Second, 50*time.Millisecond, 50*time.Millisecond) }
	a := startManager(t, st, kr, kvs[0], clk, baseConfig(), fast)
	b := startManager(t, st, kr, kvs[1], clk, baseConfig(), fast)
	s := revokeEveryWay(t, a, clk)
	eventually(t, "b holds the kill switch", func() bool { return b.RevokedBefore().Equal(a.RevokedBefore()) })
	wantRevokedSet(t, "a before the loss", a, s)
	wantRevokedSet(t, "b before the loss", b, s)

	if err := testenv.FlushRedisPrefix(ctx, url, prefix); err != nil {
		t.Fatal(err)
	}
	// Hold the rebuild, as another node in the middle of it would, to see
	// what the nodes answer meanwhile.
	if err := kvs[2].Set(ctx, token.DenyEpochKey, []byte(token.RebuildingPrefix+"other-node"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*token.Manager{"a": a, "b": b} {
		for _, raw := range []string{s.loggedOut, s.clientRevoked, s.killed, s.control} {
			_, err := m.Verify(ctx, raw)
			if !errors.Is(err, token.ErrUnavailable) && !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("%s during the rebuild: Verify = %v, want ErrUnavailable (or ErrInvalid), never valid", name, err)
			}
			if raw == s.control && !errors.Is(err, token.ErrUnavailable) {
				t.Errorf("%s during the rebuild: Verify of a valid token = %v, want ErrUnavailable", name, err)
			}
		}
	}
	// The other node died: its claim goes, and the nodes rebuild.
	if _, err := kvs[2].Delete(ctx, token.DenyEpochKey); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*token.Manager{"a": a, "b": b} {
		eventually(t, name+" accepts the valid token again", func() bool {
			_, err := m.Verify(ctx, s.control)
			return err == nil
		})
		wantRevokedSet(t, name+" after the rebuild", m, s)
	}
	c := startManager(t, st, kr, kvs[2], clk, baseConfig())
	wantRevokedSet(t, "c, started after the loss", c, s)

	// A second loss, with nobody holding the rebuild: the same.
	if err := testenv.FlushRedisPrefix(ctx, url, prefix); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{s.loggedOut, s.clientRevoked, s.killed} {
		if _, err := b.Verify(ctx, raw); err == nil {
			t.Fatal("a revoked token was accepted right after the second loss")
		}
	}
	eventually(t, "b accepts the valid token after the second loss", func() bool {
		_, err := b.Verify(ctx, s.control)
		return err == nil
	})
	wantRevokedSet(t, "b after the second loss", b, s)
}

// TestRevocationKVFromAnotherDatabase: a kv store whose marker names
// another database's epoch (a restored database, or two installations on
// one prefix) holds none of this database's denials: it is rebuilt too.
func TestRevocationKVFromAnotherDatabase(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	st, kr, state := sqliteStore(t), newKeyring(t), memoryKV(t, clk)
	m := startManager(t, st, kr, state, clk, baseConfig())
	s := revokeEveryWay(t, m, clk)
	if _, err := state.Delete(ctx, "token:deny:sid:logged-out"); err != nil {
		t.Fatal(err)
	}
	if err := state.Set(ctx, token.DenyEpochKey, []byte("another-database"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(ctx, s.loggedOut); !errors.Is(err, token.ErrUnavailable) {
		t.Fatalf("Verify with a foreign marker = %v, want ErrUnavailable", err)
	}
	eventually(t, "the deny list is rebuilt", func() bool {
		_, err := m.Verify(ctx, s.control)
		return err == nil
	})
	wantRevokedSet(t, "after the rebuild", m, s)
}

// TestKillSwitchNeverMovesBack: an earlier time than the stored one, from
// any node and even with the kv store emptied, changes nothing.
func TestKillSwitchNeverMovesBack(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	st, kr := sqliteStore(t), newKeyring(t)
	a := startManager(t, st, kr, memoryKV(t, clk), clk, baseConfig())
	later := clk.Now()
	if err := a.RevokeIssuedBefore(ctx, later); err != nil {
		t.Fatal(err)
	}
	b := startManager(t, st, kr, memoryKV(t, clk), clk, baseConfig())
	if err := b.RevokeIssuedBefore(ctx, later.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*token.Manager{"a": a, "b": b} {
		if got := m.RevokedBefore(); !got.Equal(later.Truncate(time.Microsecond)) {
			t.Errorf("%s kill switch = %v, want %v", name, got, later)
		}
	}
}

// TestKillSwitchFromThePreviousRelease: during a rolling upgrade a node of
// the previous release keeps the kill switch only in the kv store's set of
// times; a running node of this release carries it into the database and
// obeys it, and its own kill switch is added to that set for the old
// nodes.
func TestKillSwitchFromThePreviousRelease(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	st, kr, state := sqliteStore(t), newKeyring(t), memoryKV(t, clk)
	m := startManager(t, st, kr, state, clk, baseConfig(), func(m *token.Manager) {
		m.SetIntervals(time.Second, 20*time.Millisecond, time.Second)
	})
	old := issue(t, m, defaultClaims("s"))
	clk.Advance(2 * time.Second)
	cut := clk.Now()
	if _, err := state.SAdd(ctx, "token:revoke_before:times", strconv.FormatInt(cut.UnixMicro(), 10)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the old release's kill switch is obeyed", func() bool { return m.RevokedBefore().Equal(cut.Truncate(time.Microsecond)) })
	wantInvalid(t, m, old)
	if got, err := st.RevokeBefore(ctx); err != nil || !got.Equal(cut.Truncate(time.Microsecond)) {
		t.Errorf("kill switch in the database = %v, %v; want %v", got, err, cut)
	}

	later := cut.Add(time.Minute)
	if err := m.RevokeIssuedBefore(ctx, later); err != nil {
		t.Fatal(err)
	}
	members, err := state.SMembers(ctx, "token:revoke_before:times")
	if err != nil || !slices.Contains(members, strconv.FormatInt(later.UnixMicro(), 10)) {
		t.Errorf("kill-switch times for the previous release = %v, %v; want %d among them", members, err, later.UnixMicro())
	}
}
