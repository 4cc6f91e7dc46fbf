package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of Twilio.
const (
	// DefaultTwilioBaseURL is Twilio's REST API.
	DefaultTwilioBaseURL = "https://api.twilio.com"
	// DefaultTwilioTimeout bounds one API call when HTTPClient is nil.
	// Twilio answers in well under a second; a slow answer is better
	// retried than waited for while the user waits for the code.
	DefaultTwilioTimeout = 15 * time.Second

	// maxTwilioResponse bounds how much of a response is read.
	maxTwilioResponse = 64 << 10
)

// defaultTwilioClient is used when Twilio.HTTPClient is nil.
var defaultTwilioClient = &http.Client{Timeout: DefaultTwilioTimeout}

// Twilio sends messages with Twilio's Programmable Messaging REST API:
// POST {BaseURL}/2010-04-01/Accounts/{AccountSID}/Messages.json with the
// form fields To, From and/or MessagingServiceSid, Body and StatusCallback,
// authenticated with HTTP Basic (account SID and auth token). It is safe
// for concurrent use.
//
// Errors are classified as Twilio advises: 429, 408 and 5xx answers and
// network failures are transient (plain errors, retried by the job); any
// other 4xx answer means the same request will fail again and is an
// *APIError that matches ErrPermanent. That includes the per-number
// refusals (21211 invalid 'To', 21408 region not enabled, 21610 recipient
// unsubscribed, 21612 unreachable, 21614 not a mobile number) and the
// account ones (20003 authentication failed, 21606 bad 'From'): retrying
// those for minutes would only delay offering the user the email code.
// The exceptions are the 4xx codes that mean "not now": 20429 and 21611
// (the sender's queue is full).
//
// The auth token never appears in an error or log, and the type formats
// itself with the token redacted.
type Twilio struct {
	AccountSID          string
	AuthToken           string
	From                string // E.164; optional with MessagingServiceSID
	MessagingServiceSID string
	BaseURL             string // default DefaultTwilioBaseURL
	StatusCallback      string // optional absolute URL of StatusHandler
	// HTTPClient makes the calls; nil means a client with
	// DefaultTwilioTimeout.
	HTTPClient *http.Client
}

// transientCodes are Twilio error codes that come with a 4xx status but
// mean "try again later".
var transientCodes = map[int]bool{
	20429: true, // Too Many Requests
	21611: true, // the From number's queue of outgoing messages is full
}

// APIError is an error answer of the Twilio API.
type APIError struct {
	// HTTPStatus is the response's status code.
	HTTPStatus int
	// Code is Twilio's error code (https://www.twilio.com/docs/errors/<code>),
	// 0 when the response carried none.
	Code int
	// Message is Twilio's description. It may quote the recipient's
	// number, so Error leaves it out; log it only where numbers may go.
	Message string
	// MoreInfo is Twilio's link to the error's documentation.
	MoreInfo string
}

// Permanent reports whether sending the same message again would fail
// again (see Twilio).
func (e *APIError) Permanent() bool {
	switch {
	case transientCodes[e.Code]:
		return false
	case e.HTTPStatus == http.StatusTooManyRequests, e.HTTPStatus == http.StatusRequestTimeout:
		return false
	case e.HTTPStatus >= 400 && e.HTTPStatus < 500:
		return true
	}
	return false
}

func (e *APIError) Error() string {
	what := "sms: Twilio failed to take the message"
	if e.Permanent() {
		what = "sms: Twilio refused the message"
	}
	s := what + ": HTTP " + strconv.Itoa(e.HTTPStatus)
	if e.Code != 0 {
		s += ", error " + strconv.Itoa(e.Code)
	}
	return s
}

// Is makes a permanent APIError match ErrPermanent.
func (e *APIError) Is(target error) bool { return target == ErrPermanent && e.Permanent() }

// twilioResponse is the part of Twilio's JSON answers Send reads: a
// message resource on success, an error object otherwise.
type twilioResponse struct {
	SID      string `json:"sid"`
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
}

// Send implements Provider.
func (t *Twilio) Send(ctx context.Context, m Message) (string, error) {
	if err := m.check(); err != nil {
		return "", err
	}
	if !isSID(t.AccountSID, "AC") || t.AuthToken == "" || (t.From == "" && t.MessagingServiceSID == "") {
		return "", fmt.Errorf("%w: Twilio provider is not configured (account SID, auth token and a sender)", ErrPermanent)
	}
	base := t.BaseURL
	if base == "" {
		base = DefaultTwilioBaseURL
	} else if err := checkBaseURL(base); err != nil {
		return "", fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	endpoint := strings.TrimRight(base, "/") + "/2010-04-01/Accounts/" + t.AccountSID + "/Messages.json"

	form := url.Values{}
	form.Set("To", m.To)
	if t.From != "" {
		form.Set("From", t.From)
	}
	if t.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", t.MessagingServiceSID)
	}
	form.Set("Body", m.Body)
	if t.StatusCallback != "" {
		form.Set("StatusCallback", t.StatusCallback)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("%w: Twilio base URL: %v", ErrPermanent, err)
	}
	req.SetBasicAuth(t.AccountSID, t.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "gatehouse")

	client := t.HTTPClient
	if client == nil {
		client = defaultTwilioClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// *url.Error names the method and URL (with the account SID, which
		// is an identifier, not a secret) and the cause.
		return "", fmt.Errorf("sms: Twilio request: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTwilioResponse))
	if err != nil {
		return "", fmt.Errorf("sms: Twilio response (HTTP %d): %w", resp.StatusCode, err)
	}
	var r twilioResponse
	jsonErr := json.Unmarshal(raw, &r)

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Twilio may have queued the message even if the answer is
		// garbled; the error is retried, and the user may get the code
		// twice, which beats not at all.
		if jsonErr != nil || !isProviderID(r.SID) {
			return "", fmt.Errorf("sms: Twilio accepted the request (HTTP %d) but its answer has no message SID", resp.StatusCode)
		}
		return r.SID, nil
	}
	apiErr := &APIError{HTTPStatus: resp.StatusCode}
	if jsonErr == nil {
		apiErr.Code, apiErr.Message, apiErr.MoreInfo = r.Code, r.Message, r.MoreInfo
	}
	return "", apiErr
}

// isProviderID reports whether s looks like a message SID: 1 to 64 ASCII
// letters and digits.
func isProviderID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// String describes t without its auth token.
func (t Twilio) String() string {
	return fmt.Sprintf("sms.Twilio{AccountSID: %s, AuthToken: [redacted], From: %s, MessagingServiceSID: %s}",
		t.AccountSID, t.From, t.MessagingServiceSID)
}

// GoString is String, so %#v does not print the token either.
func (t Twilio) GoString() string { return t.String() }

// LogValue implements slog.LogValuer without the auth token.
func (t Twilio) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("account_sid", t.AccountSID),
		slog.String("from", t.From),
		slog.String("messaging_service_sid", t.MessagingServiceSID),
	)
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback IP.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
