package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// ValidText reports whether s is text every storage backend keeps as it is:
// valid UTF-8 without NUL (PostgreSQL refuses both in text columns and
// parameters). Request input that is not valid text is refused at the edge
// (DecodeJSON, the router for query strings and paths, the OAuth parameter
// reader), before it can reach a query.
func ValidText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// CleanText makes free-text metadata taken from request headers (the
// User-Agent, a device ID) storable: invalid UTF-8 becomes U+FFFD, NUL is
// removed, and the result is cut to at most max bytes without splitting a
// character. max <= 0 means no limit.
func CleanText(s string, max int) string {
	if !ValidText(s) {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	}
	if max > 0 && len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// invalidTextMessage is the message of the field error for input that is
// not valid text.
const invalidTextMessage = "Must be valid UTF-8 text without NUL characters."

// textFieldError is the 422 field error for field holding input that is
// not valid text.
func textFieldError(field string) FieldError {
	return FieldError{Field: field, Rule: "text", Message: invalidTextMessage}
}

// ValidValues reports whether every key and value of v is valid text.
func ValidValues(v url.Values) bool {
	for k, vs := range v {
		if !ValidText(k) || !allValid(vs) {
			return false
		}
	}
	return true
}

// checkRequestText refuses a request whose path or query string decodes to
// something that is not valid text: a path (and so any path value) with
// NUL or invalid UTF-8 names no resource (404); such a query parameter is a
// 422 naming it. A query string that does not parse is left to the handler,
// as before.
func checkRequestText(r *http.Request) *Problem {
	if !ValidText(r.URL.Path) {
		return NewProblem(http.StatusNotFound, "not_found", "No such resource.")
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	var errs []FieldError
	for k, vs := range q {
		if !ValidText(k) {
			errs = append(errs, textFieldError(CleanText(k, 64)))
			continue
		}
		for _, s := range vs {
			if !ValidText(s) {
				errs = append(errs, textFieldError(k))
				break
			}
		}
	}
	if len(errs) > 0 {
		return Validation(errs...)
	}
	return nil
}

// CleanHeaders makes the request headers that handlers store as free text
// (User-Agent) storable, replacing what is not valid text (see CleanText);
// the headers' other uses parse or compare them.
func CleanHeaders() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !allValid(r.Header.Values("User-Agent")) {
				r2 := *r
				r2.Header = r.Header.Clone() // copies the value slices too
				for i, v := range r2.Header["User-Agent"] {
					r2.Header["User-Agent"][i] = CleanText(v, 0)
				}
				r = &r2
			}
			next.ServeHTTP(w, r)
		})
	}
}

func allValid(vs []string) bool {
	for _, v := range vs {
		if !ValidText(v) {
			return false
		}
	}
	return true
}
