package rbac_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/rbac"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// backends open a migrated store of each kind.
var backends = []struct {
	name string
	open func(t testing.TB) store.Store
}{
	{"sqlite", func(t testing.TB) store.Store {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrator().Up(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t testing.TB) store.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// eachBackend runs fn on a fresh environment over each backend.
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, newEnv(t, b.open(t))) })
	}
}

var start = time.Date(2036, 3, 4, 5, 6, 7, 0, time.UTC)

// narrow is the adapter the wiring writes: the full store seen as the
// package's Store.
func narrow(s store.Store) rbac.Store {
	return store.Narrow(s, func(tx store.Store) rbac.Tx { return tx })
}

type env struct {
	t      *testing.T
	store  store.Store
	clock  *clocktest.Clock
	comp   *authz.Compiler
	svc    *rbac.Service
	srv    *httptest.Server
	root   string // a user granted the built-in admin role
	nextID int

	mu      sync.Mutex
	changes []rbac.Change
}

func newEnv(t *testing.T, s store.Store) *env {
	t.Helper()
	ctx := t.Context()
	if err := s.InTx(ctx, func(tx store.Store) error { return rbac.EnsureBuiltins(ctx, tx) }); err != nil {
		t.Fatalf("EnsureBuiltins: %v", err)
	}
	comp, err := authz.NewCompiler(authz.CompilerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := authz.NewEngine(comp)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: s, clock: clocktest.New(start), comp: comp}
	e.svc, err = rbac.New(rbac.Deps{
		Store: narrow(s), Compiler: comp, Engine: eng, Now: e.clock.Now,
		Changed: func(_ context.Context, c rbac.Change) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.changes = append(e.changes, c)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	table, err := httpapi.NewErrorTable(rbac.Errors())
	if err != nil {
		t.Fatalf("the error table refuses rbac.Errors: %v", err)
	}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.DiscardHandler), Errors: table})
	(&rbac.Handlers{Admin: auth.Admin{Authn: bearerIsUser{}, Authz: e.svc}, Service: e.svc}).Routes(rt)
	e.srv = httptest.NewServer(rt)
	t.Cleanup(e.srv.Close)

	e.root = e.user("root")
	e.grantDirect(e.root, rbac.AdminRoleID, "")
	e.takeChanges()
	return e
}

// bearerIsUser authenticates "Bearer <user id>" as that user.
type bearerIsUser struct{}

func (bearerIsUser) Authenticate(r *http.Request) (auth.Principal, error) {
	tok, ok := auth.BearerToken(r)
	if !ok {
		return auth.Principal{}, auth.ErrNoCredentials
	}
	return auth.Principal{UserID: tok}, nil
}

// user creates an account and returns its ID.
func (e *env) user(name string) string {
	e.t.Helper()
	u, err := e.store.CreateUser(e.t.Context(), store.User{Email: name + "@example.com", EmailNormalized: name + "@example.com", EmailVerifiedAt: start})
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

// org creates an organisation and returns its ID.
func (e *env) org(slug string) string {
	e.t.Helper()
	o, err := e.store.CreateOrganization(e.t.Context(), store.Organization{Name: slug, Slug: slug})
	if err != nil {
		e.t.Fatal(err)
	}
	return o.ID
}

func (e *env) grantDirect(userID, roleID, orgID string) store.RoleGrant {
	e.t.Helper()
	g, err := e.store.CreateGrant(e.t.Context(), store.RoleGrant{UserID: userID, RoleID: roleID, OrganizationID: orgID})
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

// takeChanges returns the changes reported so far and forgets them.
func (e *env) takeChanges() []rbac.Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.changes
	e.changes = nil
	return out
}

// do sends a request as the user token ("" for none) and returns the
// status and the decoded JSON body (nil when there is none).
func (e *env) do(token, method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	status, raw, _ := e.raw(token, method, path, body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s: %d, body %q is not a JSON object: %v", method, path, status, raw, err)
		}
	}
	return status, out
}

// raw sends a request and returns the status, body and headers.
func (e *env) raw(token, method, path string, body any) (int, []byte, http.Header) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// must sends a request as root and fails unless the status is want.
func (e *env) must(want int, method, path string, body any) map[string]any {
	e.t.Helper()
	status, out := e.do(e.root, method, path, body)
	if status != want {
		e.t.Fatalf("%s %s: %d %v, want %d", method, path, status, out, want)
	}
	return out
}

// wantProblem fails unless the answer is the problem status/code.
func wantProblem(t *testing.T, status int, body map[string]any, wantStatus int, code string) {
	t.Helper()
	if status != wantStatus || body["code"] != code {
		t.Fatalf("answer %d %v, want %d %s", status, body, wantStatus, code)
	}
}

// fieldErrors returns the field errors of a problem, as "field rule".
func fieldErrors(body map[string]any) []string {
	var out []string
	list, _ := body["errors"].([]any)
	for _, x := range list {
		m := x.(map[string]any)
		out = append(out, m["field"].(string)+" "+m["rule"].(string))
	}
	return out
}

// fieldMessage returns the message of the field error of field.
func fieldMessage(body map[string]any, field string) string {
	list, _ := body["errors"].([]any)
	for _, x := range list {
		m := x.(map[string]any)
		if m["field"] == field {
			return m["message"].(string)
		}
	}
	return ""
}

// permission registers permissions as root.
func (e *env) permissions(names ...string) {
	e.t.Helper()
	for _, n := range names {
		e.must(http.StatusCreated, "POST", "/v1/admin/permissions", map[string]any{"name": n, "description": "test " + n})
	}
}

// role creates a role as root and returns its ID.
func (e *env) role(body map[string]any) string {
	e.t.Helper()
	return e.must(http.StatusCreated, "POST", "/v1/admin/roles", body)["id"].(string)
}

// grant grants a role as root and returns the grant's ID.
func (e *env) grant(userID string, body map[string]any) string {
	e.t.Helper()
	return e.must(http.StatusCreated, "POST", "/v1/admin/users/"+userID+"/roles", body)["id"].(string)
}

// allowed runs the decision for a user as the check API would.
func (e *env) allowed(userID, permission, orgID string, req authz.Request) bool {
	e.t.Helper()
	d, _, err := e.svc.Decide(e.t.Context(), userID, permission, orgID, req)
	if err != nil {
		e.t.Fatal(err)
	}
	return d.Allowed
}

// audit returns the audit events of an action, newest first.
func (e *env) audit(action string) []store.AuditEvent {
	e.t.Helper()
	var out []store.AuditEvent
	cursor := ""
	for {
		list, next, err := e.store.ListAuditEvents(e.t.Context(), store.AuditFilter{Cursor: cursor, Limit: store.MaxAuditLimit})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, ev := range list {
			if ev.Action == action {
				out = append(out, ev)
			}
		}
		if next == "" {
			return out
		}
		cursor = next
	}
}

// grantCount counts every grant of the users.
func (e *env) grantCount(users ...string) int {
	e.t.Helper()
	n := 0
	for _, u := range users {
		gs, err := e.store.ListUserGrants(e.t.Context(), u)
		if err != nil {
			e.t.Fatal(err)
		}
		n += len(gs)
	}
	return n
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func lines(b []byte) []string {
	return strings.Split(strings.TrimRight(string(b), "\r\n"), "\n")
}
