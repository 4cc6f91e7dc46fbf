package app

import (
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpSink is a real SMTP server (go-smtp) on 127.0.0.1 that stores every
// message it accepts as an .eml file in dir/outbox, where an outbox reader
// finds it.
type smtpSink struct {
	addr string
	dir  string
	n    atomic.Int64
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	sink := &smtpSink{dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(sink.dir, "outbox"), 0o700); err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: sink}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return sink
}

type sinkSession struct{ sink *smtpSink }

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	name := filepath.Join(s.sink.dir, "outbox", fmt.Sprintf("%06d.eml", s.sink.n.Add(1)))
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// TestEmailThroughSMTP runs registration and verification with a real SMTP
// server: the verification link arrives over SMTP and works once.
func TestEmailThroughSMTP(t *testing.T) {
	sink := startSMTPSink(t)
	e := newAccountEnv(t, map[string]string{
		"GATEHOUSE_SMTP_URL":   "smtp://" + sink.addr + "?starttls=off",
		"GATEHOUSE_EMAIL_FROM": "Gatehouse <auth@example.com>",
	})
	e.mail = newOutbox(sink.dir)
	code, body, _ := call(t, "POST", e.url("/v1/auth/register"), map[string]string{"email": "smtp-user@example.com", "password": strongPassword})
	if code != 201 {
		t.Fatalf("register = %d %v", code, body)
	}
	tok := linkToken(t, e.mail.wait(t, "smtp-user@example.com", "Verify your email"), "verify-email")
	if c, _, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": tok}); c != 200 {
		t.Fatalf("verify = %d", c)
	}
	if c, _, _ := call(t, "POST", e.url("/v1/auth/verify-email"), map[string]string{"token": tok}); c != 400 {
		t.Errorf("second use = %d, want 400", c)
	}
	if files, _ := filepath.Glob(filepath.Join(e.dataDir, "outbox", "*.eml")); len(files) != 0 {
		t.Errorf("with SMTP configured, %d messages still went to the data dir outbox", len(files))
	}
}
