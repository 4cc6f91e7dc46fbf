package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/password"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

// seen subscribes to E on bus and returns what it saw.
func seen[E event.Event](bus *event.Bus) *[]E {
	var got []E
	event.Subscribe(bus, func(_ context.Context, _ event.Tx, e E) error {
		got = append(got, e)
		return nil
	})
	return &got
}

// adminEnv is the admin API on a fresh SQLite database, with a real
// sign-in service (whose lock after two wrong passwords it can lift),
// publishing on bus.
type adminEnv struct {
	st       store.Store
	sessions *session.Service
	rt       *httpapi.Router
}

const testPassword = "a perfectly fine passphrase 1"

func newAdminEnv(t *testing.T, bus *event.Bus) *adminEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := secret.GenerateKeyString("t1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.ParseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lk := session.DefaultLockout()
	lk.Threshold = 2
	sessions, err := session.New(session.Deps{
		Store: event.Narrow(st, bus, func(tx event.Tx) session.Tx { return tx }), Tokens: &killSwitch{}, Keys: kr, KV: memory.New(time.Now),
		Hasher: password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 2), Jobs: noJobs{},
		Now: time.Now, Log: log, Config: session.Config{AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour, Lockout: lk},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Deps{
		Store: event.Narrow(st, bus, func(tx event.Tx) Tx { return tx }), Sessions: sessions, Now: time.Now,
		Locks: map[string]Lock{event.LockSignIn: sessions},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &Handlers{Admin: auth.Admin{Authn: anAdmin{}, Authz: adminOnly("admin-1")}, Service: svc, Now: time.Now}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: log})
	h.Routes(rt)
	h.OrgRoutes(rt, func(map[string]any) []httpapi.FieldError { return nil })
	return &adminEnv{st: st, sessions: sessions, rt: rt}
}

// call sends a request to the admin API and decodes its JSON answer.
func (e *adminEnv) call(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "admin-console")
	rec := httptest.NewRecorder()
	e.rt.ServeHTTP(rec, req)
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

