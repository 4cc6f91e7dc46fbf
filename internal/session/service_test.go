package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testenv"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/token"
)

// countingHasher is a real hasher that counts the password checks it runs
// (Verify and DummyVerify alike) and the dummy ones among them.
type countingHasher struct {
	*password.Hasher
	checks, dummies atomic.Int64
}

func (h *countingHasher) Verify(ctx context.Context, pw, encoded string) (bool, bool, error) {
	h.checks.Add(1)
	return h.Hasher.Verify(ctx, pw, encoded)
}

func (h *countingHasher) DummyVerify(ctx context.Context, pw string) {
	h.checks.Add(1)
	h.dummies.Add(1)
	h.Hasher.DummyVerify(ctx, pw)
}

// fakeTokens issues opaque strings and records the sessions it was asked
// to deny.
type fakeTokens struct {
	n      atomic.Int64
	mu     sync.Mutex
	denied []string
}

func (f *fakeTokens) Issue(_ context.Context, ac token.AccessClaims) (string, time.Time, error) {
	return fmt.Sprintf("at-%d-%s", f.n.Add(1), ac.Subject), time.Now().Add(15 * time.Minute), nil
}
func (f *fakeTokens) DenySession(_ context.Context, id string, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denied = append(f.denied, id)
	return nil
}

func (f *fakeTokens) deniedSessions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.denied)
}
func (f *fakeTokens) RevokeIssuedBefore(context.Context, time.Time) error { return nil }

// noJobs accepts jobs and drops them.
type noJobs struct{}

func (noJobs) Insert(context.Context, river.JobArgs, *river.InsertOpts) (int64, error) { return 1, nil }
func (noJobs) InsertTx(context.Context, any, river.JobArgs, *river.InsertOpts) (int64, error) {
	return 1, nil
}

const goodPassword = "a perfectly fine passphrase 1"

// newTestService is a sign-in service on a fresh SQLite database and the
// ephemeral store st, with one verified user per address in emails (all
// with goodPassword).
func newTestService(t *testing.T, st kv.Store, lk LockoutConfig, emails ...string) (*Service, *countingHasher) {
	t.Helper()
	return newTestServiceOn(t, st, lk, nil, emails...)
}

