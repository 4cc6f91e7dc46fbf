package app

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// message is an email read back from the outbox.
type message struct {
	File    string
	To      string
	Subject string
	Text    string
}

// outbox reads the .eml files Gatehouse wrote to DATA_DIR/outbox.
type outbox struct {
	dir  string
	seen map[string]bool
}

func newOutbox(dataDir string) *outbox {
	return &outbox{dir: filepath.Join(dataDir, "outbox"), seen: map[string]bool{}}
}

func readMessage(t testing.TB, path string) message {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	to, _ := mail.ParseAddress(m.Header.Get("To"))
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var text string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			var r io.Reader = p
			if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
				r = quotedprintable.NewReader(p)
			}
			b, _ := io.ReadAll(r)
			text = string(b)
		}
	}
	return message{File: filepath.Base(path), To: to.Address, Subject: subject, Text: text}
}

// wait returns the next unseen message to the address whose subject
// contains subject, waiting for the job queue to deliver it.
func (o *outbox) wait(t testing.TB, to, subject string) message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m, ok := o.find(t, to, subject); ok {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no email to %s with subject containing %q arrived; outbox has %v", to, subject, o.all(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (o *outbox) find(t testing.TB, to, subject string) (message, bool) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(o.dir, "*.eml"))
	sort.Strings(names)
	for _, n := range names {
		if o.seen[n] {
			continue
		}
		m := readMessage(t, n)
		if strings.EqualFold(m.To, to) && strings.Contains(m.Subject, subject) {
			o.seen[n] = true
			return m, true
		}
	}
	return message{}, false
}

// none asserts that no unseen message to the address arrives within a
// short while.
func (o *outbox) none(t *testing.T, to string, within time.Duration) {
	t.Helper()
	time.Sleep(within)
	if m, ok := o.find(t, to, ""); ok {
		t.Fatalf("unexpected email to %s: %q", to, m.Subject)
	}
}

func (o *outbox) all(t testing.TB) []string {
	names, _ := filepath.Glob(filepath.Join(o.dir, "*.eml"))
	var out []string
	for _, n := range names {
		m := readMessage(t, n)
		out = append(out, m.To+": "+m.Subject)
	}
	return out
}

var tokenLink = regexp.MustCompile(`https?://\S+/(verify-email|reset-password|not-me)\?token=([A-Za-z0-9_-]+)`)

// linkToken extracts the one-time token of the link with the given path.
func linkToken(t testing.TB, m message, path string) string {
	t.Helper()
	for _, match := range tokenLink.FindAllStringSubmatch(m.Text, -1) {
		if match[1] == path {
			return match[2]
		}
	}
	t.Fatalf("no %s link in the email %q:\n%s", path, m.Subject, m.Text)
	return ""
}

func jsonDecode(res *http.Response, v any) error { return json.NewDecoder(res.Body).Decode(v) }