// user creates an active, verified account with testPassword.
func (e *adminEnv) user(t *testing.T, email string) store.User {
	t.Helper()
	hash, err := e.sessions.Hasher.Hash(context.Background(), testPassword)
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.st.CreateUser(context.Background(), store.User{Email: email, EmailNormalized: email, PasswordHash: hash, Status: store.UserActive, EmailVerifiedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// noJobs accepts jobs and drops them.
type noJobs struct{ session.JobInserter }

func (noJobs) InsertTx(context.Context, any, river.JobArgs, *river.InsertOpts) (int64, error) {
	return 1, nil
}

// TestAdminActionsPublishTheirEvents checks that the administrator's
// changes publish their events in their transactions, with the
// administrator as actor: disable and enable (a real change only), delete,
// membership added (not a new role) and removed.
func TestAdminActionsPublishTheirEvents(t *testing.T) {
	bus := event.NewBus()
	status := seen[event.UserStatusChanged](bus)
	deleted := seen[event.UserDeleted](bus)
	added := seen[event.OrganizationMemberAdded](bus)
	removed := seen[event.OrganizationMemberRemoved](bus)
	revoked := seen[event.SessionsRevoked](bus)
	e := newAdminEnv(t, bus)
	ctx := context.Background()
	ann := e.user(t, "ann@example.com")

	for _, step := range []struct {
		path string
		want []event.UserStatusChanged
	}{
		{"/disable", []event.UserStatusChanged{{UserID: ann.ID, Status: store.UserDisabled, Previous: store.UserActive}}},
		{"/disable", nil}, // disabled already
		{"/enable", []event.UserStatusChanged{{UserID: ann.ID, Status: store.UserActive, Previous: store.UserDisabled}}},
	} {
		before := len(*status)
		if code, body := e.call(t, "POST", "/v1/admin/users/"+ann.ID+step.path, ""); code != 200 {
			t.Fatalf("%s = %d %v", step.path, code, body)
		}
		got := (*status)[before:]
		if len(got) != len(step.want) {
			t.Fatalf("%s: UserStatusChanged events %+v, want %+v", step.path, got, step.want)
		}
		for i, w := range step.want {
			if got[i].UserID != w.UserID || got[i].Status != w.Status || got[i].Previous != w.Previous || got[i].Meta.ActorID != "admin-1" || got[i].Meta.UserAgent != "admin-console" {
				t.Errorf("%s: UserStatusChanged %+v, want %+v by admin-1", step.path, got[i], w)
			}
		}
	}

	// Membership: added, a new role (nothing), removed.
	code, org := e.call(t, "POST", "/v1/admin/organizations", `{"name": "Acme", "slug": "acme"}`)
	if code != 201 {
		t.Fatalf("create organisation = %d %v", code, org)
	}
	orgID := org["id"].(string)
	for _, role := range []string{"member", "admin"} {
		if code, body := e.call(t, "PUT", "/v1/admin/organizations/"+orgID+"/members/"+ann.ID, `{"role": "`+role+`"}`); code != 200 {
			t.Fatalf("set member = %d %v", code, body)
		}
	}
	if a := *added; len(a) != 1 || a[0].OrganizationID != orgID || a[0].UserID != ann.ID || a[0].Role != "member" || a[0].Meta.ActorID != "admin-1" {
		t.Fatalf("OrganizationMemberAdded events %+v, want ann added as member once", a)
	}
	if code, body := e.call(t, "DELETE", "/v1/admin/organizations/"+orgID+"/members/"+ann.ID, ""); code != 204 {
		t.Fatalf("remove member = %d %v", code, body)
	}
	if code, _ := e.call(t, "DELETE", "/v1/admin/organizations/"+orgID+"/members/"+ann.ID, ""); code != 404 {
		t.Errorf("removing a user who is no member = %d, want 404", code)
	}
	if r := *removed; len(r) != 1 || r[0].OrganizationID != orgID || r[0].UserID != ann.ID {
		t.Fatalf("OrganizationMemberRemoved events %+v, want ann's removal once", r)
	}

	// Delete: the account, then its sessions.
	res, err := e.sessions.Login(ctx, "ann@example.com", testPassword, httpapi.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := e.call(t, "DELETE", "/v1/admin/users/"+ann.ID, ""); code != 204 {
		t.Fatalf("delete = %d %v", code, body)
	}
	if d := *deleted; len(d) != 1 || d[0].UserID != ann.ID || d[0].Email != "ann@example.com" || d[0].Meta.ActorID != "admin-1" {
		t.Fatalf("UserDeleted events %+v, want ann's", d)
	}
	if r := *revoked; len(r) != 1 || !slices.Equal(r[0].SessionIDs, []string{res.Session.ID}) || r[0].Reason != "account_deleted" {
		t.Errorf("SessionsRevoked events %+v, want ann's session, account_deleted", r)
	}
	if _, err := e.st.GetUser(ctx, ann.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ann after the delete: err = %v, want ErrNotFound", err)
	}
	if code, _ := e.call(t, "DELETE", "/v1/admin/users/"+ann.ID, ""); code != 404 || len(*deleted) != 1 {
		t.Errorf("deleting a deleted user = %d (%d events), want 404 and no event", code, len(*deleted))
	}
}

// TestUnlock checks POST /v1/admin/users/{id}/unlock: it lifts the lock
// at once (the user signs in), says which locks it lifted, is audited,
// and publishes event.UserUnlocked only when a lock was lifted; an
// unknown user is 404.
func TestUnlock(t *testing.T) {
	bus := event.NewBus()
	unlocked := seen[event.UserUnlocked](bus)
	e := newAdminEnv(t, bus)
	ctx := context.Background()
	bo := e.user(t, "bo@example.com")
	for range 2 {
		if _, err := e.sessions.Login(ctx, "bo@example.com", "wrong password", httpapi.Meta{}); !errors.Is(err, session.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if _, err := e.sessions.Login(ctx, "bo@example.com", testPassword, httpapi.Meta{}); err == nil {
		t.Fatal("the account is not locked")
	}

	code, body := e.call(t, "POST", "/v1/admin/users/"+bo.ID+"/unlock", "")
	if code != 200 || body["id"] != bo.ID || !slices.Equal(strs(body["locks_lifted"]), []string{"sign_in"}) {
		t.Fatalf("unlock = %d %v, want the sign_in lock lifted", code, body)
	}
	if u := *unlocked; len(u) != 1 || u[0].UserID != bo.ID || !slices.Equal(u[0].Locks, []string{"sign_in"}) || u[0].Meta.ActorID != "admin-1" {
		t.Fatalf("UserUnlocked events %+v, want bo's sign_in lock by admin-1", u)
	}
	if _, err := e.sessions.Login(ctx, "bo@example.com", testPassword, httpapi.Meta{}); err != nil {
		t.Errorf("login after the unlock: %v", err)
	}

	// Not locked: nothing lifted, nothing published, still audited.
	code, body = e.call(t, "POST", "/v1/admin/users/"+bo.ID+"/unlock", "")
	if code != 200 || len(strs(body["locks_lifted"])) != 0 || body["locks_lifted"] == nil {
		t.Fatalf("unlock of an account not locked = %d %v, want an empty list", code, body)
	}
	if len(*unlocked) != 1 {
		t.Errorf("an unlock that lifted nothing published %+v", (*unlocked)[1:])
	}
	evs, _, err := e.st.ListAuditEvents(ctx, store.AuditFilter{SubjectID: bo.ID})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Action == "admin.user_unlocked" && ev.ActorID == "admin-1" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d admin.user_unlocked records by admin-1, want 2", n)
	}

	if code, body := e.call(t, "POST", "/v1/admin/users/00000000-0000-7000-8000-000000000000/unlock", ""); code != 404 {
		t.Errorf("unlock of an unknown user = %d %v, want 404", code, body)
	}
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, s.(string))
	}
	return out
}