// newTestServiceOn is newTestService whose transactions publish on bus.
func newTestServiceOn(t *testing.T, st kv.Store, lk LockoutConfig, bus *event.Bus, emails ...string) (*Service, *countingHasher) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	ks, _ := secret.GenerateKeyString("t1")
	kr, _ := secret.ParseKeys(ks)
	h := &countingHasher{Hasher: password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 4)}
	hash, err := h.Hasher.Hash(ctx, goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, e := range emails {
		if _, err := db.CreateUser(ctx, store.User{Email: e, EmailNormalized: e, PasswordHash: hash, Status: store.UserActive, EmailVerifiedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Deps{
		Store: event.Narrow(db, bus, func(tx event.Tx) Tx { return tx }), Hasher: h, Tokens: &fakeTokens{}, Keys: kr, KV: st, Jobs: noJobs{},
		Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Config: Config{AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour, Lockout: lk},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, h
}

// problemCode is the stable code of a problem error ("" for another error).
func problemCode(err error) string {
	var p *httpapi.Problem
	if errors.As(err, &p) {
		return p.Code
	}
	if errors.Is(err, ErrInvalidCredentials) {
		return "invalid_credentials"
	}
	return ""
}

// TestParallelLoginsFromOneIPAreCountedBeforeTheCheck fires wrong
// passwords at many addresses from one IP at once: no more of them than
// the IP limit may have their password checked, the rest are refused with
// too_many_attempts, and a refused attempt counts nothing against its
// subject.
func TestParallelLoginsFromOneIPAreCountedBeforeTheCheck(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, st kv.Store) {
		lk := DefaultLockout()
		lk.IPFailures = 10
		s, h := newTestService(t, st, lk, "victim@example.com")
		ctx := context.Background()
		const parallel = 60
		var mu sync.Mutex
		codes := map[string]int{}
		var wg sync.WaitGroup
		for i := range parallel {
			wg.Go(func() {
				_, err := s.Login(ctx, fmt.Sprintf("guess-%d@example.com", i), "wrong password", httpapi.Meta{IP: "2001:db8:5:5::" + fmt.Sprint(i+1)})
				mu.Lock()
				codes[problemCode(err)]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if got := h.checks.Load(); got != int64(lk.IPFailures) {
			t.Errorf("%d of %d parallel attempts from one /64 had their password checked, want the IP limit %d", got, parallel, lk.IPFailures)
		}
		if codes["invalid_credentials"] != lk.IPFailures || codes["too_many_attempts"] != parallel-lk.IPFailures {
			t.Errorf("answers %v, want %d invalid_credentials and the rest too_many_attempts", codes, lk.IPFailures)
		}

		// The blocked IP is refused even with the right password, without a
		// check, and without counting against the subject.
		checks := h.checks.Load()
		_, err := s.Login(ctx, "victim@example.com", goodPassword, httpapi.Meta{IP: "2001:db8:5:5::ffff"})
		if problemCode(err) != "too_many_attempts" || h.checks.Load() != checks {
			t.Errorf("right password from the blocked IP = %v (checks %d → %d), want too_many_attempts unchecked", err, checks, h.checks.Load())
		}
		if _, err := st.Get(ctx, "login:{"+s.lockSubject("victim@example.com")+"}:fail"); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("the refused attempt counted against its subject: %v", err)
		}
		if _, err := s.Login(ctx, "victim@example.com", goodPassword, httpapi.Meta{IP: "2001:db8:5:6::1"}); err != nil {
			t.Errorf("right password from another /64: %v", err)
		}
	})
}

// TestSuccessesDoNotChargeTheIP checks that the IP counter holds failures
// only: a correct password gives back the unit its attempt took, and an
// attempt refused by the account lock does not keep one either. (While
// they run, attempts do hold a unit each: more parallel sign-ins from one
// IP than its limit are refused, whatever their passwords.)
func TestSuccessesDoNotChargeTheIP(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, st kv.Store) {
		lk := DefaultLockout()
		lk.IPFailures, lk.Threshold = 3, 2
		s, _ := newTestService(t, st, lk, "ok@example.com", "locked@example.com")
		ctx := context.Background()
		m := httpapi.Meta{IP: "192.0.2.44"}
		for range 10 {
			if _, err := s.Login(ctx, "ok@example.com", goodPassword, m); err != nil {
				t.Fatalf("correct password: %v", err)
			}
		}
		// Two wrong passwords lock locked@example.com; the third is refused
		// by the lock and does not count against the IP.
		for i, want := range []string{"invalid_credentials", "invalid_credentials", "account_locked"} {
			if _, err := s.Login(ctx, "locked@example.com", "wrong password", m); problemCode(err) != want {
				t.Fatalf("attempt %d on locked@ = %v, want %s", i+1, err, want)
			}
		}
		if _, err := s.Login(ctx, "nobody@example.com", "wrong password", m); problemCode(err) != "invalid_credentials" {
			t.Fatalf("third failure from the IP = %v, want invalid_credentials (successes and lock refusals must not count)", err)
		}
		if _, err := s.Login(ctx, "ok@example.com", goodPassword, m); problemCode(err) != "too_many_attempts" {
			t.Errorf("after 3 failures from the IP = %v, want too_many_attempts", err)
		}
	})
}

// TestLoginHashesForAccountsWithoutAPassword checks that a sign-in on an
// account without a usable password hash (social or magic-link users)
// costs a password hash like any other: the dummy one.
func TestLoginHashesForAccountsWithoutAPassword(t *testing.T) {
	ctx := context.Background()
	st := memory.New(time.Now)
	defer st.Close()
	s, h := newTestService(t, st, DefaultLockout())
	for _, hash := range []string{"", "!", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"} {
		e := fmt.Sprintf("social-%d@example.com", len(hash))
		if _, err := s.Store.CreateUser(ctx, store.User{Email: e, EmailNormalized: e, PasswordHash: hash, Status: store.UserActive, EmailVerifiedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		before := h.dummies.Load()
		if _, err := s.Login(ctx, e, "any password at all", httpapi.Meta{IP: "192.0.2.80"}); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("hash %q: login = %v, want invalid_credentials", hash, err)
		}
		if h.dummies.Load() != before+1 {
			t.Errorf("hash %q: the login ran %d dummy hashes, want 1", hash, h.dummies.Load()-before)
		}
	}
	// As an unknown address does.
	before := h.dummies.Load()
	s.Login(ctx, "nobody@example.com", "any password at all", httpapi.Meta{IP: "192.0.2.80"})
	if h.dummies.Load() != before+1 {
		t.Error("an unknown address did not hash the dummy")
	}
}

// TestVerifyPasswordAppliesTheLockout checks the password confirmation of
// signed-in users: wrong guesses count towards the account's lock like
// wrong sign-ins, a locked account is refused without a check, and a
// right password resets the count.
func TestVerifyPasswordAppliesTheLockout(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, st kv.Store) {
		lk := DefaultLockout()
		lk.Threshold = 3
		s, h := newTestService(t, st, lk, "confirm@example.com")
		ctx := context.Background()
		u, err := s.Store.GetUserByEmail(ctx, "confirm@example.com")
		if err != nil {
			t.Fatal(err)
		}
		m := httpapi.Meta{IP: "192.0.2.90"}
		if err := s.VerifyPassword(ctx, u.ID, "wrong password", m); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("wrong password = %v", err)
		}
		if err := s.VerifyPassword(ctx, u.ID, goodPassword, m); err != nil {
			t.Fatalf("right password = %v", err)
		}
		// The success reset the count: three more wrong guesses lock.
		for i := range 3 {
			if err := s.VerifyPassword(ctx, u.ID, "wrong password", m); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("wrong password %d = %v", i+1, err)
			}
		}
		checks := h.checks.Load()
		if err := s.VerifyPassword(ctx, u.ID, goodPassword, m); problemCode(err) != "account_locked" {
			t.Errorf("right password on the locked account = %v, want account_locked", err)
		}
		if _, err := s.Login(ctx, "confirm@example.com", goodPassword, httpapi.Meta{IP: "192.0.2.91"}); problemCode(err) != "account_locked" {
			t.Errorf("sign-in after the wrong confirmations = %v, want account_locked", err)
		}
		if h.checks.Load() != checks {
			t.Error("a password was checked on the locked account")
		}
	})
}

