package apikey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/authzcheck"
	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/rbac"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// countingStore counts the key lookups an Authenticator makes.
type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (s *countingStore) GetAPIKeyByHash(ctx context.Context, hashes [][]byte) (store.APIKey, error) {
	s.lookups.Add(1)
	return s.Store.GetAPIKeyByHash(ctx, hashes)
}

// bearerIsUser stands for the JWT authenticator: "Bearer <user id>" is
// that user.
type bearerIsUser struct{}

func (bearerIsUser) Authenticate(r *http.Request) (auth.Principal, error) {
	tok, ok := auth.BearerToken(r)
	if !ok {
		return auth.Principal{}, auth.ErrNoCredentials
	}
	if _, err := uuid.Parse(tok); err != nil {
		return auth.Principal{}, auth.ErrInvalidToken
	}
	return auth.Principal{UserID: tok, AuthTime: time.Now()}, nil
}

// checkerAuthz decides admin routes through the Checker, limited to a
// personal key's permissions, as the wiring's authorizer does.
type checkerAuthz struct{ c *authzcheck.Checker }

func (a checkerAuthz) Authorize(ctx context.Context, p auth.Principal, perm, org string) (bool, error) {
	if !KeyAllows(p, perm) {
		return false, nil
	}
	d, err := a.c.Check(ctx, authzcheck.Query{Subject: p.UserID, Permission: perm, Resource: authz.Resource{OrganizationID: org}})
	return d.Allowed, err
}

// capturedJobs keeps the mail jobs enqueued.
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
	a, ok := args.(mail.SendArgs)
	if !ok {
		return 0, errors.New("unexpected job")
	}
	c.args = append(c.args, a)
	return int64(len(c.args)), nil
}

func (c *capturedJobs) sent() []mail.SendArgs {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.args)
}

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const leakSecret = "leak-secret"

// env is the whole feature over one store: a Checker, an Authenticator
// (node A) and the service behind an HTTP server.
type env struct {
	t     *testing.T
	st    store.Store
	cs    *countingStore
	clock *clocktest.Clock
	kv    kv.Store
	kr    *secret.Keyring
	chk   *authzcheck.Checker
	authn *Authenticator
	svc   *Service
	jobs  *capturedJobs
	srv   *httptest.Server
	root  string // holds the built-in admin role

	publishedMu sync.Mutex
	published   []event.Event // by the service, committed or not
}

// bus records what the service publishes.
func (e *env) bus() *event.Bus {
	b := event.NewBus()
	event.SubscribeAll(b, func(_ context.Context, _ event.Tx, ev event.Event) error {
		e.publishedMu.Lock()
		defer e.publishedMu.Unlock()
		e.published = append(e.published, ev)
		return nil
	})
	return b
}

// leaks returns the event.APIKeyLeaked the service published.
func (e *env) leaks() []event.APIKeyLeaked {
	e.publishedMu.Lock()
	defer e.publishedMu.Unlock()
	var out []event.APIKeyLeaked
	for _, ev := range e.published {
		if l, ok := ev.(event.APIKeyLeaked); ok {
			out = append(out, l)
		}
	}
	return out
}

func newEnv(t *testing.T, st store.Store) *env {
	t.Helper()
	ctx := t.Context()
	if err := st.InTx(ctx, func(tx store.Store) error { return rbac.EnsureBuiltins(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(t0)
	mem := memory.New(clock.Now)
	t.Cleanup(func() { mem.Close() })
	e := &env{t: t, st: st, cs: &countingStore{Store: st}, clock: clock, kv: mem, jobs: &capturedJobs{}}
	return e.build(mem)
}

func (e *env) build(kvs kv.Store) *env {
	t := e.t
	t.Helper()
	ks, _ := secret.GenerateKeyString("t1")
	e.kr, _ = secret.ParseKeys(ks)
	comp, _ := authz.NewCompiler(authz.CompilerOptions{})
	eng, _ := authz.NewEngine(comp)
	var err error
	if e.chk, err = authzcheck.New(authzcheck.Deps{Store: e.st, Engine: eng, KV: kvs, Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	e.authn = e.node(kvs)
	e.svc, err = New(Deps{
		Store: event.Narrow(e.st, e.bus(), func(tx event.Tx) Tx { return tx }), Checker: e.chk, Authn: e.authn,
		Keyring: e.kr, Jobs: e.jobs, LeakSecret: []byte(leakSecret), Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	table, err := httpapi.NewErrorTable(Errors())
	if err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.DiscardHandler), Errors: table})
	(&Handlers{Service: e.svc, Authn: e.authn, Admin: auth.Admin{Authn: e.authn, Authz: checkerAuthz{e.chk}}}).Routes(rt)
	// A route standing for any API guarded by a permission.
	rt.Handle("GET /test/whoami", auth.Require(e.authn, func(w http.ResponseWriter, r *http.Request) error {
		p, _ := auth.FromContext(r.Context())
		return httpapi.WriteJSON(w, 200, p)
	}))
	e.srv = httptest.NewServer(rt)
	t.Cleanup(e.srv.Close)
	e.root = e.user("root")
	e.grant(e.root, rbac.AdminRoleID)
	return e
}

// node returns another Authenticator over the env's store, on kvs,
// started until the test ends.
func (e *env) node(kvs kv.Store) *Authenticator {
	e.t.Helper()
	a, err := NewAuthenticator(AuthenticatorDeps{Inner: bearerIsUser{}, Store: e.cs, Keys: e.kr.DerivedKeys(HashPurpose), KV: kvs, Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	if err := a.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) user(name string) string {
	e.t.Helper()
	email := name + "-" + uuid.NewString() + "@example.com"
	u, err := e.st.CreateUser(e.t.Context(), store.User{Email: email, EmailNormalized: email, Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

func (e *env) grant(userID, roleID string) {
	e.t.Helper()
	if _, err := e.st.CreateGrant(e.t.Context(), store.RoleGrant{UserID: userID, RoleID: roleID}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.chk.Invalidate(e.t.Context(), userID); err != nil {
		e.t.Fatal(err)
	}
}

// role creates a global role allowing perms (registered as needed).
func (e *env) role(name string, perms ...string) string {
	e.t.Helper()
	ctx := e.t.Context()
	var allow []store.RolePermission
	for _, p := range perms {
		if _, err := e.st.GetPermission(ctx, p); errors.Is(err, store.ErrNotFound) {
			if _, err := e.st.CreatePermission(ctx, store.Permission{Name: p}); err != nil {
				e.t.Fatal(err)
			}
		}
		allow = append(allow, store.RolePermission{Permission: p})
	}
	r, err := e.st.CreateRole(ctx, store.Role{Name: name, Allow: allow})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.ID
}

// response is an HTTP answer, read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request with credential as the bearer token ("" for none).
func (e *env) do(method, path, credential string, body any) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// want fails unless r has status.
func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// createKey creates a personal key for userID over HTTP.
func (e *env) createKey(userID string, body map[string]any) CreatedView {
	e.t.Helper()
	var c CreatedView
	e.do("POST", "/v1/me/api-keys", userID, body).want(e.t, 201).json(e.t, &c)
	return c
}

// authenticate runs a on a request carrying key in X-API-Key from ip.
func authenticate(a *Authenticator, key, ip string) (auth.Principal, error) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(HeaderAPIKey, key)
	r.RemoteAddr = ip + ":1234"
	return a.Authenticate(r)
}

func newClock() *clocktest.Clock { return clocktest.New(t0) }
