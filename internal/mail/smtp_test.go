package mail

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const testFrom = "Acme <no-reply@acme.test>"

func renderReset(t *testing.T) Message {
	t.Helper()
	m, err := newRenderer(t).Render(PasswordReset, Data{RecipientName: "Zoë", Link: testLink, ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m.To = "Zoë <zoe@example.com>"
	return m
}

func newSMTP(t *testing.T, rawURL string) *SMTPSender {
	t.Helper()
	s, err := NewSMTPSender(rawURL, testFrom, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkDelivered asserts the envelope, headers and both parts of a
// delivered password reset message.
func checkDelivered(t *testing.T, d delivered) {
	t.Helper()
	if d.from != "no-reply@acme.test" || d.to != "zoe@example.com" {
		t.Errorf("envelope from %q to %q", d.from, d.to)
	}
	p := parseEmail(t, d.raw)
	if p.subject != "Reset your Acme password" {
		t.Errorf("Subject = %q", p.subject)
	}
	if got := p.header.Get("From"); got != `"Acme" <no-reply@acme.test>` {
		t.Errorf("From = %q", got)
	}
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != "Zoë" || to[0].Address != "zoe@example.com" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if !strings.HasSuffix(p.header.Get("Message-ID"), "@acme.test>") {
		t.Errorf("Message-ID = %q", p.header.Get("Message-ID"))
	}
	if _, err := p.header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if !strings.Contains(p.text, testLink) || !strings.Contains(p.text, "Hello Zoë,") {
		t.Errorf("text part lacks link or greeting:\n%s", p.text)
	}
	if !strings.Contains(p.html, `href="`+strings.ReplaceAll(testLink, "&", "&amp;")+`"`) {
		t.Errorf("html part lacks the link:\n%s", p.html)
	}
}

func TestSMTPStartTLS(t *testing.T) {
	srv := startSMTP(t, smtpOpts{startTLS: true})
	s := newSMTP(t, srv.url("smtp", "", ""))
	if err := s.Send(t.Context(), renderReset(t)); err != nil {
		t.Fatal(err)
	}
	d := srv.wait(t, 5*time.Second)
	if !d.tls {
		t.Error("message was delivered without TLS")
	}
	checkDelivered(t, d)
}

func TestSMTPAuthPlain(t *testing.T) {
	srv := startSMTP(t, smtpOpts{startTLS: true, user: "mailer", pass: "s3cr3t/pa:ss"})
	s := newSMTP(t, srv.url("smtp", "mailer:s3cr3t%2Fpa%3Ass", ""))
	if err := s.Send(t.Context(), renderReset(t)); err != nil {
		t.Fatal(err)
	}
	d := srv.wait(t, 5*time.Second)
	if d.authUser != "mailer" || !d.tls {
		t.Errorf("auth user %q, tls %v; want mailer over TLS", d.authUser, d.tls)
	}
	checkDelivered(t, d)

	t.Run("wrong password", func(t *testing.T) {
		s := newSMTP(t, srv.url("smtp", "mailer:WrongPassw0rd", ""))
		err := s.Send(t.Context(), renderReset(t))
		if err == nil {
			t.Fatal("sent with a wrong password")
		}
		if strings.Contains(err.Error(), "WrongPassw0rd") {
			t.Errorf("error contains the password: %v", err)
		}
		if strings.Contains(s.String(), "WrongPassw0rd") {
			t.Errorf("String() contains the password: %s", s)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		err := newSMTP(t, srv.url("smtp", "", "")).Send(t.Context(), renderReset(t))
		if err == nil || !strings.Contains(err.Error(), "MAIL FROM") {
			t.Fatalf("error = %v, want the server's refusal of MAIL FROM", err)
		}
	})
	if n := len(srv.messages()); n != 1 {
		t.Errorf("server received %d messages, want 1", n)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	srv := startSMTP(t, smtpOpts{implicitTLS: true, user: "mailer", pass: "pw"})
	s := newSMTP(t, srv.url("smtps", "mailer:pw", ""))
	if err := s.Send(t.Context(), renderReset(t)); err != nil {
		t.Fatal(err)
	}
	d := srv.wait(t, 5*time.Second)
	if !d.tls || d.authUser != "mailer" {
		t.Errorf("tls %v, auth user %q", d.tls, d.authUser)
	}
	checkDelivered(t, d)
}

func TestSMTPStartTLSRequired(t *testing.T) {
	srv := startSMTP(t, smtpOpts{}) // no STARTTLS
	err := newSMTP(t, srv.url("smtp", "", "")).Send(t.Context(), renderReset(t))
	if !errors.Is(err, ErrStartTLSUnavailable) {
		t.Fatalf("error = %v, want ErrStartTLSUnavailable", err)
	}
	if n := len(srv.messages()); n != 0 {
		t.Fatalf("server received %d messages in clear text", n)
	}

	// An explicit starttls=off for a local relay sends in clear text.
	if err := newSMTP(t, srv.url("smtp", "", "starttls=off")).Send(t.Context(), renderReset(t)); err != nil {
		t.Fatal(err)
	}
	d := srv.wait(t, 5*time.Second)
	if d.tls {
		t.Error("tls reported on a plain connection")
	}
	checkDelivered(t, d)
}

func TestSMTPUntrustedCertificate(t *testing.T) {
	srv := startSMTP(t, smtpOpts{startTLS: true})
	s, err := NewSMTPSender(srv.url("smtp", "", ""), testFrom, nil) // system roots
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(t.Context(), renderReset(t))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("error = %v, want a STARTTLS certificate failure", err)
	}
	if n := len(srv.messages()); n != 0 {
		t.Fatalf("server received %d messages", n)
	}
}

func TestSMTPRejections(t *testing.T) {
	t.Run("permanent recipient rejection", func(t *testing.T) {
		srv := startSMTP(t, smtpOpts{startTLS: true, rcptErr: func(string) error {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
		}})
		err := newSMTP(t, srv.url("smtp", "", "")).Send(t.Context(), renderReset(t))
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("error = %v, want ErrRejected", err)
		}
	})
	t.Run("temporary failure", func(t *testing.T) {
		srv := startSMTP(t, smtpOpts{startTLS: true, dataErr: func(int) error {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
		}})
		err := newSMTP(t, srv.url("smtp", "", "")).Send(t.Context(), renderReset(t))
		if err == nil || errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "451") {
			t.Fatalf("error = %v, want a 451 that is not ErrRejected", err)
		}
	})
	t.Run("permanent content rejection", func(t *testing.T) {
		srv := startSMTP(t, smtpOpts{startTLS: true, dataErr: func(int) error {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Content rejected"}
		}})
		err := newSMTP(t, srv.url("smtp", "", "")).Send(t.Context(), renderReset(t))
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("error = %v, want ErrRejected", err)
		}
	})
}

// TestSMTPTimeout talks to a server that accepts the connection and never
// says anything: Send must give up when its context ends.
func TestSMTPTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})

	s := newSMTP(t, "smtp://"+l.Addr().String())
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Send(ctx, renderReset(t))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Send took %s after its context ended", d)
	}

	// The sender's own Timeout applies without a deadline on ctx.
	s.Timeout = 200 * time.Millisecond
	if err := s.Send(t.Context(), renderReset(t)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want context.DeadlineExceeded from Timeout", err)
	}
}

