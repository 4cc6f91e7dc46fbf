package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors returned (possibly wrapped) by SMTPSender.
var (
	// ErrStartTLSUnavailable is returned when an smtp:// server does not
	// offer STARTTLS and the URL does not say starttls=off.
	ErrStartTLSUnavailable = errors.New("mail: SMTP server does not offer STARTTLS")
	// ErrRejected marks a permanent (5xx) rejection of this particular
	// message: of its recipient, or of its content at the end of DATA.
	// Sending the same message again will fail again. Failures before that
	// point (connection, TLS, authentication, MAIL FROM) are usually
	// configuration or availability problems and are not marked.
	ErrRejected = errors.New("mail: message rejected by SMTP server")
)

// Defaults of SMTPSender.
const (
	DefaultSMTPTimeout = 30 * time.Second // one whole Send
	dialTimeout        = 10 * time.Second
	submissionPort     = "587" // smtp:// without a port (RFC 6409)
	implicitTLSPort    = "465" // smtps:// without a port (RFC 8314)
)

// SMTPSender delivers each message over its own connection to one SMTP
// server (a relay or a provider's submission endpoint). It is safe for
// concurrent use.
//
// It is built on the standard library's net/smtp client: it exposes
// Hello, Extension and StartTLS separately, which the TLS policy below
// needs, and its PlainAuth itself refuses to send credentials over an
// unencrypted connection to anything but localhost, a second guard behind
// this type's own checks. Timeouts are deadlines on the connection.
type SMTPSender struct {
	scheme   string // "smtp" (STARTTLS) or "smtps" (implicit TLS)
	host     string
	addr     string // host:port
	user     string
	password string
	auth     bool
	startTLS bool // smtp only; false with starttls=off
	helo     string
	from     string
	tls      *tls.Config
	redacted string

	// Timeout bounds one Send, from dial to QUIT; the caller's context may
	// end it sooner. NewSMTPSender sets DefaultSMTPTimeout.
	Timeout time.Duration
	// Now dates messages; NewSMTPSender sets time.Now.
	Now func() time.Time
}

// NewSMTPSender configures delivery from a URL:
//
//	smtp://user:pass@host:port    STARTTLS, required (port 587 by default)
//	smtps://user:pass@host:port   implicit TLS (port 465 by default)
//
// The user name and password are optional and are sent with AUTH PLAIN,
// only ever after TLS is up (or to localhost). Percent-encode reserved
// characters in them. Query parameters:
//
//	starttls=off   send without TLS; only for localhost or a loopback IP
//	helo=NAME      the host name sent in EHLO (default "localhost")
//
// from is the default From of messages that have none. tlsConfig, which
// may be nil, is used for both TLS modes; its ServerName defaults to the
// URL's host, so leave it empty unless the certificate names another
// host. Tests pass a config whose RootCAs trust their own CA.
//
// No error from this package contains the password.
func NewSMTPSender(rawURL, from string, tlsConfig *tls.Config) (*SMTPSender, error) {
	// url.Parse's error repeats the whole URL, password included: never
	// wrap it.
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("mail: SMTP URL is not a valid URL")
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		return nil, errors.New("mail: SMTP URL scheme must be smtp or smtps")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, errors.New("mail: SMTP URL has no host (smtp://[user:pass@]host[:port])")
	}
	if (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, errors.New("mail: SMTP URL must not have a path or fragment")
	}
	s := &SMTPSender{
		scheme:   u.Scheme,
		host:     u.Hostname(),
		startTLS: u.Scheme == "smtp",
		helo:     "localhost",
		tls:      tlsConfig,
		redacted: u.Redacted(),
		Timeout:  DefaultSMTPTimeout,
		Now:      time.Now,
	}
	port := u.Port()
	switch {
	case port == "" && u.Scheme == "smtp":
		port = submissionPort
	case port == "":
		port = implicitTLSPort
	default:
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("mail: SMTP URL port is not a number from 1 to 65535")
		}
	}
	s.addr = net.JoinHostPort(s.host, port)

	if u.User != nil {
		s.user = u.User.Username()
		s.password, _ = u.User.Password()
		if s.user == "" || s.password == "" {
			return nil, errors.New("mail: SMTP URL needs both a user name and a password, or neither")
		}
		s.auth = true
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("mail: SMTP URL query does not parse")
	}
	for key, vals := range q {
		if len(vals) != 1 && (key == "starttls" || key == "helo") {
			return nil, fmt.Errorf("mail: SMTP URL parameter %s given more than once", key)
		}
		switch v := vals[0]; key {
		case "starttls":
			if u.Scheme != "smtp" {
				return nil, errors.New("mail: SMTP URL parameter starttls applies to smtp:// only")
			}
			switch v {
			case "off":
				if !isLocalhost(s.host) {
					return nil, errors.New("mail: SMTP URL starttls=off is only allowed for localhost")
				}
				s.startTLS = false
			case "required":
			default:
				return nil, errors.New("mail: SMTP URL parameter starttls must be off or required")
			}
		case "helo":
			if !isHostName(v) {
				return nil, errors.New("mail: SMTP URL parameter helo must be a host name")
			}
			s.helo = v
		default:
			// Do not name the key: a password with an unescaped "?" ends up
			// in the query.
			return nil, errors.New("mail: SMTP URL has an unknown query parameter (known: starttls, helo)")
		}
	}

	if err := checkFrom(from); err != nil {
		return nil, err
	}
	s.from = from
	return s, nil
}

