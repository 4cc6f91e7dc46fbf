package mail

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "outbox")
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	o, err := NewOutbox(dir, testFrom, log)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	o.Now = func() time.Time { return at }

	m := renderReset(t)
	if err := o.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}

	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("outbox dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("outbox holds %d entries, want 1", len(entries))
	}
	name := entries[0].Name()
	if !regexp.MustCompile(`^20250607T080910\.123456789Z-[0-9a-f]{12}\.eml$`).MatchString(name) {
		t.Errorf("file name %q, want <time>-<random>.eml", name)
	}
	fi, err := entries[0].Info()
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	d := delivered{from: "no-reply@acme.test", to: "zoe@example.com", raw: raw}
	checkDelivered(t, d)
	if date, _ := parseEmail(t, raw).header.Date(); !date.Equal(at.Truncate(time.Second)) {
		t.Errorf("Date = %v, want %v", date, at)
	}

	// One log record, with the recipient and template only.
	var rec map[string]any
	if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
		t.Fatalf("log is not one JSON record: %v\n%s", err, logs.String())
	}
	delete(rec, "time")
	delete(rec, "level")
	delete(rec, "msg")
	want := map[string]any{"to": m.To, "template": PasswordReset}
	if fmt.Sprint(rec) != fmt.Sprint(want) {
		t.Errorf("log attributes = %v, want %v", rec, want)
	}
	for _, secret := range []string{"tok_9f8e7d6c5b4a", m.Subject, "Hello"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

func TestOutboxTightensDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := NewOutbox(dir, testFrom, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("outbox dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}

func TestOutboxRefusesBadMessage(t *testing.T) {
	dir := t.TempDir()
	o, err := NewOutbox(dir, testFrom, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := renderReset(t)
	m.To = "zoe@example.com\r\nBcc: all@example.com"
	if err := o.Send(t.Context(), m); !errors.Is(err, ErrHeader) {
		t.Fatalf("error = %v, want ErrHeader", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("outbox holds %d entries after a refused message", len(entries))
	}
}

// TestOutboxAtomic reads the outbox continuously while messages are
// written: every .eml file it sees must be complete.
func TestOutboxAtomic(t *testing.T) {
	dir := t.TempDir()
	o, err := NewOutbox(dir, testFrom, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := renderReset(t)
	m.HTML += strings.Repeat("<p>padding to make each write take a while</p>\n", 3000)

	const n = 30
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	seen := map[string]bool{} // files read already
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				mu.Lock()
				problems = append(problems, err.Error())
				mu.Unlock()
				return
			}
			for _, e := range entries {
				mu.Lock()
				checked := seen[e.Name()]
				mu.Unlock()
				if checked || !strings.HasSuffix(e.Name(), ".eml") {
					continue
				}
				raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if errors.Is(err, os.ErrNotExist) {
					continue
				}
				mu.Lock()
				seen[e.Name()] = true
				if err != nil {
					problems = append(problems, err.Error())
				} else if !bytes.HasSuffix(raw, []byte("--\r\n")) || !bytes.Contains(raw, []byte("padding")) {
					problems = append(problems, fmt.Sprintf("%s is incomplete (%d bytes)", e.Name(), len(raw)))
				}
				mu.Unlock()
			}
		}
	}()
	for range n {
		if err := o.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()

	if len(problems) > 0 {
		t.Fatalf("reader saw partial files:\n%s", strings.Join(problems, "\n"))
	}
	if len(seen) == 0 {
		t.Fatal("the reader never saw a file; the test proves nothing")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		t.Fatalf("outbox holds %d entries, want %d .eml files: %v", len(entries), n, names)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		parseEmail(t, raw)
	}
}

func TestNewSenderFromURL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	s, err := NewSenderFromURL("", dir, testFrom, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := s.(*Outbox); !ok || o.Dir() != dir {
		t.Errorf("empty URL gave %T, want an *Outbox in %s", s, dir)
	}
	s, err = NewSenderFromURL("smtps://u:p@mail.example.com", dir, testFrom, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*SMTPSender); !ok {
		t.Errorf("smtps URL gave %T, want *SMTPSender", s)
	}
	if _, err := NewSenderFromURL("smtp://mail.example.com?starttls=off", dir, testFrom, nil, nil); err == nil {
		t.Error("starttls=off for a remote host accepted")
	}
	if _, err := NewSenderFromURL("", "", testFrom, nil, nil); err == nil {
		t.Error("outbox without a directory accepted")
	}
}
