package passkey

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/passkey/passkeytest"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

const (
	rpID   = "login.example.com"
	origin = "https://login.example.com"
)

var rp = virtualwebauthn.RelyingParty{ID: rpID, Name: "Gatehouse", Origin: origin}

// signIns stands for the session service: it runs the check and
// "starts" a session carrying the amr it proved.
type signIns struct{}

func (signIns) SignInWithPasskey(_ context.Context, u store.User, check func() ([]string, bool, error), _ httpapi.Meta) (session.Result, error) {
	amr, ok, err := check()
	if err != nil {
		return session.Result{}, err
	}
	if !ok {
		return session.Result{}, session.ErrInvalidCredentials
	}
	return session.Result{User: u, Session: store.Session{UserID: u.ID, AMR: amr}}, nil
}

// capturedJobs keeps the mail enqueued.
type capturedJobs struct {
	mu   sync.Mutex
	args []mail.SendArgs
}

func (c *capturedJobs) InsertTx(_ context.Context, tx any, args river.JobArgs, _ *river.InsertOpts) (int64, error) {
	if tx == nil {
		return 0, errors.New("job enqueued outside a transaction")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.args = append(c.args, args.(mail.SendArgs))
	return int64(len(c.args)), nil
}

func (c *capturedJobs) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.args)
}

// testLog writes the service's log to the test's.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type env struct {
	t    *testing.T
	st   store.Store
	svc  *Service
	jobs *capturedJobs
	kr   *secret.Keyring

	mu        sync.Mutex
	published []event.Event
}

