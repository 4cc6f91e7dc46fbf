package mail

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testLink = "https://auth.acme.test/v1/verify?token=tok_9f8e7d6c5b4a&next=%2Fhome"

func TestRenderEveryMessage(t *testing.T) {
	r := newRenderer(t)
	at := time.Date(2025, 6, 7, 8, 9, 0, 0, time.UTC)
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			data := Data{
				RecipientName: "Ada Lovelace",
				ExpiresIn:     90 * time.Minute,
				Time:          at,
				UnlockAt:      at.Add(15 * time.Minute),
				NewEmail:      "ada.new@example.com",
				IP:            "198.51.100.7",
				UserAgent:     "Firefox/140.0",
			}
			if needsLink[name] {
				data.Link = testLink
			}
			if needsCode[name] {
				data.Code = "493817"
			}
			m, err := r.Render(name, data)
			if err != nil {
				t.Fatal(err)
			}
			if m.Template != name {
				t.Errorf("Template = %q", m.Template)
			}
			if m.Subject == "" || strings.ContainsAny(m.Subject, "\r\n") || !strings.Contains(m.Subject, "Acme") {
				t.Errorf("Subject = %q, want one line naming the product", m.Subject)
			}
			for part, body := range map[string]string{"text": m.Text, "html": m.HTML} {
				if !strings.Contains(body, "Hello Ada Lovelace,") {
					t.Errorf("%s part does not greet the recipient", part)
				}
				if !strings.Contains(body, "support@acme.test") {
					t.Errorf("%s part does not name the support address", part)
				}
				if strings.Contains(body, "<no value>") || strings.Contains(body, "ZgotmplZ") {
					t.Errorf("%s part has a template artefact:\n%s", part, body)
				}
			}
			linkInHTML := strings.ReplaceAll(testLink, "&", "&amp;")
			if needsLink[name] {
				if !strings.Contains(m.Text, "\n"+testLink+"\n") {
					t.Errorf("text part lacks the link on a line of its own:\n%s", m.Text)
				}
				if !strings.Contains(m.HTML, `href="`+linkInHTML+`"`) {
					t.Errorf("html part lacks the link:\n%s", m.HTML)
				}
				if !strings.Contains(m.Text, "90 minutes") {
					t.Errorf("text part does not say when the link expires:\n%s", m.Text)
				}
			} else if strings.Contains(m.Text, "http") || strings.Contains(m.HTML, `href="http`) {
				t.Errorf("message without a link has one:\n%s\n%s", m.Text, m.HTML)
			}
			if name != VerifyEmail && name != PasswordChanged && name != AccountLocked && name != WebhookDisabled && name != SecurityAlert && name != APIKeyLeaked {
				// Messages about a request say where it came from (an alert to
				// administrators says it in Event).
				if !strings.Contains(m.Text, "198.51.100.7") || !strings.Contains(m.HTML, "Firefox/140.0") {
					t.Errorf("request details missing:\n%s", m.Text)
				}
			}
		})
	}
}

func TestRenderOptionalDataAbsent(t *testing.T) {
	r := newRenderer(t)
	for _, name := range Names() {
		var d Data
		if needsLink[name] {
			d.Link = testLink
		}
		if needsCode[name] {
			d.Code = "493817"
		}
		m, err := r.Render(name, d)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.HasPrefix(m.Text, "Hello,\n") {
			t.Errorf("%s: text does not start with a plain greeting: %q", name, m.Text[:min(40, len(m.Text))])
		}
		for _, bad := range []string{"0001", "Request details", "IP address", " expires in .", "  "} {
			if strings.Contains(m.Text, bad) {
				t.Errorf("%s: text contains %q though the data is empty:\n%s", name, bad, m.Text)
			}
		}
	}
}

func TestSpecificWording(t *testing.T) {
	r := newRenderer(t)
	at := time.Date(2025, 6, 7, 8, 9, 0, 0, time.UTC)
	m, err := r.Render(AccountLocked, Data{UnlockAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "7 June 2025, 08:09 UTC") {
		t.Errorf("account_locked does not say when it unlocks:\n%s", m.Text)
	}
	m, err = r.Render(EmailChangeNotice, Data{NewEmail: "new@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "to new@example.com") || !strings.Contains(m.HTML, "new@example.com") {
		t.Errorf("email_change_notice does not name the new address:\n%s", m.Text)
	}
}

func TestRenderLinkRules(t *testing.T) {
	r := newRenderer(t)
	tests := []struct {
		name, template, link string
		want                 error
	}{
		{"missing", PasswordReset, "", ErrLink},
		{"on a notice", EmailChangeNotice, testLink, ErrLink},
		{"on password_changed", PasswordChanged, testLink, ErrLink},
		{"javascript", VerifyEmail, "javascript:alert(document.cookie)//secret-token", ErrLink},
		{"relative", VerifyEmail, "/verify?token=secret-token", ErrLink},
		{"no host", VerifyEmail, "https:///verify?token=secret-token", ErrLink},
		{"newline", VerifyEmail, "https://auth.acme.test/v?token=secret-token\nBcc: x", ErrLink},
		{"unknown template", "welcome", "", ErrUnknownTemplate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Render(tt.template, Data{Link: tt.link})
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret-token") || (tt.link != "" && strings.Contains(err.Error(), tt.link)) {
				t.Errorf("error repeats the link: %v", err)
			}
		})
	}
}

