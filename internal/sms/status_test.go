package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// Twilio's published validation example (its helper libraries' tests and
// the request-validation docs): auth token 12345, this URL and these POST
// parameters.
const (
	exampleToken = "12345"
	exampleURL   = "https://mycompany.com/myapp.php?foo=1&bar=2"
)

var exampleParams = url.Values{
	"CallSid": {"CA1234567890ABCDE"},
	"Caller":  {"+14158675309"},
	"Digits":  {"1234"},
	"From":    {"+14158675309"},
	"To":      {"+18005551212"},
}

func TestTwilioSignaturePublishedExamples(t *testing.T) {
	if got, want := TwilioSignature(exampleToken, exampleURL, exampleParams), "RSOYDt4T1cUTdK1PDd93/VVr8B8="; got != want {
		t.Errorf("TwilioSignature of the published example = %q, want %q", got, want)
	}
	// A repeated name is signed with its distinct values sorted (the
	// helper libraries' vector).
	dup := url.Values{"Sid": {"CA123"}, "SidAccount": {"AC123"}, "Digits": {"5678", "1234", "1234"}}
	if got, want := TwilioSignature(exampleToken, exampleURL, dup), "IK+Dwps556ElfBT0I3Rgjkr1wJU="; got != want {
		t.Errorf("TwilioSignature with repeated parameters = %q, want %q", got, want)
	}

	// The helper libraries' port handling: a signature over the URL with
	// the port removed, or with the default port added, is accepted.
	tests := []struct {
		name, url, sig string
		want           bool
	}{
		{"as published", exampleURL, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", true},
		{"signed with :443", exampleURL, "kvajT1Ptam85bY51eRf/AJRuM3w=", true},
		{"request URL has a port, signed without", strings.Replace(exampleURL, ".com", ".com:1234", 1), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", true},
		{"http with a port, signed with it", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", true},
		{"http, signed with :80", "http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4=", true},
		{"other query", exampleURL + "&baz=3", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", false},
		{"http instead of https", "http://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", false},
		{"other path", "https://mycompany.com/myapp.php/?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", false},
		{"garbage", exampleURL, "FAIL", false},
		{"empty", exampleURL, "", false},
	}
	for _, tt := range tests {
		if got := validTwilioSignature(exampleToken, tt.sig, tt.url, exampleParams); got != tt.want {
			t.Errorf("%s: valid = %v, want %v", tt.name, got, tt.want)
		}
	}
	tampered := url.Values{}
	for k, v := range exampleParams {
		tampered[k] = v
	}
	tampered.Set("Digits", "9999")
	if validTwilioSignature(exampleToken, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", exampleURL, tampered) {
		t.Error("tampered parameter accepted")
	}
	if validTwilioSignature("54321", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", exampleURL, exampleParams) {
		t.Error("other auth token accepted")
	}
}

// sign computes a signature the way Twilio's documentation describes,
// independently of TwilioSignature: pairs must be given in sorted order.
func sign(token, fullURL string, pairs ...[2]string) string {
	s := fullURL
	for _, p := range pairs {
		s += p[0] + p[1]
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

const (
	publicURL = "https://auth.acme.test" + StatusPath
	testSID   = "SM0123456789abcdef0123456789abcdef"
)

// deliveredParams is a delivery callback as Twilio sends it, sorted.
var deliveredParams = [][2]string{
	{"AccountSid", testAccountSID},
	{"ApiVersion", "2010-04-01"},
	{"From", testFrom},
	{"MessageSid", testSID},
	{"MessageStatus", "delivered"},
	{"SmsSid", testSID},
	{"SmsStatus", "delivered"},
	{"To", usNumber},
}

type recorder struct {
	mu   sync.Mutex
	got  []Status
	fail error
}

func (r *recorder) record(_ context.Context, s Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, s)
	return nil
}

// newStatusServer mounts a StatusHandler on an httpapi.Router, as the
// server does.
func newStatusServer(t *testing.T) (*StatusHandler, *recorder, http.Handler) {
	t.Helper()
	rec := &recorder{}
	h := &StatusHandler{AuthToken: testAuthToken, PublicURL: publicURL, Record: rec.record}
	rt := httpapi.NewRouter(httpapi.ErrorWriter{Log: nil})
	h.Routes(rt)
	return h, rec, rt
}

// post sends a form callback with the given signature ("" for none) to
// the path (with an optional query).
func post(t *testing.T, srv http.Handler, target, sig string, pairs [][2]string) *httptest.ResponseRecorder {
	t.Helper()
	form := url.Values{}
	for _, p := range pairs {
		form.Add(p[0], p[1])
	}
	req := httptest.NewRequest(http.MethodPost, "http://10.0.0.5:8080"+target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	return w
}

func problemCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, w.Body)
	}
	var p struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p.Code
}

func TestStatusHandlerRecords(t *testing.T) {
	_, rec, srv := newStatusServer(t)
	w := post(t, srv, StatusPath, sign(testAuthToken, publicURL, deliveredParams...), deliveredParams)
	if w.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body)
	}
	undelivered := [][2]string{
		{"AccountSid", testAccountSID}, {"ErrorCode", "30003"}, {"MessageSid", testSID},
		{"MessageStatus", "undelivered"}, {"To", usNumber},
	}
	if w := post(t, srv, StatusPath, sign(testAuthToken, publicURL, undelivered...), undelivered); w.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body)
	}
	// The older SmsStatus name alone is enough.
	legacy := [][2]string{{"MessageSid", testSID}, {"SmsStatus", "sent"}}
	if w := post(t, srv, StatusPath, sign(testAuthToken, publicURL, legacy...), legacy); w.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body)
	}
	want := []Status{
		{MessageSID: testSID, Status: StatusDelivered, To: usNumber},
		{MessageSID: testSID, Status: StatusUndelivered, ErrorCode: 30003, To: usNumber},
		{MessageSID: testSID, Status: StatusSent},
	}
	if !equalSlices(rec.got, want) {
		t.Errorf("recorded %+v,\nwant %+v", rec.got, want)
	}
	if rec.got[0].Failed() || !rec.got[1].Failed() || rec.got[2].Failed() {
		t.Errorf("Failed() wrong for %+v", rec.got)
	}
}