func newEnv(t *testing.T, st store.Store, tweak ...func(*Config)) *env {
	t.Helper()
	ks, _ := secret.GenerateKeyString("t1")
	kr, _ := secret.ParseKeys(ks)
	e := &env{t: t, st: st, jobs: &capturedJobs{}, kr: kr}
	bus := event.NewBus()
	event.SubscribeAll(bus, func(_ context.Context, _ event.Tx, ev event.Event) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.published = append(e.published, ev)
		return nil
	})
	mem := memory.New(time.Now)
	t.Cleanup(func() { mem.Close() })
	cfg := Config{RPID: rpID, RPName: "Gatehouse", Origins: []string{origin}}
	for _, f := range tweak {
		f(&cfg)
	}
	svc, err := New(Deps{
		Config: cfg, Store: event.Narrow(st, bus, func(tx event.Tx) Tx { return tx }), KV: mem,
		Sessions: signIns{}, Keys: kr, Jobs: e.jobs, Log: slog.New(slog.NewTextHandler(testLog{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

func (e *env) user(name string, password bool) store.User {
	e.t.Helper()
	email := name + "-" + uuid.NewString()[:8] + "@example.com"
	u := store.User{Email: email, EmailNormalized: email, Name: name, EmailVerifiedAt: time.Now()}
	if password {
		u.PasswordHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
	}
	u, err := e.st.CreateUser(e.t.Context(), u)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// recent is a principal of u who just signed in.
func recent(u store.User) auth.Principal {
	return auth.Principal{UserID: u.ID, SessionID: uuid.NewString(), AuthTime: time.Now()}
}

// device is a software authenticator holding one credential of a user.
type device struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newDevice(t *testing.T, u store.User, opts virtualwebauthn.AuthenticatorOptions) *device {
	id := uuid.MustParse(u.ID)
	opts.UserHandle = id[:]
	d := &device{auth: virtualwebauthn.NewAuthenticatorWithOptions(opts), cred: passkeytest.NewCredential(t)}
	return d
}

// register runs a registration of d for u through the service.
func (e *env) register(u store.User, d *device, name string) (store.Passkey, error) {
	e.t.Helper()
	b, err := e.svc.BeginRegistration(e.t.Context(), recent(u))
	if err != nil {
		e.t.Fatal(err)
	}
	opts, err := virtualwebauthn.ParseAttestationOptions(string(b.Options))
	if err != nil {
		e.t.Fatalf("attestation options %s: %v", b.Options, err)
	}
	resp := virtualwebauthn.CreateAttestationResponse(rp, d.auth, d.cred, *opts)
	pk, err := e.svc.FinishRegistration(e.t.Context(), recent(u), b.Token, json.RawMessage(resp), name, httpapi.Meta{})
	if err == nil {
		d.auth.AddCredential(d.cred)
	}
	return pk, err
}

// assert answers assertion options with d's credential as the relying
// party r.
func assert(t *testing.T, r virtualwebauthn.RelyingParty, d *device, options json.RawMessage) json.RawMessage {
	t.Helper()
	opts, err := virtualwebauthn.ParseAssertionOptions(string(options))
	if err != nil {
		t.Fatalf("assertion options %s: %v", options, err)
	}
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(r, d.auth, d.cred, *opts))
}

// signIn runs a passwordless sign-in with d (a discoverable credential,
// no email) as the relying party r.
func (e *env) signIn(r virtualwebauthn.RelyingParty, d *device) (session.Result, error) {
	e.t.Helper()
	b, err := e.svc.BeginLogin(e.t.Context(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	return e.svc.FinishLogin(e.t.Context(), b.Token, assert(e.t, r, d, b.Options), httpapi.Meta{IP: "192.0.2.1"})
}

func (e *env) cloneEvents() []event.PasskeyCloned {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []event.PasskeyCloned
	for _, ev := range e.published {
		if c, ok := ev.(event.PasskeyCloned); ok {
			out = append(out, c)
		}
	}
	return out
}

// TestRegisterAndSignIn: a software authenticator registers a passkey
// and signs in with it without a password; the amr tells a device-bound
// key with user verification, and a synced one says swk.
func TestRegisterAndSignIn(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice", true)
		d := newDevice(t, alice, virtualwebauthn.AuthenticatorOptions{})
		pk, err := e.register(alice, d, "Laptop")
		if err != nil {
			t.Fatal(err)
		}
		if pk.Name != "Laptop" || pk.UserID != alice.ID || len(pk.CredentialID) == 0 || !pk.UserVerified || pk.BackupEligible {
			t.Fatalf("registered %+v", pk)
		}
		if e.jobs.count() != 1 {
			t.Errorf("%d notices after registration, want 1", e.jobs.count())
		}
		res, err := e.signIn(rp, d)
		if err != nil {
			t.Fatal(err)
		}
		if res.User.ID != alice.ID || !slices.Equal(res.Session.AMR, []string{"hwk", "user", "mfa"}) {
			t.Fatalf("signed in %s with amr %v", res.User.ID, res.Session.AMR)
		}
		list, err := e.svc.List(t.Context(), alice.ID)
		if err != nil || len(list) != 1 || list[0].LastUsedAt.IsZero() {
			t.Fatalf("list %+v %v", list, err)
		}

		// A synced passkey without user verification: swk, one factor.
		bob := e.user("bob", true)
		synced := newDevice(t, bob, virtualwebauthn.AuthenticatorOptions{BackupEligible: true, BackupState: true, UserNotVerified: true})
		if _, err := e.register(bob, synced, ""); err != nil {
			t.Fatal(err)
		}
		res, err = e.signIn(rp, synced)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Session.AMR, []string{"swk"}) {
			t.Fatalf("synced passkey without verification: amr %v", res.Session.AMR)
		}
		v := ViewOf(mustList(t, e, bob.ID)[0])
		if !v.Synced || v.DeviceBound || v.Name != "Passkey 1" {
			t.Errorf("view of the synced passkey %+v", v)
		}
	})
}

func mustList(t *testing.T, e *env, userID string) []store.Passkey {
	t.Helper()
	l, err := e.svc.List(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRefusals: a replayed assertion, a wrong origin, a wrong RP ID, an
// unknown credential and another user's credential are refused alike.
func TestRefusals(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice, bob := e.user("alice", true), e.user("bob", true)
		da, db := newDevice(t, alice, virtualwebauthn.AuthenticatorOptions{}), newDevice(t, bob, virtualwebauthn.AuthenticatorOptions{})
		for _, x := range []struct {
			u store.User
			d *device
		}{{alice, da}, {bob, db}} {
			if _, err := e.register(x.u, x.d, ""); err != nil {
				t.Fatal(err)
			}
		}

		// Replayed: the same answer to the same ceremony, then to another.
		b, _ := e.svc.BeginLogin(t.Context(), "")
		answer := assert(t, rp, da, b.Options)
		if _, err := e.svc.FinishLogin(t.Context(), b.Token, answer, httpapi.Meta{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.FinishLogin(t.Context(), b.Token, answer, httpapi.Meta{}); !errors.Is(err, ErrInvalidCeremony) {
			t.Errorf("the same ceremony finished twice: %v", err)
		}
		b2, _ := e.svc.BeginLogin(t.Context(), "")
		if _, err := e.svc.FinishLogin(t.Context(), b2.Token, answer, httpapi.Meta{}); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("a replayed assertion on a new ceremony: %v, want ErrInvalidPasskey", err)
		}

		// Wrong origin and wrong RP ID.
		for name, r := range map[string]virtualwebauthn.RelyingParty{
			"origin": {ID: rpID, Name: "x", Origin: "https://login.example.com.evil.test"},
			"rp id":  {ID: "evil.test", Name: "x", Origin: origin},
		} {
			if _, err := e.signIn(r, da); !errors.Is(err, ErrInvalidPasskey) {
				t.Errorf("wrong %s: %v, want ErrInvalidPasskey", name, err)
			}
		}

		// Unknown credential.
		stranger := newDevice(t, alice, virtualwebauthn.AuthenticatorOptions{})
		stranger.auth.AddCredential(stranger.cred)
		if _, err := e.signIn(rp, stranger); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("unknown credential: %v", err)
		}

		// Bob's credential answering an assertion bound to Alice.
		alicePKs := mustList(t, e, alice.ID)
		opts, err := e.svc.AssertionOptions(t.Context(), alice, alicePKs, "mfa:x")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, err := e.svc.VerifyAssertion(t.Context(), alice, alicePKs, "mfa:x", assert(t, rp, db, opts), httpapi.Meta{}); ok || err != nil {
			t.Errorf("another user's credential passed: %v %v", ok, err)
		}
		// … and Alice's, with the bind of another ceremony.
		opts, _ = e.svc.AssertionOptions(t.Context(), alice, alicePKs, "mfa:y")
		if _, ok, _ := e.svc.VerifyAssertion(t.Context(), alice, alicePKs, "mfa:z", assert(t, rp, da, opts), httpapi.Meta{}); ok {
			t.Error("an assertion passed under another bind")
		}
		if amr, ok, err := e.svc.VerifyAssertion(t.Context(), alice, alicePKs, "mfa:y", assert(t, rp, da, opts), httpapi.Meta{}); !ok || err != nil || !slices.Contains(amr, "mfa") {
			t.Errorf("Alice's own answer: %v %v %v", amr, ok, err)
		}

		// A credential registered to another user cannot be registered.
		if _, err := e.register(bob, da, ""); !errors.Is(err, ErrCredentialTaken) {
			t.Errorf("registering Alice's credential for Bob: %v, want ErrCredentialTaken", err)
		}
	})
}

// TestParallelFinish: of parallel finishes of one ceremony, one signs in.
func TestParallelFinish(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice", true)
		d := newDevice(t, alice, virtualwebauthn.AuthenticatorOptions{})
		if _, err := e.register(alice, d, ""); err != nil {
			t.Fatal(err)
		}
		b, _ := e.svc.BeginLogin(t.Context(), "")
		answer := assert(t, rp, d, b.Options)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Go(func() {
				if _, err := e.svc.FinishLogin(context.Background(), b.Token, answer, httpapi.Meta{}); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d parallel finishes signed in, want 1", wins)
		}
	})
}

// TestSignCountBackwards: an assertion whose counter went backwards is
// refused, flags the passkey (refused from then on), tells the user and
// publishes the security event, once.
func TestSignCountBackwards(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice", true)
		d := newDevice(t, alice, virtualwebauthn.AuthenticatorOptions{})
		d.cred.Counter = 1
		if _, err := e.register(alice, d, "Key"); err != nil {
			t.Fatal(err)
		}
		d.cred.Counter = 10
		if _, err := e.signIn(rp, d); err != nil {
			t.Fatal(err)
		}
		if pk := mustList(t, e, alice.ID)[0]; pk.SignCount != 10 {
			t.Fatalf("sign count %d after the sign-in, want 10", pk.SignCount)
		}
		mails := e.jobs.count()
		d.cred.Counter = 4 // a copy that fell behind
		if _, err := e.signIn(rp, d); !errors.Is(err, ErrInvalidPasskey) {
			t.Fatalf("backwards sign count: %v, want ErrInvalidPasskey", err)
		}
		pk := mustList(t, e, alice.ID)[0]
		if pk.ClonedAt.IsZero() {
			t.Fatal("the passkey was not flagged")
		}
		if e.jobs.count() != mails+1 {
			t.Errorf("%d mails after the clone, want 1", e.jobs.count()-mails)
		}
		if c := e.cloneEvents(); len(c) != 1 || c[0].PasskeyID != pk.ID || c[0].StoredCount != 10 || c[0].PresentedCount != 4 {
			t.Errorf("clone events %+v", c)
		}
		// Refused from then on, even with a counter ahead; told once.
		d.cred.Counter = 50
		if _, err := e.signIn(rp, d); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("a flagged passkey signed in: %v", err)
		}
		if len(e.cloneEvents()) != 1 || e.jobs.count() != mails+1 {
			t.Error("told twice")
		}
		if !ViewOf(pk).PossiblyCloned {
			t.Error("the view hides the flag")
		}
	})
}

