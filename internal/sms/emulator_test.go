package sms

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Credentials the emulator accepts.
const (
	testAccountSID = "AC0123456789abcdef0123456789abcdef"
	testAuthToken  = "tw-auth-token-5ecret-value"
	testFrom       = "+14155550100"
	testServiceSID = "MG0123456789abcdef0123456789abcdef"
)

// Twilio's magic test numbers: with test credentials, sending to them
// fails the way a real send to such a number would. The emulator answers
// them the same way.
var magicNumbers = map[string]twilioError{
	"+15005550001": {21211, "The 'To' number +15005550001 is not a valid phone number.", 400},
	"+15005550002": {21612, "The 'To' phone number: +15005550002, is not currently reachable using the 'From' phone number via SMS.", 400},
	"+15005550003": {21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +15005550003.", 400},
	"+15005550004": {21610, "Attempt to send to unsubscribed recipient", 400},
	"+15005550009": {21614, "'To' number is not a valid mobile number", 400},
}

type twilioError struct {
	Code    int
	Message string
	Status  int
}

// twilioSMS is a message the emulator accepted.
type twilioSMS struct {
	SID                 string
	To, From, Body      string
	MessagingServiceSID string
	StatusCallback      string
}

// twilioEmulator is an HTTP server speaking the contract of Twilio's
// Messages API: POST /2010-04-01/Accounts/{AccountSid}/Messages.json with
// HTTP Basic authentication and a form body, answering 201 with the
// message resource as JSON, or an error object
// {"code","message","more_info","status"} with the error's HTTP status.
type twilioEmulator struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests int
	messages []twilioSMS
	// script, when set, is asked first for the n-th request (from 1, after
	// authentication); a non-zero status is answered with body as is.
	script func(n int) (status int, body string)
	got    chan twilioSMS
}

func startTwilio(t *testing.T) *twilioEmulator {
	t.Helper()
	e := &twilioEmulator{got: make(chan twilioSMS, 100)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{account}/Messages.json", e.create)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeTwilioError(w, twilioError{20404, "The requested resource " + r.URL.Path + " was not found", 404})
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *twilioEmulator) setScript(f func(n int) (int, string)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.script = f
}

// provider returns a Twilio provider for the emulator sending from testFrom.
func (e *twilioEmulator) provider() *Twilio {
	return &Twilio{
		AccountSID: testAccountSID, AuthToken: testAuthToken, From: testFrom,
		BaseURL: e.srv.URL, StatusCallback: "https://auth.acme.test" + StatusPath,
		HTTPClient: e.srv.Client(),
	}
}

func (e *twilioEmulator) sent() []twilioSMS {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]twilioSMS(nil), e.messages...)
}

func (e *twilioEmulator) requestCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

// wait returns the next accepted message, failing the test after timeout.
func (e *twilioEmulator) wait(t *testing.T, timeout time.Duration) twilioSMS {
	t.Helper()
	select {
	case m := <-e.got:
		return m
	case <-time.After(timeout):
		t.Fatalf("no message accepted within %s", timeout)
		return twilioSMS{}
	}
}

func writeTwilioError(w http.ResponseWriter, te twilioError) {
	w.Header().Set("Content-Type", "application/json")
	if te.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	}
	w.WriteHeader(te.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"code":      te.Code,
		"message":   te.Message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", te.Code),
		"status":    te.Status,
	})
}

func (e *twilioEmulator) create(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != testAccountSID || pass != testAuthToken {
		writeTwilioError(w, twilioError{20003, "Authenticate", http.StatusUnauthorized})
		return
	}
	if r.PathValue("account") != user {
		writeTwilioError(w, twilioError{20404, "The requested resource " + r.URL.Path + " was not found", 404})
		return
	}
	e.mu.Lock()
	e.requests++
	n, script := e.requests, e.script
	e.mu.Unlock()
	if script != nil {
		if status, body := script(n); status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
			return
		}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeTwilioError(w, twilioError{20001, "Unsupported content type", 400})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeTwilioError(w, twilioError{20001, "Bad request", 400})
		return
	}
	f := r.PostForm
	to, from, service, body := f.Get("To"), f.Get("From"), f.Get("MessagingServiceSid"), f.Get("Body")
	switch {
	case to == "":
		writeTwilioError(w, twilioError{21604, "A 'To' phone number is required.", 400})
		return
	case from == "" && service == "":
		writeTwilioError(w, twilioError{21603, "A 'From' phone number is required.", 400})
		return
	case from != "" && from != testFrom:
		writeTwilioError(w, twilioError{21606, "The From phone number " + from + " is not a valid, SMS-capable inbound phone number or short code for your account.", 400})
		return
	case body == "":
		writeTwilioError(w, twilioError{21602, "Message body is required.", 400})
		return
	case utf8.RuneCountInString(body) > 1600:
		writeTwilioError(w, twilioError{21617, "The concatenated message body exceeds the 1600 character limit.", 400})
		return
	}
	if te, ok := magicNumbers[to]; ok {
		writeTwilioError(w, te)
		return
	}
	if num, err := phonenumbers.Parse(to, ""); err != nil || !phonenumbers.IsValidNumber(num) || phonenumbers.Format(num, phonenumbers.E164) != to {
		writeTwilioError(w, twilioError{21211, "The 'To' number " + to + " is not a valid phone number.", 400})
		return
	}

	var rb [16]byte
	_, _ = rand.Read(rb[:])
	sid := "SM" + hex.EncodeToString(rb[:])
	status := "queued"
	if service != "" {
		status = "accepted"
	}
	msg := twilioSMS{SID: sid, To: to, From: from, Body: body, MessagingServiceSID: service, StatusCallback: f.Get("StatusCallback")}
	e.mu.Lock()
	e.messages = append(e.messages, msg)
	e.mu.Unlock()
	e.got <- msg

	var msgService any
	if service != "" {
		msgService = service
	}
	now := time.Now().UTC().Format(time.RFC1123Z)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"account_sid": testAccountSID, "api_version": "2010-04-01", "body": body,
		"date_created": now, "date_sent": nil, "date_updated": now, "direction": "outbound-api",
		"error_code": nil, "error_message": nil, "from": from, "messaging_service_sid": msgService,
		"num_media": "0", "num_segments": "1", "price": nil, "price_unit": "USD",
		"sid": sid, "status": status, "to": to,
		"uri": "/2010-04-01/Accounts/" + testAccountSID + "/Messages/" + sid + ".json",
	})
}

// jsonError is a Twilio error object as the emulator's script answers it.
func jsonError(code, status int, message string) string {
	b, _ := json.Marshal(map[string]any{
		"code": code, "message": message, "status": status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
	})
	return string(b)
}
