package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/token"
)

// TestFailAnswersOutagesOfTheTable: what the error table maps to
// service_unavailable (here the token package's revocation state, alone,
// without a kv error inside) is a 503 temporarily_unavailable; the table
// comes from the Server's field, not from what packages register.
func TestFailAnswersOutagesOfTheTable(t *testing.T) {
	tbl, err := httpapi.NewErrorTable(token.Errors())
	if err != nil {
		t.Fatal(err)
	}
	lost := fmt.Errorf("%w: the deny list was lost", token.ErrUnavailable)
	for _, c := range []struct {
		errors     *httpapi.ErrorTable
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{tbl, lost, 503, "temporarily_unavailable", "5"},
		{nil, lost, 500, "server_error", ""},
		{tbl, errors.New("bug"), 500, "server_error", ""},
	} {
		s := &Server{Log: slog.New(slog.DiscardHandler), Errors: c.errors}
		rec := httptest.NewRecorder()
		s.fail(rec, httptest.NewRequest("POST", "/oauth/token", nil), c.err)
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != c.status || body["error"] != c.code || rec.Header().Get("Retry-After") != c.retryAfter {
			t.Errorf("fail(%v) with table %v = %d %v Retry-After %q, want %d %s %q", c.err, c.errors != nil, rec.Code, body, rec.Header().Get("Retry-After"), c.status, c.code, c.retryAfter)
		}
	}
}
