package oauth

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParams(t *testing.T) {
	const form, js = "application/x-www-form-urlencoded", "application/json; charset=utf-8"
	for _, c := range []struct {
		name, contentType, body string
		want                    url.Values // nil: refused
	}{
		{"form", form, "grant_type=refresh_token&refresh_token=abc", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"abc"}}},
		{"form repeated", form, "grant_type=refresh_token&grant_type=refresh_token", nil},
		{"form repeated, one empty", form, "scope=&scope=a", nil},
		{"JSON", js, ` {"grant_type": "refresh_token", "scope": ""} ` + "\n", url.Values{"grant_type": {"refresh_token"}, "scope": {""}}},
		{"JSON empty object", js, `{}`, url.Values{}},
		{"JSON repeated key", js, `{"a":"1","a":"1"}`, nil},
		{"JSON repeated key, escaped", js, `{"a":"1","\u0061":"2"}`, nil},
		{"JSON second value", js, `{"a":"1"}{"b":"2"}`, nil},
		{"JSON trailing garbage", js, `{"a":"1"} x`, nil},
		{"JSON unterminated", js, `{"a":"1"`, nil},
		{"JSON number", js, `{"a":1}`, nil},
		{"JSON null", js, `{"a":null}`, nil},
		{"JSON nested", js, `{"a":{"b":"c"}}`, nil},
		{"JSON array", js, `["a","b"]`, nil},
		{"JSON string", js, `"a"`, nil},
		{"other type", "text/plain", "a=b", nil},
		// RFC 8707: resource may be repeated, in the form or as a JSON array.
		{"form resources", form, "resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example", url.Values{"resource": {"https://a.example", "https://b.example"}}},
		{"JSON resource", js, `{"resource":"https://a.example"}`, url.Values{"resource": {"https://a.example"}}},
		{"JSON resources", js, `{"resource":["https://a.example","https://b.example"]}`, url.Values{"resource": {"https://a.example", "https://b.example"}}},
		{"JSON resources empty", js, `{"resource":[]}`, nil},
		{"JSON resources not strings", js, `{"resource":["a",1]}`, nil},
		{"JSON resource repeated key", js, `{"resource":"a","resource":"b"}`, nil},
		{"JSON other array", js, `{"scope":["a"]}`, nil},
	} {
		r := httptest.NewRequest("POST", "/oauth2/token?ignored=1", strings.NewReader(c.body))
		r.Header.Set("Content-Type", c.contentType)
		got, err := params(r)
		if c.want == nil {
			if err == nil {
				t.Errorf("%s: params = %v, want an error", c.name, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", c.name, diff)
		}
	}
}

// FuzzJSONParams: whatever the body, jsonParams does not panic, and what it
// accepts has each parameter exactly once.
func FuzzJSONParams(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"a":"b","a":"c"}`, `{"a":"b"} {}`, `{"a":["b"]}`, `{`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		v, err := jsonParams(strings.NewReader(body))
		if err != nil {
			if errors.Is(err, errRepeated) && v != nil {
				t.Errorf("values returned with an error")
			}
			return
		}
		for k, vs := range v {
			if len(vs) != 1 && !repeatable[k] {
				t.Errorf("%q has %d values", k, len(vs))
			}
		}
	})
}

func TestNotCrossSite(t *testing.T) {
	s := &Server{Issuer: "https://auth.example.test", AllowedOrigins: []string{"https://app.example.test/", "http://localhost:3000"}}
	for _, c := range []struct {
		contentType, origin string
		want                bool
		fetchSite           string
	}{
		{"application/json", "", true, ""},
		{"application/json; charset=utf-8", "https://evil.example", true, ""}, // a cross-site page cannot send it without a preflight
		{"application/x-www-form-urlencoded", "https://app.example.test", true, ""},
		{"application/x-www-form-urlencoded", "http://localhost:3000", true, ""},
		{"application/x-www-form-urlencoded", "", false, ""},
		{"application/x-www-form-urlencoded", "null", false, ""},
		{"application/x-www-form-urlencoded", "https://app.example.test.evil.example", false, ""},
		{"application/x-www-form-urlencoded", "http://app.example.test", false, ""},
		{"text/plain", "https://evil.example", false, ""},
		// Gatehouse's own origin: by Origin, or by what the browser says.
		{"application/x-www-form-urlencoded", "https://auth.example.test", true, ""},
		{"application/x-www-form-urlencoded", "", true, "same-origin"},
		{"application/x-www-form-urlencoded", "", false, "same-site"},
		{"application/x-www-form-urlencoded", "https://evil.example", false, "cross-site"},
	} {
		r := httptest.NewRequest("POST", "/oauth2/token", nil)
		r.Header.Set("Content-Type", c.contentType)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.fetchSite != "" {
			r.Header.Set("Sec-Fetch-Site", c.fetchSite)
		}
		if got := s.notCrossSite(r); got != c.want {
			t.Errorf("Content-Type %q, Origin %q, Sec-Fetch-Site %q: notCrossSite = %v, want %v", c.contentType, c.origin, c.fetchSite, got, c.want)
		}
	}
}
