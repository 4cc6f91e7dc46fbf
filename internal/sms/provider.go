package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Message is one text message.
type Message struct {
	// To is the recipient in E.164 form, as Normalize returns it.
	To string
	// Body is the text. It holds a one-time code: never log it.
	Body string
}

// MaxBodyLength is the longest body Twilio accepts, in characters (10
// segments of 160 GSM-7 characters). A code message is far shorter.
const MaxBodyLength = 1600

// check validates m before it is sent. Its failures are permanent.
func (m Message) check() error {
	if !isE164Syntax(m.To) {
		return fmt.Errorf("%w: recipient is not an E.164 number", ErrPermanent)
	}
	if m.Body == "" {
		return fmt.Errorf("%w: empty message body", ErrPermanent)
	}
	if !utf8.ValidString(m.Body) || utf8.RuneCountInString(m.Body) > MaxBodyLength {
		return fmt.Errorf("%w: message body is not UTF-8 or longer than %d characters", ErrPermanent, MaxBodyLength)
	}
	return nil
}

// Provider delivers one text message and returns the provider's id for it
// (Twilio's message SID), which later delivery status callbacks name.
//
// An error that wraps ErrPermanent means the same message will never be
// accepted and must not be retried; any other error may be transient.
// Implementations must not log a message's body, nor put it or any
// credential into an error.
type Provider interface {
	Send(ctx context.Context, m Message) (providerID string, err error)
}

// ErrPermanent marks a send that can never succeed: a recipient that is
// not a valid, reachable mobile number, one that opted out, a country the
// account may not send to, refused credentials. Test with errors.Is; a
// refusal by Twilio is also an *APIError carrying Twilio's error code.
var ErrPermanent = errors.New("sms: message permanently refused")

// Config selects and configures the Provider. With AccountSID empty,
// messages go to the development outbox; otherwise to Twilio.
type Config struct {
	// AccountSID is the Twilio account ("AC" and 32 hex digits).
	AccountSID string
	// AuthToken is the account's auth token. It authenticates API calls
	// and signs status callbacks.
	AuthToken string
	// From is the sending number in E.164 form. Either From or
	// MessagingServiceSID must be set; with both, Twilio sends from From
	// with the service's features.
	From string
	// MessagingServiceSID is a Twilio Messaging Service ("MG" and 32 hex
	// digits), which picks the sender from its pool.
	MessagingServiceSID string
	// BaseURL replaces https://api.twilio.com, for tests or a regional
	// edge. It must be https unless it names localhost.
	BaseURL string
	// StatusCallback is the absolute URL Twilio posts delivery statuses
	// to: the issuer + "/v1/webhooks/twilio/status". Empty: no callbacks.
	StatusCallback string
}

// Validate reports every problem with c at once. An empty c (outbox) is
// valid; fields other than AccountSID set without it are a mistake.
// Problems never quote the auth token.
func (c Config) Validate() error {
	if c.AccountSID == "" {
		if c.AuthToken != "" || c.From != "" || c.MessagingServiceSID != "" || c.BaseURL != "" || c.StatusCallback != "" {
			return errors.New("sms: Twilio settings given without an account SID")
		}
		return nil
	}
	var errs []error
	if !isSID(c.AccountSID, "AC") {
		errs = append(errs, errors.New("sms: Twilio account SID must be AC followed by 32 hex digits"))
	}
	if c.AuthToken == "" {
		errs = append(errs, errors.New("sms: Twilio auth token is empty"))
	} else if strings.TrimSpace(c.AuthToken) != c.AuthToken || strings.ContainsAny(c.AuthToken, "\r\n") {
		errs = append(errs, errors.New("sms: Twilio auth token has surrounding white space or a line break"))
	}
	switch {
	case c.From == "" && c.MessagingServiceSID == "":
		errs = append(errs, errors.New("sms: set a Twilio sender: a From number or a messaging service SID"))
	case c.From != "" && !isE164Syntax(c.From):
		errs = append(errs, errors.New("sms: Twilio From must be an E.164 number such as +14155552671"))
	}
	if c.MessagingServiceSID != "" && !isSID(c.MessagingServiceSID, "MG") {
		errs = append(errs, errors.New("sms: Twilio messaging service SID must be MG followed by 32 hex digits"))
	}
	if c.BaseURL != "" {
		if err := checkBaseURL(c.BaseURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.StatusCallback != "" {
		u, err := url.Parse(c.StatusCallback)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			errs = append(errs, errors.New("sms: Twilio status callback must be an absolute http(s) URL without credentials"))
		}
	}
	return errors.Join(errs...)
}

// checkBaseURL accepts an https URL, or http for localhost, without
// credentials, query or fragment.
func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("sms: Twilio base URL must be an absolute URL without credentials, query or fragment")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return errors.New("sms: Twilio base URL must use https (http only for localhost)")
	}
	return nil
}

// isSID reports whether s is a Twilio SID with the given two-letter
// prefix: the prefix and 32 hexadecimal digits.
func isSID(s, prefix string) bool {
	if len(s) != 34 || !strings.HasPrefix(s, prefix) {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// NewProviderFromConfig returns the Provider cfg asks for: Twilio when
// cfg.AccountSID is set (after Validate), else an Outbox writing into
// outboxDir, which is for development only (the caller should refuse it
// in production). log may be nil.
func NewProviderFromConfig(cfg Config, outboxDir string, log *slog.Logger) (Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.AccountSID == "" {
		return NewOutbox(outboxDir, log)
	}
	return &Twilio{
		AccountSID:          cfg.AccountSID,
		AuthToken:           cfg.AuthToken,
		From:                cfg.From,
		MessagingServiceSID: cfg.MessagingServiceSID,
		BaseURL:             cfg.BaseURL,
		StatusCallback:      cfg.StatusCallback,
	}, nil
}