// goneClient is a hasher during whose check the client goes away.
type goneClient struct {
	Hasher
	cancel context.CancelFunc
}

func (g goneClient) Verify(ctx context.Context, _, _ string) (bool, bool, error) {
	g.cancel()
	return false, false, ctx.Err()
}

// TestCancelledLoginIsRefundedToItsIP checks that a sign-in whose client
// went away during the password check (no answer known) does not stay
// charged to the IP: the refund does not use the request's context.
func TestCancelledLoginIsRefundedToItsIP(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, st kv.Store) {
		lk := DefaultLockout()
		lk.IPFailures = 2
		s, h := newTestService(t, st, lk, "gone@example.com")
		for range 3 {
			ctx, cancel := context.WithCancel(context.Background())
			s.Hasher = goneClient{h, cancel}
			if _, err := s.Login(ctx, "gone@example.com", goodPassword, httpapi.Meta{IP: "192.0.2.70"}); !errors.Is(err, context.Canceled) {
				t.Fatalf("login whose client went away = %v", err)
			}
		}
		s.Hasher = h
		if _, err := s.Login(context.Background(), "gone@example.com", goodPassword, httpapi.Meta{IP: "192.0.2.70"}); err != nil {
			t.Errorf("login after abandoned attempts = %v, want them refunded to the IP", err)
		}
	})
}

// TestParallelRightPasswordsAllSignIn fires 20 sign-ins with the right
// password at once, from one IP, with the default limits: all succeed,
// and the account is not locked afterwards. (The attempts are still
// counted before the check, Threshold at a time: see lockout.Counter.)
func TestParallelRightPasswordsAllSignIn(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, st kv.Store) {
		s, h := newTestService(t, st, DefaultLockout(), "burst@example.com")
		ctx := context.Background()
		m := httpapi.Meta{IP: "192.0.2.120"}
		var mu sync.Mutex
		codes := map[string]int{}
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				_, err := s.Login(ctx, "burst@example.com", goodPassword, m)
				mu.Lock()
				codes[problemCode(err)]++
				mu.Unlock()
				if err != nil && problemCode(err) == "" {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if codes[""] != 20 {
			t.Errorf("20 parallel right passwords: %v, want all 20 signed in", codes)
		}
		if h.checks.Load() != 20 {
			t.Errorf("%d passwords checked, want 20", h.checks.Load())
		}
		if _, err := s.Login(ctx, "burst@example.com", goodPassword, m); err != nil {
			t.Errorf("sign-in after the burst = %v", err)
		}
	})
}

// failingHasher fails every check with an error (a backend gone), as
// Verify does when its work cannot be done.
type failingHasher struct{ Hasher }

var errHasherDown = errors.New("hasher down")

func (failingHasher) Verify(context.Context, string, string) (bool, bool, error) {
	return false, false, errHasherDown
}

// TestErroredSignInsDoNotCountAsFailures checks that sign-ins ending in an
// error (no answer about the password) give their attempt back: more of
// them than the threshold neither lock the account nor use up its count.
func TestErroredSignInsDoNotCountAsFailures(t *testing.T) {
	testenv.EachKV(t, func(t *testing.T, st kv.Store) {
		lk := DefaultLockout()
		lk.Threshold = 2
		s, h := newTestService(t, st, lk, "flaky@example.com")
		ctx := context.Background()
		m := httpapi.Meta{IP: "192.0.2.121"}
		s.Hasher = failingHasher{h}
		for i := range 5 {
			if _, err := s.Login(ctx, "flaky@example.com", goodPassword, m); !errors.Is(err, errHasherDown) {
				t.Fatalf("sign-in %d with the hasher down = %v", i+1, err)
			}
		}
		s.Hasher = h
		if _, err := s.Login(ctx, "flaky@example.com", "wrong password", m); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("first wrong password = %v, want invalid_credentials", err)
		}
		if _, err := s.Login(ctx, "flaky@example.com", goodPassword, m); err != nil {
			t.Errorf("right password after errors and one failure = %v", err)
		}
	})
}
