package oauth_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/oauth"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/postgres"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/testenv"
	"github.com/gatehouse/gatehouse/internal/token"
)

var stores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"sqlite", func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: testenv.PostgresMigratedURL(t), MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// scopedEnv is the token endpoint on a real store and token manager, with
// a client holding a refresh token granted "read write".
type scopedEnv struct {
	srv     *httptest.Server
	tokens  *token.Manager
	client  oauth.NewClient
	refresh string
	store   store.Store
	clients *oauth.Clients
	user    store.User
}

func newScopedEnv(t *testing.T, st store.Store) *scopedEnv {
	t.Helper()
	ctx := t.Context()
	if _, err := st.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	keyString, err := secret.GenerateKeyString("test")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secret.ParseKeys(keyString)
	if err != nil {
		t.Fatal(err)
	}
	state := memory.New(time.Now)
	t.Cleanup(func() { state.Close() })
	tokens, err := token.NewManager(token.Config{Issuer: "https://auth.example.test", Algorithm: "ES256"}, st, keys, state, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	if err := tokens.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); <-tokens.Done() })

	clients := &oauth.Clients{Store: st, Now: time.Now}
	cl, err := clients.Create(ctx, "scoped", []string{"read", "write", "admin"}, oauth.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, store.User{Email: "sam@example.com", EmailNormalized: "sam@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := secret.NewToken(32)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	if _, err := st.CreateSession(ctx, store.Session{UserID: u.ID, ClientID: cl.Client.ID, ExpiresAt: exp, AMR: []string{"pwd"}, AuthTime: time.Now()},
		store.RefreshToken{UserID: u.ID, ClientID: cl.Client.ID, Scope: "read write", TokenHash: secret.HashToken(raw), ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	sessions, err := session.New(session.Deps{
		Store: event.Narrow(st, nil, func(tx event.Tx) session.Tx { return tx }), Tokens: tokens, Keys: keys, KV: state, Now: time.Now, Log: log,
		Config: session.Config{AccessTTL: token.DefaultAccessTTL, Leeway: token.DefaultLeeway, RefreshTTL: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: log})
	registry, err := apis.New(apis.Deps{Store: store.Narrow(st, func(tx store.Store) apis.Tx { return tx }), Issuer: "https://auth.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	(&oauth.Server{Issuer: "https://auth.example.test", Clients: clients, Sessions: sessions, Tokens: tokens, APIs: registry, Log: log}).Routes(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return &scopedEnv{srv: srv, tokens: tokens, client: cl, refresh: raw, store: st, clients: clients, user: u}
}

func (e *scopedEnv) refreshWith(t *testing.T, scope string) (int, map[string]any) {
	t.Helper()
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {e.refresh}}
	if scope != "" {
		v.Set("scope", scope)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/oauth2/token", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(e.client.Client.ID), url.QueryEscape(e.client.Secret))
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if rt, ok := out["refresh_token"].(string); ok {
		e.refresh = rt
	}
	return res.StatusCode, out
}

// TestRefreshScope: RFC 6749 §6: the scope of a refresh request may narrow
// the original grant, never exceed it; a refused request leaves the token
// as it was.
func TestRefreshScope(t *testing.T) {
	for _, sb := range stores {
		t.Run(sb.name, func(t *testing.T) {
			e := newScopedEnv(t, sb.open(t))
			scopeOf := func(at any) string {
				t.Helper()
				c, err := e.tokens.Verify(t.Context(), at.(string))
				if err != nil {
					t.Fatalf("issued access token: %v", err)
				}
				return c.Scope
			}

			for _, asked := range []string{"read admin", "admin", "read,write", "READ"} {
				before := e.refresh
				code, body := e.refreshWith(t, asked)
				if code != 400 || body["error"] != "invalid_scope" {
					t.Errorf("scope %q beyond the grant: %d %v, want 400 invalid_scope", asked, code, body)
				}
				if e.refresh != before {
					t.Fatalf("a refused request rotated the refresh token")
				}
			}

			code, body := e.refreshWith(t, "read")
			if code != 200 || body["scope"] != "read" {
				t.Fatalf("narrowed refresh = %d %v, want 200 with scope read", code, body)
			}
			if got := scopeOf(body["access_token"]); got != "read" {
				t.Errorf("narrowed access token has scope %q, want read", got)
			}
			// The new refresh token keeps the original grant.
			code, body = e.refreshWith(t, "write read write")
			if code != 200 || body["scope"] != "write read" {
				t.Fatalf("full scope again = %d %v, want 200 with scope \"write read\" (repeats dropped, so echoed)", code, body)
			}
			if got := scopeOf(body["access_token"]); got != "write read" {
				t.Errorf("access token scope %q, want \"write read\"", got)
			}
		})
	}
}
