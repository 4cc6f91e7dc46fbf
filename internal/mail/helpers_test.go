package mail

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/gatehouse/gatehouse/internal/secret"
)

// testCert is a self-signed certificate for localhost and 127.0.0.1, made
// once per test binary; its pool trusts it.
var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gatehouse mail test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
})

// clientTLS trusts the test certificate only.
func clientTLS() *tls.Config {
	_, pool := testCert()
	return &tls.Config{RootCAs: pool}
}

// smtpOpts configures a test SMTP server.
type smtpOpts struct {
	startTLS    bool   // offer STARTTLS
	implicitTLS bool   // TLS from the first byte (smtps)
	user, pass  string // when set, require AUTH PLAIN with these
	// dataErr, when set, is called for the n-th DATA (from 1) and its
	// error, if any, is the server's reply instead of accepting.
	dataErr func(n int) error
	// rcptErr, when set, is called for every RCPT TO and its error, if
	// any, is the server's reply instead of accepting.
	rcptErr func(to string) error
}

// delivered is a message a test SMTP server accepted.
type delivered struct {
	from, to string
	raw      []byte
	tls      bool   // the session was encrypted
	authUser string // who authenticated, if anyone
}

// testSMTP is an in-process SMTP server (go-smtp) on 127.0.0.1.
type testSMTP struct {
	addr string
	opts smtpOpts

	mu       sync.Mutex
	dataSeen int
	mails    []delivered
	got      chan struct{} // receives after every accepted message
}

func startSMTP(t *testing.T, o smtpOpts) *testSMTP {
	t.Helper()
	ts := &testSMTP{opts: o, got: make(chan struct{}, 100)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{srv: ts, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	cert, _ := testCert()
	if o.startTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	var l net.Listener
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.implicitTLS {
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	ts.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ts
}

// url returns the sender URL for this server with the given scheme and
// query.
func (ts *testSMTP) url(scheme, userinfo, query string) string {
	u := scheme + "://"
	if userinfo != "" {
		u += userinfo + "@"
	}
	u += ts.addr
	if query != "" {
		u += "?" + query
	}
	return u
}

func (ts *testSMTP) messages() []delivered {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]delivered(nil), ts.mails...)
}

// wait returns the first message, failing the test after timeout.
func (ts *testSMTP) wait(t *testing.T, timeout time.Duration) delivered {
	t.Helper()
	select {
	case <-ts.got:
		return ts.messages()[0]
	case <-time.After(timeout):
		t.Fatalf("no message delivered within %s", timeout)
		return delivered{}
	}
}

type testSession struct {
	srv      *testSMTP
	conn     *smtp.Conn
	authUser string
	from     string
	to       []string
}

var _ smtp.AuthSession = (*testSession)(nil)

func (s *testSession) AuthMechanisms() []string {
	if s.srv.opts.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *testSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.srv.opts.user || password != s.srv.opts.pass {
			return errors.New("invalid credentials")
		}
		s.authUser = username
		return nil
	}), nil
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.opts.user != "" && s.authUser == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.srv.opts.rcptErr != nil {
		if err := s.srv.opts.rcptErr(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.dataSeen++
	if s.srv.opts.dataErr != nil {
		if err := s.srv.opts.dataErr(s.srv.dataSeen); err != nil {
			return err
		}
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.mails = append(s.srv.mails, delivered{
		from: s.from, to: strings.Join(s.to, ","), raw: raw, tls: isTLS, authUser: s.authUser,
	})
	s.srv.got <- struct{}{}
	return nil
}

func (s *testSession) Reset()        { s.from, s.to = "", nil }
func (s *testSession) Logout() error { return nil }

// parsedEmail is an RFC 5322 message taken apart the way a mail client
// would.
type parsedEmail struct {
	header    mail.Header
	subject   string // decoded
	text      string // decoded text/plain part
	html      string // decoded text/html part
	partTypes []string
}

// parseEmail parses raw with net/mail and mime/multipart, checking the
// structure Build promises: CRLF line endings, multipart/alternative with
// two quoted-printable UTF-8 parts.
func parseEmail(t *testing.T, raw []byte) parsedEmail {
	t.Helper()
	if i := bytes.IndexByte(bytes.ReplaceAll(raw, []byte("\r\n"), nil), '\n'); i >= 0 {
		t.Fatalf("bare LF in message at byte %d", i)
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\r")) {
		t.Fatal("bare CR in message")
	}
	for i, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line %d is %d characters long", i+1, len(line))
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail cannot read message: %v", err)
	}
	var p parsedEmail
	p.header = msg.Header
	p.subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject: %v", err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		cte := part.Header.Get("Content-Transfer-Encoding")
		if cte != "quoted-printable" && cte != "7bit" {
			t.Fatalf("part Content-Transfer-Encoding %q", cte)
		}
		ct, cparams, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil || !strings.EqualFold(cparams["charset"], "utf-8") {
			t.Fatalf("part Content-Type %q: %v", part.Header.Get("Content-Type"), err)
		}
		encoded, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		body := encoded
		if cte == "7bit" {
			for _, line := range strings.Split(string(encoded), "\r\n") {
				if len(line) > 998 || !isASCII(line) || strings.ContainsAny(line, "\r\n") {
					t.Fatalf("7bit line is not 7bit: %q", line)
				}
			}
			body = []byte(strings.ReplaceAll(string(encoded), "\r\n", "\n"))
		} else {
			for _, line := range strings.Split(string(encoded), "\r\n") {
				if len(line) > 76 {
					t.Fatalf("quoted-printable line longer than 76: %q", line)
				}
			}
			if body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(encoded))); err != nil {
				t.Fatalf("quoted-printable: %v", err)
			}
		}
		p.partTypes = append(p.partTypes, ct)
		switch ct {
		case "text/plain":
			p.text = string(body)
		case "text/html":
			p.html = string(body)
		}
	}
	if strings.Join(p.partTypes, ",") != "text/plain,text/html" {
		t.Fatalf("parts %v, want text/plain then text/html", p.partTypes)
	}
	return p
}

func newKeyring(t *testing.T) *secret.Keyring {
	t.Helper()
	ks, err := secret.GenerateKeyString("k1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.ParseKeys(ks)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newRenderer(t *testing.T) *Renderer {
	t.Helper()
	r, err := NewRenderer("", Brand{ProductName: "Acme", SupportEmail: "support@acme.test"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
