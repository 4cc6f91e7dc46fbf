package sms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const testUS = "+14155552671"

func TestTwilioSend(t *testing.T) {
	e := startTwilio(t)
	tw := e.provider()

	id, err := tw.Send(t.Context(), Message{To: testUS, Body: "Your Acme code is 913406"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.sent()
	if len(msgs) != 1 {
		t.Fatalf("emulator accepted %d messages, want 1", len(msgs))
	}
	want := twilioSMS{SID: id, To: testUS, From: testFrom, Body: "Your Acme code is 913406",
		StatusCallback: "https://auth.acme.test/v1/webhooks/twilio/status"}
	if msgs[0] != want {
		t.Errorf("emulator got %+v,\nwant %+v", msgs[0], want)
	}
	if !strings.HasPrefix(id, "SM") || len(id) != 34 {
		t.Errorf("provider id = %q, want the message SID", id)
	}
}

func TestTwilioSendWithMessagingService(t *testing.T) {
	e := startTwilio(t)
	tw := e.provider()
	tw.From, tw.MessagingServiceSID, tw.StatusCallback = "", testServiceSID, ""
	tw.BaseURL += "/" // a trailing slash is tolerated

	if _, err := tw.Send(t.Context(), Message{To: testUS, Body: "code 1"}); err != nil {
		t.Fatal(err)
	}
	got := e.sent()[0]
	if got.MessagingServiceSID != testServiceSID || got.From != "" || got.StatusCallback != "" {
		t.Errorf("emulator got %+v, want the service SID and neither From nor StatusCallback", got)
	}
}

func TestTwilioErrors(t *testing.T) {
	tests := []struct {
		name       string
		to         string
		token      string                                // default testAuthToken
		script     func(n int) (status int, body string) // answers every request when set
		permanent  bool
		httpStatus int
		code       int
	}{
		{name: "invalid To", to: "+15005550001", permanent: true, httpStatus: 400, code: 21211},
		{name: "invalid To, not in any plan", to: "+19999999999", permanent: true, httpStatus: 400, code: 21211},
		{name: "unreachable", to: "+15005550002", permanent: true, httpStatus: 400, code: 21612},
		{name: "region not enabled", to: "+15005550003", permanent: true, httpStatus: 400, code: 21408},
		{name: "unsubscribed", to: "+15005550004", permanent: true, httpStatus: 400, code: 21610},
		{name: "not a mobile number", to: "+15005550009", permanent: true, httpStatus: 400, code: 21614},
		{name: "authentication failed", to: testUS, token: "wrong-token", permanent: true, httpStatus: 401, code: 20003},
		{name: "too many requests", to: testUS, script: func(int) (int, string) {
			return 429, jsonError(20429, 429, "Too Many Requests")
		}, httpStatus: 429, code: 20429},
		{name: "sender queue full", to: testUS, script: func(int) (int, string) {
			return 400, jsonError(21611, 400, "This 'From' number has exceeded the maximum number of queued messages")
		}, httpStatus: 400, code: 21611},
		{name: "internal error", to: testUS, script: func(int) (int, string) {
			return 500, jsonError(20500, 500, "Internal Server Error")
		}, httpStatus: 500, code: 20500},
		{name: "proxy error page", to: testUS, script: func(int) (int, string) {
			return 502, "<html><body>Bad Gateway</body></html>"
		}, httpStatus: 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startTwilio(t)
			e.setScript(tt.script)
			tw := e.provider()
			if tt.token != "" {
				tw.AuthToken = tt.token
			}
			id, err := tw.Send(t.Context(), Message{To: tt.to, Body: "Your code is 913406"})
			if err == nil {
				t.Fatalf("Send succeeded with id %q", id)
			}
			if got := errors.Is(err, ErrPermanent); got != tt.permanent {
				t.Errorf("errors.Is(%v, ErrPermanent) = %v, want %v", err, got, tt.permanent)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if apiErr.HTTPStatus != tt.httpStatus || apiErr.Code != tt.code {
				t.Errorf("APIError = HTTP %d code %d, want HTTP %d code %d", apiErr.HTTPStatus, apiErr.Code, tt.httpStatus, tt.code)
			}
			if tt.code != 0 && !strings.Contains(err.Error(), fmt.Sprint(tt.code)) {
				t.Errorf("error %q does not name code %d", err, tt.code)
			}
			for _, s := range []string{"913406", tt.to, testAuthToken, tw.AuthToken} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains %q", err, s)
				}
			}
			if n := len(e.sent()); n != 0 {
				t.Errorf("emulator accepted %d messages", n)
			}
		})
	}
}