// TestRemoveAndRename: removing needs a recent authentication and is
// refused for the last way to sign in; renaming tells the user.
func TestRemoveAndRename(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		carol := e.user("carol", false) // no password, no identity
		d := newDevice(t, carol, virtualwebauthn.AuthenticatorOptions{})
		pk, err := e.register(carol, d, "Phone")
		if err != nil {
			t.Fatal(err)
		}
		old := auth.Principal{UserID: carol.ID, AuthTime: time.Now().Add(-time.Hour)}
		if err := e.svc.Remove(t.Context(), old, pk.ID, httpapi.Meta{}); !errors.Is(err, auth.ErrReauthRequired) {
			t.Errorf("removal on an old authentication: %v", err)
		}
		if err := e.svc.Remove(t.Context(), recent(carol), pk.ID, httpapi.Meta{}); !errors.Is(err, ErrLastSignInMethod) {
			t.Errorf("removing the last way to sign in: %v", err)
		}
		second := newDevice(t, carol, virtualwebauthn.AuthenticatorOptions{})
		if _, err := e.register(carol, second, "Key"); err != nil {
			t.Fatal(err)
		}
		renamed, err := e.svc.Rename(t.Context(), recent(carol), pk.ID, "  Old phone ", httpapi.Meta{})
		if err != nil || renamed.Name != "Old phone" {
			t.Fatalf("rename %+v %v", renamed, err)
		}
		if _, err := e.svc.Rename(t.Context(), recent(e.user("dave", true)), pk.ID, "mine", httpapi.Meta{}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("renaming another user's passkey: %v", err)
		}
		if err := e.svc.Remove(t.Context(), recent(carol), pk.ID, httpapi.Meta{}); err != nil {
			t.Fatalf("removing one of two: %v", err)
		}
		if l := mustList(t, e, carol.ID); len(l) != 1 || l[0].Name != "Key" {
			t.Fatalf("left %+v", l)
		}
	})
}

