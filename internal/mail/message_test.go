package mail

import (
	"errors"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestBuild(t *testing.T) {
	date := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	long := strings.Repeat("word ", 40) + strings.Repeat("x", 120)
	m := Message{
		From:     "Acme <no-reply@mail.acme.test>",
		To:       "Zoë Example <zoe@example.com>",
		Subject:  "Réinitialisez votre mot de passe — Acme, with a rather long subject line that needs folding",
		Text:     "Hello Zoë,\n\nOpen https://auth.acme.test/reset?token=abc=def&x=1\n" + long + "\n.\nA line starting with a dot.\n",
		HTML:     `<p>Hello Zoë,</p><p><a href="https://auth.acme.test/reset?token=abc=def&amp;x=1">Reset</a></p>` + long,
		Template: PasswordReset,
	}
	raw, err := m.Build(date)
	if err != nil {
		t.Fatal(err)
	}
	p := parseEmail(t, raw)

	if got, want := p.subject, m.Subject; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
	if strings.Contains(string(raw), "Réinitialisez") {
		t.Error("non-ASCII subject was not RFC 2047 encoded")
	}
	for _, line := range strings.Split(string(raw[:strings.Index(string(raw), "\r\n\r\n")]), "\r\n") {
		if len(line) > 78 && !strings.HasPrefix(line, "From:") && !strings.HasPrefix(line, "To:") {
			t.Errorf("header line longer than 78 characters: %q", line)
		}
	}
	gotDate, err := p.header.Date()
	if err != nil || !gotDate.Equal(date) {
		t.Errorf("Date = %v (%v), want %v", gotDate, err, date)
	}
	from, err := p.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "no-reply@mail.acme.test" || from[0].Name != "Acme" {
		t.Errorf("From = %v (%v)", from, err)
	}
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "zoe@example.com" || to[0].Name != "Zoë Example" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if !regexp.MustCompile(`^<[0-9a-f]{32}@mail\.acme\.test>$`).MatchString(p.header.Get("Message-ID")) {
		t.Errorf("Message-ID = %q, want <32 hex digits@mail.acme.test>", p.header.Get("Message-ID"))
	}
	if got := p.header.Get("MIME-Version"); got != "1.0" {
		t.Errorf("MIME-Version = %q", got)
	}
	if got := p.header.Get("Auto-Submitted"); got != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", got)
	}
	// Bodies come back exactly, with CRLF line endings.
	if want := strings.ReplaceAll(m.Text, "\n", "\r\n"); p.text != want {
		t.Errorf("text part:\n got %q\nwant %q", p.text, want)
	}
	if p.html != m.HTML {
		t.Errorf("html part:\n got %q\nwant %q", p.html, m.HTML)
	}

	// A second build gets a new Message-ID.
	raw2, err := m.Build(date)
	if err != nil {
		t.Fatal(err)
	}
	if id2 := parseEmail(t, raw2).header.Get("Message-ID"); id2 == p.header.Get("Message-ID") {
		t.Errorf("two builds share Message-ID %s", id2)
	}
}

func TestBuildASCIISubjectNotEncoded(t *testing.T) {
	m := Message{From: "a@acme.test", To: "b@example.com", Subject: "Reset your Acme password", Text: "x", HTML: "<p>x</p>"}
	raw, err := m.Build(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "\r\nSubject: Reset your Acme password\r\n") {
		t.Errorf("ASCII subject not sent as is:\n%s", raw)
	}
}

// TestHeaderInjection feeds values that would add a header (or end the
// header) if written as they are; Build must refuse each.
func TestHeaderInjection(t *testing.T) {
	base := Message{From: "a@acme.test", To: "b@example.com", Subject: "Hi", Text: "x", HTML: "<p>x</p>"}
	tests := []struct {
		name    string
		mutate  func(*Message)
		wantErr error
	}{
		{"subject LF", func(m *Message) { m.Subject = "Hi\nBcc: victim@example.com" }, ErrHeader},
		{"subject CRLF", func(m *Message) { m.Subject = "Hi\r\nBcc: victim@example.com" }, ErrHeader},
		{"subject CR", func(m *Message) { m.Subject = "Hi\rBcc: victim@example.com" }, ErrHeader},
		{"subject NUL", func(m *Message) { m.Subject = "Hi\x00" }, ErrHeader},
		{"subject too long", func(m *Message) { m.Subject = strings.Repeat("a", maxSubjectBytes+1) }, ErrHeader},
		{"to CRLF", func(m *Message) { m.To = "b@example.com\r\nBcc: victim@example.com" }, ErrHeader},
		{"to LF in name", func(m *Message) { m.To = "\"B\nBcc: v@example.com\" <b@example.com>" }, ErrHeader},
		{"from CRLF", func(m *Message) { m.From = "a@acme.test\r\nX-Evil: 1" }, ErrHeader},
		{"to list", func(m *Message) { m.To = "b@example.com, victim@example.com" }, ErrAddress},
		{"to garbage", func(m *Message) { m.To = "not an address" }, ErrAddress},
		{"to empty", func(m *Message) { m.To = "" }, ErrAddress},
		{"from no domain", func(m *Message) { m.From = "a" }, ErrAddress},
		{"to non-ASCII", func(m *Message) { m.To = "zoë@example.com" }, ErrAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			tt.mutate(&m)
			raw, err := m.Build(time.Now())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Build error = %v, want %v; message:\n%s", err, tt.wantErr, raw)
			}
			if err := m.Validate(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// FuzzBuild checks that whatever the subject and recipient, Build either
// refuses them or produces a message whose header has exactly the fields
// Build writes, with the subject and recipient intact.
func FuzzBuild(f *testing.F) {
	f.Add("Hello", "b@example.com")
	f.Add("Hi\r\nBcc: x@example.com", "b@example.com")
	f.Add("Zoë", "\"Zoë, \\\"Z\\\"\" <z@example.com>")
	f.Add("=?utf-8?q?x?=", "b@example.com")
	f.Add(strings.Repeat("é ", 100), "b@example.com")
	f.Fuzz(func(t *testing.T, subject, to string) {
		m := Message{From: "a@acme.test", To: to, Subject: subject, Text: "x", HTML: "y"}
		raw, err := m.Build(time.Now())
		if err != nil {
			return
		}
		p := parseEmail(t, raw)
		want := []string{"Auto-Submitted", "Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To"}
		if len(p.header) != len(want) {
			t.Fatalf("header has %d fields, want %d: %v", len(p.header), len(want), p.header)
		}
		for _, k := range want {
			if len(p.header[k]) != 1 {
				t.Fatalf("header field %s appears %d times", k, len(p.header[k]))
			}
		}
		if p.subject != strings.Join(strings.Fields(subject), " ") && p.subject != subject {
			t.Fatalf("subject %q came back as %q", subject, p.subject)
		}
		sent, err := mail.ParseAddress(to)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.header.AddressList("To")
		if err != nil || len(got) != 1 || got[0].Address != sent.Address {
			t.Fatalf("To %q came back as %v (%v)", to, got, err)
		}
	})
}