func TestTwilioGarbledSuccess(t *testing.T) {
	e := startTwilio(t)
	e.setScript(func(int) (int, string) { return 201, `{"status":"queued"}` })
	_, err := e.provider().Send(t.Context(), Message{To: testUS, Body: "code"})
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("Send = %v, want a retryable error for a 201 without a SID", err)
	}
}

func TestTwilioNetworkErrors(t *testing.T) {
	e := startTwilio(t)
	tw := e.provider()
	e.srv.Close()
	_, err := tw.Send(t.Context(), Message{To: testUS, Body: "code 913406"})
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("Send to a closed server = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), testAuthToken) || strings.Contains(err.Error(), "913406") {
		t.Errorf("error %q leaks the token or body", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := tw.Send(ctx, Message{To: testUS, Body: "code"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestTwilioRefusesLocally checks what Send refuses before making a
// request: all permanent.
func TestTwilioRefusesLocally(t *testing.T) {
	e := startTwilio(t)
	long := strings.Repeat("é", MaxBodyLength+1)
	tests := []struct {
		name   string
		modify func(*Twilio)
		m      Message
	}{
		{"To not E.164", nil, Message{To: "4155552671", Body: "x"}},
		{"To with spaces", nil, Message{To: "+1 415 555 2671", Body: "x"}},
		{"empty body", nil, Message{To: testUS}},
		{"body too long", nil, Message{To: testUS, Body: long}},
		{"body not UTF-8", nil, Message{To: testUS, Body: "\xff"}},
		{"no account", func(tw *Twilio) { tw.AccountSID = "" }, Message{To: testUS, Body: "x"}},
		{"account SID with a path", func(tw *Twilio) { tw.AccountSID = "AC/../../x" }, Message{To: testUS, Body: "x"}},
		{"no sender", func(tw *Twilio) { tw.From = "" }, Message{To: testUS, Body: "x"}},
		{"plain http to a remote host", func(tw *Twilio) { tw.BaseURL = "http://api.twilio.com" }, Message{To: testUS, Body: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := e.provider()
			if tt.modify != nil {
				tt.modify(tw)
			}
			if _, err := tw.Send(t.Context(), tt.m); !errors.Is(err, ErrPermanent) {
				t.Errorf("Send = %v, want ErrPermanent", err)
			}
		})
	}
	if n := e.requestCount(); n != 0 {
		t.Errorf("emulator saw %d authenticated requests, want 0", n)
	}
	// A body of exactly MaxBodyLength characters is fine.
	if _, err := e.provider().Send(t.Context(), Message{To: testUS, Body: long[len("é"):]}); err != nil {
		t.Errorf("Send of %d characters: %v", MaxBodyLength, err)
	}
}

func TestTwilioFormattingRedactsToken(t *testing.T) {
	tw := Twilio{AccountSID: testAccountSID, AuthToken: testAuthToken, From: testFrom}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("provider", "twilio", tw, "ptr", &tw)
	out := fmt.Sprintf("%v %+v %#v %s %v", tw, tw, tw, &tw, []any{&tw}) + logs.String()
	if strings.Contains(out, testAuthToken) {
		t.Errorf("formatted Twilio contains the auth token: %s", out)
	}
	if !strings.Contains(out, testAccountSID) {
		t.Errorf("formatted Twilio lacks the account SID: %s", out)
	}
}

func TestAPIErrorPermanent(t *testing.T) {
	tests := []struct {
		status, code int
		want         bool
	}{
		{400, 21211, true},
		{400, 0, true},
		{401, 20003, true},
		{404, 20404, true},
		{400, 21611, false},
		{429, 20429, false},
		{429, 0, false},
		{408, 0, false},
		{500, 20500, false},
		{503, 0, false},
		{302, 0, false},
	}
	for _, tt := range tests {
		e := &APIError{HTTPStatus: tt.status, Code: tt.code}
		if got := e.Permanent(); got != tt.want || errors.Is(e, ErrPermanent) != tt.want {
			t.Errorf("HTTP %d code %d: Permanent() = %v, Is(ErrPermanent) = %v, want %v",
				tt.status, tt.code, got, errors.Is(e, ErrPermanent), tt.want)
		}
	}
}

func TestConfig(t *testing.T) {
	valid := Config{AccountSID: testAccountSID, AuthToken: testAuthToken, From: testFrom}
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // in the error; none means valid
	}{
		{"valid with From", func(*Config) {}, nil},
		{"valid with service", func(c *Config) { c.From, c.MessagingServiceSID = "", testServiceSID }, nil},
		{"valid with both and options", func(c *Config) {
			c.MessagingServiceSID, c.BaseURL, c.StatusCallback = testServiceSID, "http://127.0.0.1:8080", "https://auth.acme.test/v1/webhooks/twilio/status"
		}, nil},
		{"outbox", func(c *Config) { *c = Config{} }, nil},
		{"token without account", func(c *Config) { c.AccountSID = "" }, []string{"without an account SID"}},
		{"API key SID instead of account", func(c *Config) { c.AccountSID = "SK0123456789abcdef0123456789abcdef" }, []string{"account SID"}},
		{"short account SID", func(c *Config) { c.AccountSID = "AC123" }, []string{"account SID"}},
		{"no token", func(c *Config) { c.AuthToken = "" }, []string{"auth token is empty"}},
		{"token with newline", func(c *Config) { c.AuthToken = testAuthToken + "\n" }, []string{"white space"}},
		{"no sender", func(c *Config) { c.From = "" }, []string{"sender"}},
		{"From not E.164", func(c *Config) { c.From = "415-555-0100" }, []string{"E.164"}},
		{"bad service SID", func(c *Config) { c.MessagingServiceSID = "MG1" }, []string{"messaging service SID"}},
		{"http base URL", func(c *Config) { c.BaseURL = "http://api.twilio.com" }, []string{"https"}},
		{"base URL with credentials", func(c *Config) { c.BaseURL = "https://u:p@api.twilio.com" }, []string{"credentials"}},
		{"relative callback", func(c *Config) { c.StatusCallback = "/v1/webhooks/twilio/status" }, []string{"status callback"}},
		{"all at once", func(c *Config) { c.AccountSID, c.AuthToken, c.From = "x", "", "y" },
			[]string{"account SID", "auth token", "E.164"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.modify(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if c.AuthToken != "" && strings.Contains(err.Error(), strings.TrimSpace(c.AuthToken)) {
				t.Errorf("error %q contains the auth token", err)
			}
		})
	}
}

func TestNewProviderFromConfig(t *testing.T) {
	dir := t.TempDir()
	p, err := NewProviderFromConfig(Config{}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := p.(*Outbox); !ok || o.Dir() != dir {
		t.Errorf("empty config gave %T, want an *Outbox in %s", p, dir)
	}

	cfg := Config{AccountSID: testAccountSID, AuthToken: testAuthToken, MessagingServiceSID: testServiceSID,
		BaseURL: "https://api.twilio.com", StatusCallback: "https://auth.acme.test" + StatusPath}
	p, err = NewProviderFromConfig(cfg, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	tw, ok := p.(*Twilio)
	if !ok {
		t.Fatalf("Twilio config gave %T", p)
	}
	if tw.AccountSID != cfg.AccountSID || tw.AuthToken != cfg.AuthToken || tw.MessagingServiceSID != cfg.MessagingServiceSID ||
		tw.BaseURL != cfg.BaseURL || tw.StatusCallback != cfg.StatusCallback || tw.From != "" {
		t.Errorf("Twilio = %+v does not match the config", tw)
	}

	if _, err := NewProviderFromConfig(Config{AccountSID: testAccountSID}, dir, nil); err == nil {
		t.Error("incomplete Twilio config accepted")
	}
	if _, err := NewProviderFromConfig(Config{}, "", nil); err == nil {
		t.Error("outbox without a directory accepted")
	}
}
