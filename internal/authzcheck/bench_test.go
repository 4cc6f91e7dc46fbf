package authzcheck

import (
	"context"
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
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
)

// BenchmarkCheckHTTP measures cached checks over a real loopback HTTP
// server: 8 clients with keep-alive, each sending its share of b.N checks
// one after the other. The authenticator is a map lookup, so the numbers
// are those of the check path (decode, cache, decision, encode) and of
// net/http; a JWT verification per request comes on top in production.
// It reports checks/s and the p50 and p99 latencies seen by the clients.
func BenchmarkCheckHTTP(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "gatehouse.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrator().Up(ctx); err != nil {
		b.Fatal(err)
	}
	f := &fixture{st: st, cs: &countingStore{Store: st}}
	u := f.benchUser(b)

	c, err := New(Deps{Store: st, Engine: newEngine(b), KV: memKV(b)})
	if err != nil {
		b.Fatal(err)
	}
	srv := newServer(b, c, fakeAuth{"tok": {UserID: u}}, nil)
	d, _ := c.Check(ctx, Query{Subject: u, Permission: "invoices:read", Resource: authz.Resource{OwnerID: u}})
	if !d.Allowed {
		b.Fatalf("benchmark check denied: %+v", d)
	}
	body := `{"permission":"invoices:read","resource":{"type":"invoice","id":"inv-1","organization_id":"","owner_id":"` + u + `"}}`
	load(b, srv.URL+"/v1/authz/check", body)
}

// BenchmarkNoopHTTP is BenchmarkCheckHTTP's load against a handler that
// answers a constant: the ceiling of HTTP on this machine, to compare with.
func BenchmarkNoopHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"allowed":true,"reason":"allowed","matched":[]}` + "\n"))
	}))
	defer srv.Close()
	load(b, srv.URL, `{"permission":"invoices:read"}`)
}

// load sends b.N requests from 8 clients with keep-alive and reports
// requests/s and the clients' p50 and p99 latencies.
func load(b *testing.B, url, body string) {
	const clients = 8
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	do := func() (time.Duration, error) {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return 0, &httpError{res.StatusCode}
		}
		return time.Since(start), nil
	}
	// Warm the cache and the connections.
	for range clients * 4 {
		if _, err := do(); err != nil {
			b.Fatal(err)
		}
	}

	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range clients {
		n := b.N / clients
		if i < b.N%clients {
			n++
		}
		lat[i] = make([]time.Duration, 0, n)
		wg.Go(func() {
			for range n {
				l, err := do()
				if err != nil {
					b.Error(err)
					return
				}
				lat[i] = append(lat[i], l)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	at := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(q*float64(len(all))))].Microseconds())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

type httpError struct{ status int }

func (e *httpError) Error() string { return "status " + http.StatusText(e.status) }

// benchUser creates a user with three grants over a small hierarchy, one
// of them conditional, the shape of a typical application user.
func (f *fixture) benchUser(b *testing.B) string {
	ctx := context.Background()
	email := "bench@example.com"
	u, err := f.st.CreateUser(ctx, store.User{Email: email, EmailNormalized: email})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []string{"invoices:read", "invoices:write", "invoices:delete", "reports:read", "payments:read"} {
		if _, err := f.st.CreatePermission(ctx, store.Permission{Name: p}); err != nil {
			b.Fatal(err)
		}
	}
	mk := func(r store.Role) store.Role {
		r, err := f.st.CreateRole(ctx, r)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	viewer := mk(store.Role{Name: "viewer", Allow: allow("invoices:read", "reports:read")})
	editor := mk(store.Role{Name: "editor", Allow: allow("invoices:write"), Deny: allow("payments:read"), Parents: []string{viewer.ID}})
	owner := mk(store.Role{Name: "owner", Allow: []store.RolePermission{{Permission: "invoices:delete", Condition: "resource.owner_id == user.id"}}, Parents: []string{editor.ID}})
	for _, r := range []store.Role{viewer, editor, owner} {
		if _, err := f.st.CreateGrant(ctx, store.RoleGrant{UserID: u.ID, RoleID: r.ID}); err != nil {
			b.Fatal(err)
		}
	}
	return u.ID
}

var _ auth.Authenticator = fakeAuth(nil)

func memKV(b *testing.B) *memory.Store {
	s := memory.New(time.Now)
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkCheckHandler is the cached check through the router without
// the network: what the handler itself costs per request.
func BenchmarkCheckHandler(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "gatehouse.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrator().Up(ctx); err != nil {
		b.Fatal(err)
	}
	f := &fixture{st: st}
	u := f.benchUser(b)
	c, err := New(Deps{Store: st, Engine: newEngine(b), KV: memKV(b)})
	if err != nil {
		b.Fatal(err)
	}
	table, err := httpapi.NewErrorTable(Errors())
	if err != nil {
		b.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.DiscardHandler), Errors: table})
	(&Handlers{Checker: c, Auth: fakeAuth{"tok": {UserID: u}}}).Routes(rt)
	body := `{"permission":"invoices:read","resource":{"type":"invoice","id":"inv-1","organization_id":"","owner_id":"` + u + `"}}`
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/v1/authz/check", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer tok")
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			rt.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code, rec.Body.String())
			}
		}
	})
}