func TestStatusHandlerRefuses(t *testing.T) {
	good := sign(testAuthToken, publicURL, deliveredParams...)
	with := func(name, value string) [][2]string {
		out := append([][2]string(nil), deliveredParams...)
		for i := range out {
			if out[i][0] == name {
				out[i][1] = value
			}
		}
		return out
	}
	tests := []struct {
		name   string
		target string
		sig    string
		params [][2]string
	}{
		{"no signature", StatusPath, "", deliveredParams},
		{"garbage signature", StatusPath, "not-a-signature", deliveredParams},
		{"tampered status", StatusPath, good, with("MessageStatus", "failed")},
		{"tampered recipient", StatusPath, good, with("To", usNumber2)},
		{"parameter added", StatusPath, good, append(append([][2]string(nil), deliveredParams...), [2]string{"ErrorCode", "30007"})},
		{"parameter removed", StatusPath, good, deliveredParams[1:]},
		{"query added to a signed URL", StatusPath + "?x=1", good, deliveredParams},
		{"signed for another URL", StatusPath, sign(testAuthToken, "https://evil.test"+StatusPath, deliveredParams...), deliveredParams},
		{"signed for http", StatusPath, sign(testAuthToken, "http://auth.acme.test"+StatusPath, deliveredParams...), deliveredParams},
		{"signed with another token", StatusPath, sign("other-token", publicURL, deliveredParams...), deliveredParams},
		{"signed unsorted", StatusPath, sign(testAuthToken, publicURL, append(slices.Clone(deliveredParams[1:]), deliveredParams[0])...), deliveredParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rec, srv := newStatusServer(t)
			w := post(t, srv, tt.target, tt.sig, tt.params)
			if w.Code != http.StatusForbidden || problemCode(t, w) != "invalid_signature" {
				t.Errorf("HTTP %d %s, want 403 invalid_signature", w.Code, w.Body)
			}
			if len(rec.got) != 0 {
				t.Errorf("recorded %+v", rec.got)
			}
		})
	}
}