func TestRenderCleansUserInput(t *testing.T) {
	r := newRenderer(t)
	m, err := r.Render(PasswordChanged, Data{
		RecipientName: "<script>alert(1)</script>\r\nBcc: x@example.com",
		UserAgent:     strings.Repeat("A", 500),
		IP:            "203.0.113.9\x00",
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Errorf("recipient name not escaped in HTML:\n%s", m.HTML)
	}
	if strings.Contains(m.Text, "\r") || strings.Contains(m.Text, "\x00") || strings.Contains(m.Text, "</script>\nBcc") {
		t.Errorf("control characters from data reached the text:\n%q", m.Text)
	}
	if strings.Contains(m.Text, strings.Repeat("A", maxUserAgentRunes)) || !strings.Contains(m.Text, strings.Repeat("A", maxUserAgentRunes-1)+"…") {
		t.Errorf("user agent not shortened to %d characters", maxUserAgentRunes)
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOverrideDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"password_reset.subject.txt": "Custom reset for {{.ProductName}}\n",
		"password_reset.html":        `<p class="custom">Reset here: <a href="{{.Link}}">link</a></p>`,
		"README.md":                  "not a template; ignored",
	})
	r, err := NewRenderer(dir, Brand{ProductName: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	def := newRenderer(t)

	m, err := r.Render(PasswordReset, Data{Link: testLink})
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Custom reset for Acme" {
		t.Errorf("overridden subject = %q", m.Subject)
	}
	if !strings.Contains(m.HTML, `<p class="custom">Reset here: <a href="`+strings.ReplaceAll(testLink, "&", "&amp;")+`">`) {
		t.Errorf("overridden html body not used:\n%s", m.HTML)
	}
	if !strings.Contains(m.HTML, "<!DOCTYPE html>") {
		t.Error("overridden body is not wrapped in the default layout")
	}
	// The text body of the same message was not overridden.
	dm, err := def.Render(PasswordReset, Data{Link: testLink})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "To choose a new password, open this link:") {
		t.Errorf("text body not the default:\n%s", m.Text)
	}
	if dm.Subject == m.Subject {
		t.Error("default renderer picked up the override")
	}
	// Other messages are the defaults.
	for _, name := range []string{VerifyEmail, PasswordChanged} {
		var d Data
		if needsLink[name] {
			d.Link = testLink
		}
		got, err := r.Render(name, d)
		if err != nil {
			t.Fatal(err)
		}
		want, err := newRendererBrand(t, Brand{ProductName: "Acme"}).Render(name, d)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s differs from the default:\n%+v\n%+v", name, got, want)
		}
	}
}

func newRendererBrand(t *testing.T, b Brand) *Renderer {
	t.Helper()
	r, err := NewRenderer("", b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOverrideDirErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string // in the error
	}{
		{"does not parse", map[string]string{"verify_email.txt": "Open {{.Link"}, "verify_email.txt"},
		{"html does not parse", map[string]string{"account_locked.html": "<p>{{if .IP}}</p>"}, "account_locked.html"},
		{"unknown field", map[string]string{"password_changed.txt": "Changed at {{.ChangedAt}}"}, "password_changed"},
		{"unknown function", map[string]string{"password_changed.subject.txt": "{{upper .ProductName}}"}, "password_changed.subject.txt"},
		{"misspelt file", map[string]string{"pasword_reset.txt": "x"}, "pasword_reset.txt"},
		{"layout without details", map[string]string{"layout.txt": `{{template "body" .}}`}, "details"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRenderer(writeFiles(t, tt.files), Brand{ProductName: "Acme"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		if _, err := NewRenderer(filepath.Join(t.TempDir(), "nope"), Brand{ProductName: "Acme"}); err == nil {
			t.Fatal("no error for a missing override directory")
		}
	})
}

func TestNewRendererBrand(t *testing.T) {
	for _, b := range []Brand{
		{},
		{ProductName: "  "},
		{ProductName: "Acme\r\nBcc: x@example.com"},
		{ProductName: "Acme", SupportEmail: "not an address"},
	} {
		if _, err := NewRenderer("", b); err == nil {
			t.Errorf("NewRenderer(%+v) did not fail", b)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := map[time.Duration]string{
		0:                          "",
		-time.Minute:               "",
		30 * time.Second:           "30 seconds",
		time.Minute:                "1 minute",
		15 * time.Minute:           "15 minutes",
		90 * time.Minute:           "90 minutes",
		time.Hour:                  "1 hour",
		24 * time.Hour:             "24 hours",
		36 * time.Hour:             "36 hours",
		48 * time.Hour:             "2 days",
		7 * 24 * time.Hour:         "7 days",
		time.Hour + 20*time.Second: "1 hour",
	}
	for d, want := range tests {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestCodeMessages(t *testing.T) {
	r := newRenderer(t)
	m, err := r.Render(MFACode, Data{Code: "493817", ExpiresIn: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "493817") || !strings.Contains(m.HTML, "493817") {
		t.Errorf("code missing from the message:\n%s", m.Text)
	}
	if _, err := r.Render(MFACode, Data{}); !errors.Is(err, ErrCode) {
		t.Errorf("MFACode without a code: err = %v, want ErrCode", err)
	}
	if _, err := r.Render(PasswordChanged, Data{Code: "1"}); !errors.Is(err, ErrCode) {
		t.Errorf("a code on a message without one: err = %v, want ErrCode", err)
	}
}
