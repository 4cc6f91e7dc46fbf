package passkey

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// TestDemoMountedOnlyWhenAsked: the demo page exists only with Demo (the
// wiring sets it outside production), under a strict policy; without a
// Service every passkey route says passkeys are off.
func TestDemoMountedOnlyWhenAsked(t *testing.T) {
	table, err := httpapi.NewErrorTable(Errors())
	if err != nil {
		t.Fatal(err)
	}
	for _, demo := range []bool{false, true} {
		rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.DiscardHandler), Errors: table})
		(&Handlers{Demo: demo}).Routes(rt)
		srv := httptest.NewServer(rt)
		res, err := http.Get(srv.URL + "/passkeys-demo")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		switch {
		case demo && (res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'")):
			t.Errorf("with Demo: %d, CSP %q", res.StatusCode, res.Header.Get("Content-Security-Policy"))
		case !demo && res.StatusCode != 404:
			t.Errorf("without Demo: %d, want 404", res.StatusCode)
		}
		res, err = http.Post(srv.URL+"/v1/auth/passkey/begin", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 404 {
			t.Errorf("passkey/begin without a Service = %d, want 404 passkeys_disabled", res.StatusCode)
		}
		srv.Close()
	}
}
