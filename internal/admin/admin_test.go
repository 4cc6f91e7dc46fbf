package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/kv/memory"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/session"
	"github.com/gatehouse/gatehouse/internal/store/sqlite"
	"github.com/gatehouse/gatehouse/internal/token"
)

// killSwitch is the token side of the kill switch: it keeps the cut-off.
type killSwitch struct {
	mu     sync.Mutex
	before time.Time
}

func (k *killSwitch) Issue(context.Context, token.AccessClaims) (string, time.Time, error) {
	return "", time.Time{}, nil
}
func (k *killSwitch) DenySession(context.Context, string, time.Time) error { return nil }
func (k *killSwitch) RevokeIssuedBefore(_ context.Context, t time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.before = t.Truncate(time.Microsecond)
	return nil
}
func (k *killSwitch) RevokedBefore() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.before
}

// anAdmin authenticates every request as an administrator.
type anAdmin struct{}

func (anAdmin) Authenticate(*http.Request) (auth.Principal, error) {
	return auth.Principal{UserID: "admin-1"}, nil
}

// adminOnly grants every permission to one user, the administrator.
type adminOnly string

func (a adminOnly) Authorize(_ context.Context, p auth.Principal, _, _ string) (bool, error) {
	return p.UserID == string(a), nil
}

// TestKillSwitchOnlyMovesForward checks that the kill switch refuses a
// time earlier than its current cut-off, which would quietly make valid
// again the tokens revoked between the two.
func TestKillSwitchOnlyMovesForward(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrator().Up(ctx); err != nil {
		t.Fatal(err)
	}
	ks := &killSwitch{}
	keys, err := secret.GenerateKeyString("t1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.ParseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := session.New(session.Deps{
		Store: event.Narrow(st, nil, func(tx event.Tx) session.Tx { return tx }), Tokens: ks, Keys: kr, KV: memory.New(time.Now),
		Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Deps{Store: event.Narrow(st, nil, func(tx event.Tx) Tx { return tx }), Sessions: sessions, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := &Handlers{Admin: auth.Admin{Authn: anAdmin{}, Authz: adminOnly("admin-1")}, Service: svc, KillSwitch: ks, Now: time.Now}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h.Routes(rt)
	revoke := func(before time.Time) (int, map[string]any) {
		t.Helper()
		body := `{"before": "` + before.UTC().Format(time.RFC3339Nano) + `"}`
		req := httptest.NewRequest("POST", "/v1/admin/tokens/revoke-before", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		var out map[string]any
		json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}

	now := time.Now()
	first := now.Add(-time.Minute)
	if code, body := revoke(first); code != 200 {
		t.Fatalf("first cut-off = %d %v", code, body)
	}
	code, body := revoke(first.Add(-time.Hour))
	if code != 409 || body["code"] != "cutoff_not_later" {
		t.Errorf("an earlier cut-off = %d %v, want 409 cutoff_not_later", code, body)
	}
	if got := ks.RevokedBefore(); !got.Equal(first.Truncate(time.Microsecond)) {
		t.Errorf("cut-off after the refused call = %v, want it kept at %v", got, first)
	}
	if code, body := revoke(first); code != 200 {
		t.Errorf("the same cut-off again = %d %v, want 200", code, body)
	}
	if code, body := revoke(now); code != 200 || !ks.RevokedBefore().Equal(now.Truncate(time.Microsecond)) {
		t.Errorf("a later cut-off = %d %v", code, body)
	}
}