func TestStatusHandlerQueryAndPort(t *testing.T) {
	_, rec, srv := newStatusServer(t)
	// A status callback configured with a query is signed with it.
	sig := sign(testAuthToken, publicURL+"?ref=42", deliveredParams...)
	if w := post(t, srv, StatusPath+"?ref=42", sig, deliveredParams); w.Code != http.StatusOK {
		t.Errorf("signed query: HTTP %d %s", w.Code, w.Body)
	}
	// Twilio may sign with the default port spelled out.
	sig = sign(testAuthToken, "https://auth.acme.test:443"+StatusPath, deliveredParams...)
	if w := post(t, srv, StatusPath, sig, deliveredParams); w.Code != http.StatusOK {
		t.Errorf("signed with :443: HTTP %d %s", w.Code, w.Body)
	}
	if len(rec.got) != 2 {
		t.Errorf("recorded %d statuses, want 2", len(rec.got))
	}
}

func TestStatusHandlerUnconfigured(t *testing.T) {
	for _, h := range []*StatusHandler{{PublicURL: publicURL}, {AuthToken: testAuthToken}} {
		var got []Status
		h.Record = func(_ context.Context, s Status) error { got = append(got, s); return nil }
		// A signature made with the empty token must not pass either.
		for _, sig := range []string{sign("", publicURL, deliveredParams...), sign(testAuthToken, "", deliveredParams...)} {
			if w := post(t, h, StatusPath, sig, deliveredParams); w.Code != http.StatusForbidden {
				t.Errorf("%+v: HTTP %d, want 403", h, w.Code)
			}
		}
		if len(got) != 0 {
			t.Errorf("unconfigured handler recorded %+v", got)
		}
	}
}

func TestStatusHandlerBadCallbacks(t *testing.T) {
	tests := []struct {
		name   string
		params [][2]string
	}{
		{"no MessageSid", [][2]string{{"MessageStatus", "sent"}}},
		{"no status", [][2]string{{"MessageSid", testSID}}},
		{"odd status", [][2]string{{"MessageSid", testSID}, {"MessageStatus", "<script>"}}},
		{"odd SID", [][2]string{{"MessageSid", "SM/../x"}, {"MessageStatus", "sent"}}},
		{"odd error code", [][2]string{{"ErrorCode", "x"}, {"MessageSid", testSID}, {"MessageStatus", "failed"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rec, srv := newStatusServer(t)
			w := post(t, srv, StatusPath, sign(testAuthToken, publicURL, tt.params...), tt.params)
			if w.Code != http.StatusBadRequest || problemCode(t, w) != "invalid_request" {
				t.Errorf("HTTP %d %s, want 400 invalid_request", w.Code, w.Body)
			}
			if len(rec.got) != 0 {
				t.Errorf("recorded %+v", rec.got)
			}
		})
	}
}

func TestStatusHandlerRecordFails(t *testing.T) {
	_, rec, srv := newStatusServer(t)
	rec.fail = errors.New("database is locked: secret detail")
	w := post(t, srv, StatusPath, sign(testAuthToken, publicURL, deliveredParams...), deliveredParams)
	if w.Code != http.StatusInternalServerError || problemCode(t, w) != "internal_error" {
		t.Errorf("HTTP %d %s, want 500 internal_error", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "secret detail") {
		t.Errorf("500 body leaks the error: %s", w.Body)
	}
}

func TestStatusHandlerMethodAndSize(t *testing.T) {
	h, _, srv := newStatusServer(t)
	req := httptest.NewRequest(http.MethodGet, StatusPath, nil)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET through the router: HTTP %d, want 405", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, StatusPath, nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET on the handler: HTTP %d Allow %q, want 405 POST", w.Code, w.Header().Get("Allow"))
	}
	big := [][2]string{{"Body", strings.Repeat("a", maxStatusBody)}, {"MessageSid", testSID}, {"MessageStatus", "sent"}}
	if w := post(t, srv, StatusPath, sign(testAuthToken, publicURL, big...), big); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized callback: HTTP %d, want 413", w.Code)
	}
}