// TestBeginLoginByEmail: an address with passkeys gets them in
// allowCredentials; one without any (or no account) gets decoys of the
// same shape, the same at every request.
func TestBeginLoginByEmail(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice", true)
		d := newDevice(t, alice, virtualwebauthn.AuthenticatorOptions{})
		if _, err := e.register(alice, d, ""); err != nil {
			t.Fatal(err)
		}
		allow := func(email string) []string {
			b, err := e.svc.BeginLogin(t.Context(), email)
			if err != nil {
				t.Fatal(err)
			}
			o, err := virtualwebauthn.ParseAssertionOptions(string(b.Options))
			if err != nil {
				t.Fatal(err)
			}
			return o.AllowCredentials
		}
		known, unknown := allow(alice.Email), allow("nobody@example.com")
		if len(known) != 1 || len(unknown) < 1 || len(unknown) > 2 || slices.Contains(unknown, known[0]) {
			t.Fatalf("allowCredentials known %v, unknown %v", known, unknown)
		}
		// Decoys of many addresses: one or two IDs of the lengths real
		// authenticators use.
		counts, lengths := map[int]int{}, map[int]int{}
		for i := range 40 {
			ids := allow(fmt.Sprintf("nobody-%d@example.com", i))
			counts[len(ids)]++
			for _, id := range ids {
				b, err := base64.RawURLEncoding.DecodeString(id)
				if err != nil {
					t.Fatal(err)
				}
				lengths[len(b)]++
			}
		}
		if counts[1] == 0 || counts[2] == 0 || len(counts) != 2 || len(lengths) < 3 {
			t.Errorf("decoy counts %v, lengths %v: want one or two IDs of varied lengths", counts, lengths)
		}
		if again := allow("Nobody@example.com "); !slices.Equal(again, unknown) {
			t.Errorf("decoys change between requests: %v then %v", unknown, again)
		}
		// The known one signs in through its allow list.
		b, _ := e.svc.BeginLogin(t.Context(), alice.Email)
		if _, err := e.svc.FinishLogin(t.Context(), b.Token, assert(t, rp, d, b.Options), httpapi.Meta{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAAGUIDAllowlist: with an allowlist, other authenticators cannot
// register.
func TestAAGUIDAllowlist(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		allowed := uuid.New()
		e := newEnv(t, st, func(c *Config) { c.AllowedAAGUIDs = []uuid.UUID{allowed} })
		u := e.user("erin", true)
		other := newDevice(t, u, virtualwebauthn.AuthenticatorOptions{})
		if _, err := e.register(u, other, ""); !errors.Is(err, ErrAuthenticatorNotAllowed) {
			t.Fatalf("an authenticator off the list: %v", err)
		}
		ok := newDevice(t, u, virtualwebauthn.AuthenticatorOptions{})
		ok.auth.Aaguid = allowed
		if _, err := e.register(u, ok, ""); err != nil {
			t.Fatalf("an authenticator on the list: %v", err)
		}
	})
}

// TestRegistrationNeedsRecentAuth: an old session cannot begin, and a
// ceremony is the caller's own.
func TestRegistrationNeedsRecentAuth(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		u := e.user("frank", true)
		if _, err := e.svc.BeginRegistration(t.Context(), auth.Principal{UserID: u.ID, AuthTime: time.Now().Add(-time.Hour)}); !errors.Is(err, auth.ErrReauthRequired) {
			t.Errorf("begin on an old authentication: %v", err)
		}
		b, err := e.svc.BeginRegistration(t.Context(), recent(u))
		if err != nil {
			t.Fatal(err)
		}
		d := newDevice(t, u, virtualwebauthn.AuthenticatorOptions{})
		opts, _ := virtualwebauthn.ParseAttestationOptions(string(b.Options))
		resp := virtualwebauthn.CreateAttestationResponse(rp, d.auth, d.cred, *opts)
		if _, err := e.svc.FinishRegistration(t.Context(), recent(e.user("mallory", true)), b.Token, json.RawMessage(resp), "", httpapi.Meta{}); !errors.Is(err, ErrInvalidCeremony) {
			t.Errorf("finishing another user's ceremony: %v", err)
		}
		if !strings.Contains(string(b.Options), `"residentKey":"preferred"`) {
			t.Errorf("options do not prefer a discoverable credential: %s", b.Options)
		}
	})
}

