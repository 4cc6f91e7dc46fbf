package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"Mozilla/5.0", 0, "Mozilla/5.0"},
		{"a\x00b", 0, "ab"},
		{"a\xffb", 0, "a\uFFFDb"},
		{"a\x00\xffb", 0, "a\uFFFDb"},
		{"ééé", 3, "é"},  // not half of the second é
		{"ééé", 4, "éé"}, // exactly two
		{"abc", 2, "ab"},
	} {
		got := CleanText(c.in, c.max)
		if got != c.want || !ValidText(got) {
			t.Errorf("CleanText(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestDecodeJSONRefusesInvalidText(t *testing.T) {
	type in struct {
		Email    string         `json:"email"`
		AMR      []string       `json:"amr"`
		Metadata map[string]any `json:"metadata"`
	}
	for body, field := range map[string]string{
		`{"email":"a\u0000b"}`:                            "email",
		"{\"email\":\"a\xffb\"}":                          "email",
		`{"email":"ok","amr":["pwd","\u0000"]}`:           "amr[1]",
		`{"metadata":{"a":{"b":[1,"x\u0000"]}}}`:          "metadata.a.b[1]",
		"{\"metadata\":{\"k\xc3\":1}}":                    "metadata.k\uFFFD",
		`{"metadata":{"k\u0000":1}}`:                      "metadata.k",
		`{"metadata":{"a":1,"b":"\\u0000","c":"\u0000"}}`: "metadata.c",
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		err := DecodeJSON(r, &in{})
		p := (*ErrorTable)(nil).Problem(err)
		if p.Status != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Field != field || p.Errors[0].Rule != "text" {
			t.Errorf("DecodeJSON(%q) = %v %+v, want 422 naming %q", body, err, p.Errors, field)
		}
	}
	// An escaped backslash before u0000 is text, not NUL; U+FFFD written
	// out is valid text too.
	for _, body := range []string{`{"email":"a\\u0000b"}`, `{"email":"\ufffd"}`, `{"email":"é"}`} {
		var v in
		if err := DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(body)), &v); err != nil || !utf8.ValidString(v.Email) {
			t.Errorf("DecodeJSON(%q) = %v", body, err)
		}
	}
}

func TestRouterRefusesInvalidQueryAndPath(t *testing.T) {
	rt := NewRouter(ErrorWriter{Log: slog.New(slog.DiscardHandler)})
	called := false
	rt.Handle("GET /x/{id}", func(w http.ResponseWriter, r *http.Request) error {
		called = true
		return nil
	})
	for target, want := range map[string]int{
		"/x/a%00b":      404,
		"/x/a%FFb":      404,
		"/x/1?q=a%00":   422,
		"/x/1?q=%C3":    422,
		"/x/1?q%00=1":   422,
		"/x/1?q=%C3%A9": 200,
	} {
		called = false
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		if rec.Code != want || called != (want == 200) {
			t.Errorf("GET %s = %d (handler ran: %v), want %d", target, rec.Code, called, want)
		}
	}
}
