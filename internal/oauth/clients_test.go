package oauth

import (
	"context"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/logging"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
)

type countingStore struct {
	store.ClientStore
	clients map[string]store.Client
	gets    atomic.Int64
}

func (s *countingStore) GetClient(_ context.Context, id string) (store.Client, error) {
	s.gets.Add(1)
	c, ok := s.clients[id]
	if !ok {
		return store.Client{}, store.ErrNotFound
	}
	return c, nil
}

func (s *countingStore) AppendAuditEvent(context.Context, store.AuditEvent) error { return nil }

func TestAuthenticateCachesClients(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &countingStore{clients: map[string]store.Client{"gh_a": {ID: "gh_a", SecretHash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}}
	c := &Clients{Store: st, Now: func() time.Time { return now }, CacheTTL: 10 * time.Second}
	ctx := context.Background()
	for range 5 {
		if _, ok, err := c.Authenticate(ctx, "gh_a", ""); err != nil || !ok {
			t.Fatalf("Authenticate = %v %v", ok, err)
		}
		if _, ok, _ := c.Authenticate(ctx, "gh_a", "wrong"); ok {
			t.Fatal("a wrong secret authenticated from the cache")
		}
	}
	if n := st.gets.Load(); n != 1 {
		t.Errorf("GetClient called %d times within the TTL, want 1", n)
	}
	now = now.Add(11 * time.Second)
	c.Authenticate(ctx, "gh_a", "")
	if n := st.gets.Load(); n != 2 {
		t.Errorf("GetClient called %d times after the TTL, want 2", n)
	}
	if _, ok, _ := c.Authenticate(ctx, "gh_missing", "x"); ok {
		t.Error("unknown client authenticated")
	}
}

type userStore struct {
	session.Store
	users map[string]store.User
	gets  atomic.Int64
}

func (s *userStore) GetUser(_ context.Context, id string) (store.User, error) {
	s.gets.Add(1)
	u, ok := s.users[id]
	if !ok {
		return store.User{}, store.ErrNotFound
	}
	return u, nil
}

func TestIntrospectionCachesUsernames(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &userStore{users: map[string]store.User{"u1": {ID: "u1", Email: "old@example.com"}}}
	s := &Server{Sessions: &session.Service{Deps: session.Deps{Store: st}}, UsernameTTL: 10 * time.Second, Now: func() time.Time { return now }}
	ctx := context.Background()
	name := func(id string) string {
		t.Helper()
		n, err := s.username(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for range 3 {
		if got := name("u1"); got != "old@example.com" {
			t.Fatalf("username = %q", got)
		}
	}
	if n := st.gets.Load(); n != 1 {
		t.Errorf("GetUser called %d times within the TTL, want 1", n)
	}
	st.users["u1"] = store.User{ID: "u1", Email: "new@example.com"}
	now = now.Add(10 * time.Second)
	if got := name("u1"); got != "new@example.com" {
		t.Errorf("username after the TTL = %q, want the new address", got)
	}
	if got := name("missing"); got != "" {
		t.Errorf("username of an unknown user = %q", got)
	}

	s.UsernameTTL = 0 // no cache: every call reads
	before := st.gets.Load()
	name("u1")
	name("u1")
	if n := st.gets.Load() - before; n != 2 {
		t.Errorf("without a TTL GetUser was called %d times for 2 calls", n)
	}
}

func TestScopeParsing(t *testing.T) {
	for _, c := range []struct {
		in        string
		cli, wire []string // nil: refused
	}{
		{"introspect revoke", []string{"introspect", "revoke"}, []string{"introspect", "revoke"}},
		// The CLI flag takes commas; on the wire (RFC 6749 §3.3) a comma is
		// part of a scope name.
		{"introspect,revoke", []string{"introspect", "revoke"}, []string{"introspect,revoke"}},
		{"a a b a", []string{"a", "b"}, []string{"a", "b"}},
		{" a  b ", []string{"a", "b"}, []string{"a", "b"}},
		{"", nil, nil},
		{"!#[]~", []string{"!#[]~"}, []string{"!#[]~"}},
		{"a\tb", nil, nil},
		{"a\nb", nil, nil},
		{`a"b`, nil, nil},
		{`a\b`, nil, nil},
		{"caf\u00e9", nil, nil},
		{"a\x7f", nil, nil},
	} {
		for _, p := range []struct {
			name  string
			parse func(string) ([]string, error)
			want  []string
		}{{"ParseScopes", ParseScopes, c.cli}, {"parseScopeParam", parseScopeParam, c.wire}} {
			got, err := p.parse(c.in)
			wantErr := p.want == nil && c.in != ""
			switch {
			case wantErr && err == nil:
				t.Errorf("%s(%q) = %q, want an error", p.name, c.in, got)
			case !wantErr && err != nil:
				t.Errorf("%s(%q): %v", p.name, c.in, err)
			case !wantErr && !slices.Equal(got, p.want):
				t.Errorf("%s(%q) = %q, want %q", p.name, c.in, got, p.want)
			}
		}
	}
}

// recordingStore keeps created clients and audit events.
type recordingStore struct {
	store.ClientStore
	events []store.AuditEvent
}

func (s *recordingStore) CreateClient(_ context.Context, c store.Client) (store.Client, error) {
	return c, nil
}

func (s *recordingStore) AppendAuditEvent(_ context.Context, e store.AuditEvent) error {
	s.events = append(s.events, e)
	return nil
}

// TestCreateRecordsActor: a client registered through the admin API is
// audited with the request's IP, user agent and request ID.
func TestCreateRecordsActor(t *testing.T) {
	st := &recordingStore{}
	c := &Clients{Store: st, Now: time.Now}
	r := httptest.NewRequest("POST", "/v1/admin/clients", nil)
	r.Header.Set("User-Agent", "admin-console/2.0")
	r = r.WithContext(logging.WithRequestID(r.Context(), "req-42"))
	nc, err := c.Create(t.Context(), "reporting", []string{"introspect"}, ActorOf(r, "admin-1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.events) != 1 {
		t.Fatalf("%d audit events, want 1", len(st.events))
	}
	e := st.events[0]
	if e.Action != "client.created" || e.ActorID != "admin-1" || e.SubjectID != nc.Client.ID || e.UserAgent != "admin-console/2.0" || e.RequestID != "req-42" {
		t.Errorf("audit event = %+v", e)
	}
}
