package auth_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// fixed is an Authenticator with a fixed answer.
type fixed struct {
	p   auth.Principal
	err error
}

func (f fixed) Authenticate(*http.Request) (auth.Principal, error) { return f.p, f.err }

// TestRequireChallenges: RFC 6750 §3.1: a request without credentials gets
// a challenge without an error code; a bad token gets error="invalid_token";
// other failures are server errors without a challenge.
func TestRequireChallenges(t *testing.T) {
	for _, c := range []struct {
		name       string
		err        error
		status     int
		challenge  string
		handlerRan bool
	}{
		{"authenticated", nil, http.StatusOK, "", true},
		{"no credentials", auth.ErrNoCredentials, http.StatusUnauthorized, "Bearer", false},
		{"no credentials, wrapped", fmt.Errorf("api key: %w", auth.ErrNoCredentials), http.StatusUnauthorized, "Bearer", false},
		{"invalid token", fmt.Errorf("%w: expired", auth.ErrInvalidToken), http.StatusUnauthorized, `Bearer error="invalid_token"`, false},
		{"deny list down", errors.New("kv unreachable"), http.StatusInternalServerError, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ran := false
			rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: slog.New(slog.DiscardHandler)})
			rt.Handle("GET /x", auth.Require(fixed{auth.Principal{UserID: "u1"}, c.err}, func(w http.ResponseWriter, r *http.Request) error {
				ran = true
				p, _ := auth.FromContext(r.Context())
				_, err := io.WriteString(w, p.UserID)
				return err
			}))
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
			if w.Code != c.status || w.Header().Get("WWW-Authenticate") != c.challenge || ran != c.handlerRan {
				t.Errorf("status %d, WWW-Authenticate %q, handler ran %v; want %d, %q, %v",
					w.Code, w.Header().Get("WWW-Authenticate"), ran, c.status, c.challenge, c.handlerRan)
			}
		})
	}
	if !errors.Is(auth.ErrNoCredentials, auth.ErrInvalidToken) {
		t.Error("ErrNoCredentials is not an ErrInvalidToken: authenticators that wrap others would stop treating it as a 401")
	}
}

// TestIsClient: a client_credentials token (the client its subject, no
// session) is the client's; a user's token through a client, or an API
// key, is not.
func TestIsClient(t *testing.T) {
	for _, c := range []struct {
		p    auth.Principal
		want bool
	}{
		{auth.Principal{UserID: "cl_1", ClientID: "cl_1"}, true},
		{auth.Principal{ClientID: "cl_1"}, true},
		{auth.Principal{UserID: "u1", ClientID: "cl_1", SessionID: "s1"}, false},
		{auth.Principal{UserID: "u1", ClientID: "cl_1"}, false},
		{auth.Principal{UserID: "cl_1", ClientID: "cl_1", APIKeyID: "k1"}, false},
		{auth.Principal{UserID: "u1", SessionID: "s1"}, false},
		{auth.Principal{}, false},
	} {
		if got := c.p.IsClient(); got != c.want {
			t.Errorf("%+v.IsClient() = %v, want %v", c.p, got, c.want)
		}
	}
}
