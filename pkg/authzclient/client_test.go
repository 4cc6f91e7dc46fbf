package authzclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/pkg/accesstoken"
	"github.com/gatehouse/gatehouse/pkg/authzclient"
)

// countingGatehouse is fakeGatehouse that counts checks and records the
// last body, and can be told to fail.
type countingGatehouse struct {
	*httptest.Server
	n      atomic.Int64
	status atomic.Int64 // non-zero: answer this problem status
	mu     sync.Mutex
	last   map[string]any
}

func newCountingGatehouse(t *testing.T) *countingGatehouse {
	g := &countingGatehouse{}
	inner := fakeGatehouse()
	t.Cleanup(inner.Close)
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.n.Add(1)
		if s := g.status.Load(); s != 0 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(int(s))
			_, _ = io.WriteString(w, `{"status":403,"code":"insufficient_scope","detail":"no scope"}`)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		g.mu.Lock()
		g.last = body
		g.mu.Unlock()
		req, _ := http.NewRequest(r.Method, inner.URL+r.URL.Path, bytesReader(raw))
		res, err := inner.Client().Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		defer res.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, res.Body)
	}))
	t.Cleanup(g.Close)
	return g
}

func TestCacheReusesDecisionsForTTL(t *testing.T) {
	g := newCountingGatehouse(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := authzclient.New(authzclient.Config{BaseURL: g.URL + "/", Now: func() time.Time { return now }})
	alice := authzclient.Check{Subject: "alice", Permission: "invoices:read"}
	bob := authzclient.Check{Subject: "bob", Permission: "invoices:read"}
	for range 3 {
		if res, err := c.Check(t.Context(), alice); err != nil || !res.Allowed {
			t.Fatalf("alice: %+v %v", res, err)
		}
		if res, err := c.Check(t.Context(), bob); err != nil || res.Allowed || res.Reason != "no_matching_grant" {
			t.Fatalf("bob: %+v %v", res, err)
		}
	}
	if n := g.n.Load(); n != 2 {
		t.Fatalf("%d calls to Gatehouse for 6 checks of 2 kinds, want 2", n)
	}
	now = now.Add(authzclient.DefaultCacheTTL)
	_, _ = c.Check(t.Context(), alice)
	if n := g.n.Load(); n != 3 {
		t.Fatalf("%d calls after the TTL, want 3", n)
	}
	// Another resource is another check.
	_, _ = c.Check(t.Context(), authzclient.Check{Subject: "alice", Permission: "invoices:read", Resource: &authzclient.Resource{ID: "x"}})
	if n := g.n.Load(); n != 4 {
		t.Fatalf("%d calls, want 4", n)
	}
}

func TestCacheSizeBounded(t *testing.T) {
	g := newCountingGatehouse(t)
	c := authzclient.New(authzclient.Config{BaseURL: g.URL, CacheSize: 2})
	for _, s := range []string{"a", "b", "c", "a", "b", "c"} {
		if _, err := c.Check(t.Context(), authzclient.Check{Subject: s, Permission: "x:y"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.n.Load(); n < 4 {
		t.Fatalf("%d calls: more than 2 decisions were kept", n)
	}
}

func TestRequestShape(t *testing.T) {
	g := newCountingGatehouse(t)
	c := authzclient.New(authzclient.Config{BaseURL: g.URL, CacheTTL: -1})
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.FixedZone("x", 3600))
	_, err := c.Check(t.Context(), authzclient.Check{Subject: "alice", Permission: "invoices:read",
		Resource: &authzclient.Resource{Type: "invoice", OrganizationID: "org"},
		Context:  &authzclient.Context{IP: "10.0.0.1", MFA: true, Time: at}})
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, _ := g.last["context"].(map[string]any)
	res, _ := g.last["resource"].(map[string]any)
	if g.last["subject"] != "alice" || ctx["time"] != "2026-05-01T09:00:00Z" || ctx["mfa"] != true || ctx["ip"] != "10.0.0.1" ||
		res["organization_id"] != "org" || res["type"] != "invoice" {
		t.Errorf("sent %v", g.last)
	}
}

func TestErrors(t *testing.T) {
	g := newCountingGatehouse(t)
	c := authzclient.New(authzclient.Config{BaseURL: g.URL})
	g.status.Store(http.StatusForbidden)
	_, err := c.Check(t.Context(), authzclient.Check{Subject: "alice", Permission: "invoices:read"})
	var e *authzclient.Error
	if !errors.As(err, &e) || e.Status != 403 || e.Code != "insufficient_scope" {
		t.Errorf("refused check: %v", err)
	}
	g.Close()
	_, err = c.Check(t.Context(), authzclient.Check{Subject: "bob", Permission: "invoices:read"})
	if !errors.Is(err, authzclient.ErrUnavailable) {
		t.Errorf("Gatehouse down: %v", err)
	}
}

func TestRequireFailsClosed(t *testing.T) {
	g := newCountingGatehouse(t)
	c := authzclient.New(authzclient.Config{BaseURL: g.URL, CacheTTL: -1})
	reached := 0
	h := c.Require("invoices:read", authzclient.AccessTokenSubject(nil))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if res, ok := authzclient.ResultFrom(r.Context()); !ok || !res.Allowed {
			t.Error("no decision in the context")
		}
		reached++
	}))
	serve := func(claims *accesstoken.Claims) (int, map[string]any) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if claims != nil {
			req = req.WithContext(accesstoken.WithClaims(context.Background(), *claims))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var p map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		return rec.Code, p
	}
	if code, _ := serve(&accesstoken.Claims{Subject: "alice", AMR: []string{"pwd", "mfa"}}); code != 200 || reached != 1 {
		t.Errorf("alice: %d", code)
	}
	g.mu.Lock()
	if ctx, _ := g.last["context"].(map[string]any); ctx["mfa"] != true {
		t.Errorf("mfa not passed on: %v", g.last)
	}
	g.mu.Unlock()
	if code, p := serve(&accesstoken.Claims{Subject: "bob"}); code != 403 || p["code"] != "forbidden" || p["reason"] != "no_matching_grant" {
		t.Errorf("bob: %d %v", code, p)
	}
	if code, _ := serve(nil); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := serve(&accesstoken.Claims{Subject: "svc", ClientID: "svc"}); code != 401 {
		t.Errorf("client token: %d", code)
	}
	g.status.Store(http.StatusForbidden)
	if code, p := serve(&accesstoken.Claims{Subject: "alice"}); code != 502 || p["code"] != "authz_failed" {
		t.Errorf("check refused: %d %v", code, p)
	}
	g.Close()
	if code, p := serve(&accesstoken.Claims{Subject: "alice"}); code != 503 || p["code"] != "authz_unavailable" {
		t.Errorf("Gatehouse down: %d %v", code, p)
	}
	if reached != 1 {
		t.Errorf("the handler ran %d times, want 1", reached)
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