// String returns the URL with the password redacted.
func (s *SMTPSender) String() string { return "mail.SMTPSender(" + s.redacted + ")" }

// Send delivers m, filling its From when empty. An error wraps
// ErrStartTLSUnavailable when STARTTLS is required but not offered,
// ErrRejected when the server refused this message permanently, and the
// context's error when ctx or Timeout ended the attempt.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	if m.From == "" {
		m.From = s.from
	}
	raw, err := m.Build(s.Now())
	if err != nil {
		return err
	}
	from, to, err := m.addresses()
	if err != nil {
		return err
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	err = s.deliver(ctx, from.Address, to.Address, raw)
	if err == nil {
		return nil
	}
	ctxErr := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && ctxErr == nil && !time.Now().Before(dl) {
		// The connection's deadline, which is ctx's, passed a moment
		// before ctx's own timer fired.
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil {
		return fmt.Errorf("mail: smtp %s: %w (%v)", s.addr, ctxErr, err)
	}
	return err
}

func (s *SMTPSender) deliver(ctx context.Context, from, to string, raw []byte) error {
	conn, err := s.dial(ctx)
	if err != nil {
		return fmt.Errorf("mail: smtp connect %s: %w", s.addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fmt.Errorf("mail: smtp: %w", err)
		}
	}
	// A deadline in the past interrupts whatever read or write is blocked
	// when ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return stageError("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(s.helo); err != nil {
		return stageError("EHLO", err)
	}
	if s.startTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("%w (%s); set starttls=off only for a local relay", ErrStartTLSUnavailable, s.addr)
		}
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return stageError("STARTTLS", err)
		}
	}
	if s.auth {
		ok, mechs := c.Extension("AUTH")
		if !ok || !slices.Contains(strings.Fields(strings.ToUpper(mechs)), "PLAIN") {
			return fmt.Errorf("mail: smtp %s does not offer AUTH PLAIN", s.addr)
		}
		if err := c.Auth(smtp.PlainAuth("", s.user, s.password, s.host)); err != nil {
			return stageError("AUTH", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return stageError("MAIL FROM", err)
	}
	if err := c.Rcpt(to); err != nil {
		return rejection("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return stageError("DATA", err)
	}
	if _, err := w.Write(raw); err != nil {
		return stageError("DATA", err)
	}
	if err := w.Close(); err != nil {
		return rejection("DATA", err)
	}
	// The server has accepted the message. A failed QUIT must not make the
	// caller send it again.
	_ = c.Quit()
	return nil
}

func (s *SMTPSender) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	if s.scheme == "smtps" {
		td := &tls.Dialer{NetDialer: d, Config: s.tlsConfig()}
		return td.DialContext(ctx, "tcp", s.addr)
	}
	return d.DialContext(ctx, "tcp", s.addr)
}

func (s *SMTPSender) tlsConfig() *tls.Config {
	var c *tls.Config
	if s.tls != nil {
		c = s.tls.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = s.host
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

func stageError(stage string, err error) error {
	return fmt.Errorf("mail: smtp %s: %w", stage, err)
}

// rejection is stageError, or a rejectedError for a 5xx reply.
func rejection(stage string, err error) error {
	if te, ok := errors.AsType[*textproto.Error](err); ok && te.Code >= 500 && te.Code < 600 {
		return &rejectedError{stage: stage, err: err}
	}
	return stageError(stage, err)
}

// rejectedError is a permanent rejection of a message; it matches
// ErrRejected and unwraps to the server's reply (*textproto.Error).
type rejectedError struct {
	stage string
	err   error
}

func (e *rejectedError) Error() string {
	return "mail: SMTP server rejected the message at " + e.stage + ": " + e.err.Error()
}
func (e *rejectedError) Unwrap() error        { return e.err }
func (e *rejectedError) Is(target error) bool { return target == ErrRejected }

// isLocalhost reports whether host names this machine: "localhost" or a
// loopback IP.
func isLocalhost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isHostName reports whether s is a plausible DNS name for EHLO.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