func TestNewSMTPSenderURL(t *testing.T) {
	const pw = "Tr0ub4dor&3"
	tests := []struct {
		name, url string
		ok        bool
		addr      string
	}{
		{"smtp default port", "smtp://mail.example.com", true, "mail.example.com:587"},
		{"smtps default port", "smtps://mail.example.com", true, "mail.example.com:465"},
		{"explicit port", "smtp://u:p@mail.example.com:2525", true, "mail.example.com:2525"},
		{"ipv6", "smtp://[::1]:25?starttls=off", true, "[::1]:25"},
		{"starttls off localhost", "smtp://localhost:25?starttls=off", true, "localhost:25"},
		{"starttls required", "smtp://mail.example.com?starttls=required", true, "mail.example.com:587"},
		{"helo", "smtp://mail.example.com?helo=gatehouse.example.com", true, "mail.example.com:587"},
		{"starttls off remote", "smtp://mail.example.com?starttls=off", false, ""},
		{"starttls off remote with auth", "smtp://u:" + pw + "@mail.example.com?starttls=off", false, ""},
		{"starttls on smtps", "smtps://localhost?starttls=off", false, ""},
		{"starttls bad value", "smtp://localhost?starttls=maybe", false, ""},
		{"bad helo", "smtp://mail.example.com?helo=a%20b", false, ""},
		{"unknown parameter", "smtp://mail.example.com?insecure_skip_verify=true", false, ""},
		{"http scheme", "http://mail.example.com", false, ""},
		{"no host", "smtp://", false, ""},
		{"path", "smtp://mail.example.com/x", false, ""},
		{"bad port", "smtp://mail.example.com:99999", false, ""},
		{"user without password", "smtp://u@mail.example.com", false, ""},
		// The password must not show in any of these errors.
		{"unescaped ? in password", "smtp://u:" + pw + "?x@mail.example.com", false, ""},
		{"bad escape in password", "smtp://u:%zz" + pw + "@mail.example.com", false, ""},
		{"control character", "smtp://u:" + pw + "@mail.example.com\x7f", false, ""},
		{"password into query", "smtp://u@mail.example.com?" + pw + "=1", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSMTPSender(tt.url, testFrom, nil)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if s.addr != tt.addr {
					t.Errorf("addr = %q, want %q", s.addr, tt.addr)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "Tr0ub") {
				t.Errorf("error contains the password: %v", err)
			}
		})
	}

	t.Run("from", func(t *testing.T) {
		for _, from := range []string{"", "no-reply", "a@b.test\r\nBcc: x@example.com", "a@[192.0.2.1]", "ä@acme.test"} {
			if _, err := NewSMTPSender("smtp://mail.example.com", from, nil); err == nil {
				t.Errorf("From %q accepted", from)
			}
		}
	})
}