// TestSeveralPasskeys: with two passkeys, each signs in by address,
// discoverably and as a bound assertion over both; a security key that
// answers without a user handle (not discoverable) signs in by address.
func TestSeveralPasskeys(t *testing.T) {
	testenv.EachStore(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		alice := e.user("alice", true)
		phone, laptop := newDevice(t, alice, virtualwebauthn.AuthenticatorOptions{}), newDevice(t, alice, virtualwebauthn.AuthenticatorOptions{})
		for _, d := range []*device{phone, laptop} {
			if _, err := e.register(alice, d, ""); err != nil {
				t.Fatal(err)
			}
		}
		byEmail := func(d *device) error {
			b, err := e.svc.BeginLogin(t.Context(), alice.Email)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.svc.FinishLogin(t.Context(), b.Token, assert(t, rp, d, b.Options), httpapi.Meta{})
			return err
		}
		for name, d := range map[string]*device{"phone": phone, "laptop": laptop} {
			if err := byEmail(d); err != nil {
				t.Errorf("%s by address: %v", name, err)
			}
			if _, err := e.signIn(rp, d); err != nil {
				t.Errorf("%s discoverable: %v", name, err)
			}
			all := mustList(t, e, alice.ID)
			opts, err := e.svc.AssertionOptions(t.Context(), alice, all, "mfa:"+name)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok, err := e.svc.VerifyAssertion(t.Context(), alice, all, "mfa:"+name, assert(t, rp, d, opts), httpapi.Meta{}); !ok || err != nil {
				t.Errorf("%s as a second factor: %v %v", name, ok, err)
			}
		}

		// Without a user handle: by address only.
		key := newDevice(t, alice, virtualwebauthn.AuthenticatorOptions{})
		key.auth.Options.UserHandle = nil
		if _, err := e.register(alice, key, "Security key"); err != nil {
			t.Fatal(err)
		}
		if err := byEmail(key); err != nil {
			t.Errorf("a key without a user handle, by address: %v", err)
		}
		if _, err := e.signIn(rp, key); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("a key without a user handle, discoverable: %v, want ErrInvalidPasskey", err)
		}

		// Another account's ceremony answered with Alice's passkey.
		bob := e.user("bob", true)
		if _, err := e.register(bob, newDevice(t, bob, virtualwebauthn.AuthenticatorOptions{}), ""); err != nil {
			t.Fatal(err)
		}
		b, _ := e.svc.BeginLogin(t.Context(), bob.Email)
		if _, err := e.svc.FinishLogin(t.Context(), b.Token, assert(t, rp, phone, b.Options), httpapi.Meta{}); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("Bob's ceremony finished with Alice's passkey: %v", err)
		}
	})
}
