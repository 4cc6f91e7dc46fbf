package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

// Names of the messages a Renderer knows. They are stable: they name the
// template files, and are stored in queued jobs.
const (
	// VerifyEmail asks a new user to confirm their address. Needs a link.
	VerifyEmail = "verify_email"
	// EmailChangeVerify goes to the NEW address of an email change and asks
	// its owner to confirm it. Needs a link.
	EmailChangeVerify = "email_change_verify"
	// EmailChangeNotice goes to the OLD address of an email change and tells
	// its owner about it (Data.NewEmail). It never carries a link: the
	// change is confirmed only from the new address.
	EmailChangeNotice = "email_change_notice"
	// PasswordReset carries a password reset link. Needs a link.
	PasswordReset = "password_reset"
	// PasswordChanged tells the user their password was changed.
	PasswordChanged = "password_changed"
	// SignupAttempt tells the owner of an existing account that someone tried
	// to sign up with their address, with a password reset link in case it
	// was them. Needs a link.
	SignupAttempt = "signup_attempt"
	// AccountLocked tells the user sign-in is locked after too many failed
	// attempts, until Data.UnlockAt.
	AccountLocked = "account_locked"
	// RefreshTokenReuse is a security alert: a session was ended because a
	// refresh token that had already been used was presented again.
	RefreshTokenReuse = "refresh_token_reuse"
	// MFACode carries a one-time sign-in or confirmation code (Data.Code,
	// sealed in the job like a link).
	MFACode = "mfa_code"
	// MFANotice tells the user a second factor changed (Data.Event says
	// what: added, removed, backup code used …).
	MFANotice = "mfa_notice"
	// MagicLink carries a one-time sign-in link. Needs a link.
	MagicLink = "magic_link"
	// RiskBlocked tells the user a sign-in with their correct password was
	// refused because it looked too risky (Data.Time, IP, UserAgent).
	RiskBlocked = "risk_blocked"
	// SessionEndedRisk is a security alert: a session was ended because a
	// refresh of it did not fit where and how it had been used (Data.Time,
	// and the refresh's IP and UserAgent).
	SessionEndedRisk = "session_ended_risk"
	// NewSignIn asks "was this you?" about a sign-in from a new device or
	// country (Data.Time, Place, IP, UserAgent: the browser and OS), with
	// the one-time "this wasn't me" link. Needs a link.
	NewSignIn = "new_sign_in"
	// WebhookDisabled tells an administrator that a webhook endpoint was
	// disabled (Data.Event says which and why).
	WebhookDisabled = "webhook_disabled"
	// SecurityAlert tells an administrator of a security incident or
	// event (Data.Event says which, Data.Time when).
	SecurityAlert = "security_alert"
	// APIKeyLeaked tells a key's owner that the key was found in public
	// and revoked (Data.Event names the key and where it was found,
	// Data.Time when it was revoked).
	APIKeyLeaked = "api_key_leaked"
)

// needsLink tells, for every message, whether it must carry a link (true)
// or must not carry one (false).
var needsLink = map[string]bool{
	VerifyEmail:       true,
	EmailChangeVerify: true,
	EmailChangeNotice: false,
	PasswordReset:     true,
	PasswordChanged:   false,
	SignupAttempt:     true,
	AccountLocked:     false,
	RefreshTokenReuse: false,
	MFACode:           false,
	MFANotice:         false,
	MagicLink:         true,
	RiskBlocked:       false,
	SessionEndedRisk:  false,
	NewSignIn:         true,
	WebhookDisabled:   false,
	SecurityAlert:     false,
	APIKeyLeaked:      false,
}

// needsCode lists the messages that must carry Data.Code; all others must
// not.
var needsCode = map[string]bool{MFACode: true}

// Names returns the names of all messages, sorted.
func Names() []string {
	names := make([]string, 0, len(needsLink))
	for n := range needsLink {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Errors returned (possibly wrapped) by Render and NewSendArgs.
var (
	ErrUnknownTemplate = errors.New("mail: unknown message template")
	// ErrLink reports a link that is missing where the message needs one,
	// present where it must not be, or not an absolute http(s) URL.
	ErrLink = errors.New("mail: bad link for this message")
	// ErrCode reports a code missing where the message needs one or
	// present where it must not be.
	ErrCode = errors.New("mail: code missing or not allowed for this message")
)

// Brand is what the templates say about the product.
type Brand struct {
	// ProductName names the product in subjects and bodies ("Acme"). Required.
	ProductName string
	// SupportEmail, when set, is offered as a contact in every message.
	SupportEmail string
}

// Data is what a message is about. Every field but Link is optional and
// none is secret: Data is stored in the job queue as it is. The link is
// not (its JSON tag is "-"): it travels sealed, see NewSendArgs.
//
// Fields that an end user controls (RecipientName, NewEmail, UserAgent, IP)
// are stripped of control characters and shortened before they reach a
// template.
type Data struct {
	// RecipientName greets the recipient; empty gives a plain "Hello,".
	RecipientName string `json:"recipient_name,omitempty"`
	// Link is the one-time link of messages that need one; set by Worker
	// after opening the sealed link, or by a caller of Render directly.
	Link string `json:"-"`
	// ExpiresIn is how long the link stays valid (or, for AccountLocked,
	// how long the lock lasts when UnlockAt is not set).
	ExpiresIn time.Duration `json:"expires_in,omitempty"`
	// Time is when the event the message is about happened.
	Time time.Time `json:"time,omitzero"`
	// UnlockAt is when a locked account can sign in again (AccountLocked).
	UnlockAt time.Time `json:"unlock_at,omitzero"`
	// NewEmail is the address an email change is going to
	// (EmailChangeNotice). Pass a masked form to hide it from the old
	// address.
	NewEmail string `json:"new_email,omitempty"`
	// Code is the one-time code of MFACode; like Link it is never
	// serialized: it travels sealed (see NewCodeArgs).
	Code string `json:"-"`
	// Event describes what happened, for MFANotice (e.g. "An
	// authenticator app was added").
	Event string `json:"event,omitempty"`
	// IP and UserAgent describe the request that caused the message.
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	// Place is roughly where IP is ("Paris, FR"), for NewSignIn; empty
	// when unknown.
	Place string `json:"place,omitempty"`
}

// view is what templates see: the Data, cleaned, and the Brand.
type view struct {
	Data
	ProductName  string
	SupportEmail string
}

// Template files: for each message <name>.subject.txt, <name>.txt and
// <name>.html, plus the two layouts that wrap every body.
const (
	layoutText = "layout.txt"
	layoutHTML = "layout.html"
)

//go:embed templates/*.txt templates/*.html
var defaultTemplates embed.FS

// templateFiles returns every file name a Renderer reads.
func templateFiles() []string {
	files := []string{layoutText, layoutHTML}
	for _, n := range Names() {
		files = append(files, n+".subject.txt", n+".txt", n+".html")
	}
	return files
}

// Renderer renders messages from parsed templates. It is safe for
// concurrent use.
type Renderer struct {
	brand    Brand
	messages map[string]*messageTemplates
}

type messageTemplates struct {
	subject *texttemplate.Template
	text    *texttemplate.Template // executes "layout", which includes "body"
	html    *htmltemplate.Template // executes "layout", which includes "body"
}

// NewRenderer parses the message templates. Each file is read from
// overrideDir when it exists there and from the embedded defaults
// otherwise; overrideDir "" uses the defaults only. The files are:
//
//	layout.txt, layout.html           wrap every body ({{template "body" .}}),
//	                                  and define "details" (IP, device)
//	<name>.subject.txt                the subject, one line after rendering
//	<name>.txt, <name>.html           the bodies
//
// Templates see the Data fields, .ProductName and .SupportEmail, and the
// functions "when" (formats a time.Time in UTC) and "duration" (formats a
// time.Duration as "24 hours"). HTML templates are html/template, so data
// is escaped, and only http(s) links survive in href attributes.
//
// Every template is executed with sample data here, so a template that
// does not parse or refers to an unknown field fails start-up, not a send.
// A .txt or .html file in overrideDir whose name is not one of the above
// is reported too, as it is most likely a misspelt override.
func NewRenderer(overrideDir string, brand Brand) (*Renderer, error) {
	if err := checkBrand(brand); err != nil {
		return nil, err
	}
	src, err := loadTemplateSources(overrideDir)
	if err != nil {
		return nil, err
	}
	funcs := map[string]any{"when": formatTime, "duration": formatDuration}

	textLayout, err := texttemplate.New("layout").Funcs(funcs).Parse(src[layoutText])
	if err != nil {
		return nil, fmt.Errorf("mail: template %s: %w", layoutText, err)
	}
	htmlLayout, err := htmltemplate.New("layout").Funcs(funcs).Parse(src[layoutHTML])
	if err != nil {
		return nil, fmt.Errorf("mail: template %s: %w", layoutHTML, err)
	}

	r := &Renderer{brand: brand, messages: make(map[string]*messageTemplates)}
	var problems []error
	for _, name := range Names() {
		mt, err := parseMessage(name, src, funcs, textLayout, htmlLayout)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		r.messages[name] = mt
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	// Execute everything once, so that errors only execution finds (an
	// unknown field, a function called with the wrong argument) show now.
	for _, name := range Names() {
		for _, withOptional := range []bool{true, false} {
			if _, err := r.Render(name, sampleData(name, withOptional)); err != nil {
				problems = append(problems, fmt.Errorf("mail: template %s does not render: %w", name, err))
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return r, nil
}

func checkBrand(b Brand) error {
	if strings.TrimSpace(b.ProductName) == "" {
		return errors.New("mail: brand product name is empty")
	}
	if strings.ContainsFunc(b.ProductName, unicode.IsControl) {
		return errors.New("mail: brand product name contains control characters")
	}
	if b.SupportEmail != "" {
		if _, err := parseAddress("support email", b.SupportEmail); err != nil {
			return err
		}
	}
	return nil
}

// loadTemplateSources reads every template file, from overrideDir first.
func loadTemplateSources(overrideDir string) (map[string]string, error) {
	known := templateFiles()
	var override fs.FS
	if overrideDir != "" {
		entries, err := os.ReadDir(overrideDir)
		if err != nil {
			return nil, fmt.Errorf("mail: template directory: %w", err)
		}
		for _, e := range entries {
			n := e.Name()
			if (strings.HasSuffix(n, ".txt") || strings.HasSuffix(n, ".html")) && !slices.Contains(known, n) {
				return nil, fmt.Errorf("mail: template directory %s: unknown template file %q (known: %s)",
					overrideDir, n, strings.Join(known, ", "))
			}
		}
		override = os.DirFS(overrideDir)
	}
	src := make(map[string]string, len(known))
	for _, name := range known {
		if override != nil {
			b, err := fs.ReadFile(override, name)
			if err == nil {
				src[name] = string(b)
				continue
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("mail: template %s: %w", name, err)
			}
		}
		b, err := defaultTemplates.ReadFile(path.Join("templates", name))
		if err != nil {
			return nil, fmt.Errorf("mail: embedded template %s: %w", name, err)
		}
		src[name] = string(b)
	}
	return src, nil
}

func parseMessage(name string, src map[string]string, funcs map[string]any, textLayout *texttemplate.Template, htmlLayout *htmltemplate.Template) (*messageTemplates, error) {
	var mt messageTemplates
	var err error
	file := name + ".subject.txt"
	if mt.subject, err = texttemplate.New(file).Funcs(funcs).Parse(src[file]); err != nil {
		return nil, fmt.Errorf("mail: template %s: %w", file, err)
	}
	file = name + ".txt"
	if mt.text, err = textLayout.Clone(); err != nil {
		return nil, fmt.Errorf("mail: template %s: %w", file, err)
	}
	if _, err = mt.text.New("body").Parse(src[file]); err != nil {
		return nil, fmt.Errorf("mail: template %s: %w", file, err)
	}
	file = name + ".html"
	if mt.html, err = htmlLayout.Clone(); err != nil {
		return nil, fmt.Errorf("mail: template %s: %w", file, err)
	}
	if _, err = mt.html.New("body").Parse(src[file]); err != nil {
		return nil, fmt.Errorf("mail: template %s: %w", file, err)
	}
	return &mt, nil
}

// Render renders message name with data. It fails with ErrUnknownTemplate
// for a name not in Names, and with ErrLink when data.Link is missing for
// a message that needs one, set for a message that must not have one, or
// not an absolute http or https URL. The returned Message has no From or
// To.
func (r *Renderer) Render(name string, data Data) (Message, error) {
	mt, ok := r.messages[name]
	if !ok {
		return Message{}, fmt.Errorf("%w: %q", ErrUnknownTemplate, name)
	}
	if err := checkLink(name, data.Link); err != nil {
		return Message{}, err
	}
	if needsCode[name] != (data.Code != "") {
		return Message{}, fmt.Errorf("%w: %s", ErrCode, name)
	}
	v := view{Data: cleanData(data), ProductName: r.brand.ProductName, SupportEmail: r.brand.SupportEmail}

	var subject, text, html bytes.Buffer
	if err := mt.subject.Execute(&subject, v); err != nil {
		return Message{}, fmt.Errorf("mail: render %s subject: %w", name, err)
	}
	if err := mt.text.ExecuteTemplate(&text, "layout", v); err != nil {
		return Message{}, fmt.Errorf("mail: render %s text: %w", name, err)
	}
	if err := mt.html.ExecuteTemplate(&html, "layout", v); err != nil {
		return Message{}, fmt.Errorf("mail: render %s html: %w", name, err)
	}
	m := Message{
		Subject:  strings.Join(strings.Fields(subject.String()), " "),
		Text:     tidyText(text.String()),
		HTML:     html.String(),
		Template: name,
	}
	if m.Subject == "" {
		return Message{}, fmt.Errorf("mail: render %s: empty subject", name)
	}
	return m, nil
}

// checkLink enforces needsLink and the link's form.
func checkLink(name, link string) error {
	need, ok := needsLink[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTemplate, name)
	}
	switch {
	case need && link == "":
		return fmt.Errorf("%w: %s needs a link", ErrLink, name)
	case !need && link != "":
		return fmt.Errorf("%w: %s must not carry a link", ErrLink, name)
	case link == "":
		return nil
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		strings.ContainsFunc(link, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		// The link is secret: never repeat it, nor url.Parse's error, which
		// would.
		return fmt.Errorf("%w: not an absolute http(s) URL", ErrLink)
	}
	return nil
}

// Length limits for user-controlled text shown in messages, in runes.
const (
	maxNameRunes      = 64
	maxUserAgentRunes = 160
	maxShortRunes     = 254 // an address or an IP
	// maxEventRunes bounds Data.Event, which Gatehouse writes (an alert
	// to administrators lists an incident's addresses and accounts).
	maxEventRunes = 1000
)

// cleanData removes control characters from user-controlled fields and
// shortens them, so that a crafted name or user agent cannot break the
// layout or fill the message.
func cleanData(d Data) Data {
	d.RecipientName = cleanText(d.RecipientName, maxNameRunes)
	d.UserAgent = cleanText(d.UserAgent, maxUserAgentRunes)
	d.NewEmail = cleanText(d.NewEmail, maxShortRunes)
	d.IP = cleanText(d.IP, maxShortRunes)
	d.Place = cleanText(d.Place, maxShortRunes)
	d.Event = cleanText(d.Event, maxEventRunes)
	d.Code = cleanText(d.Code, maxShortRunes)
	return d
}

func cleanText(s string, maxRunes int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxRunes {
		s = string([]rune(s)[:maxRunes-1]) + "…"
	}
	return s
}

var blankLines = regexp.MustCompile(`\n{3,}`)

// tidyText trims trailing spaces from every line, collapses runs of blank
// lines left by template conditionals into one, and ends with a newline.
func tidyText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	s = blankLines.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")
	return strings.TrimSpace(s) + "\n"
}

// formatTime is the templates' "when": "2 January 2006, 15:04 UTC".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2 January 2006, 15:04 UTC")
}

// formatDuration is the templates' "duration": the largest whole unit,
// "3 days", "24 hours", "90 minutes", "1 minute".
func formatDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s"
	}
	const day = 24 * time.Hour
	if d <= 0 {
		return ""
	}
	if d < time.Minute {
		return plural(int64(d.Round(time.Second)/time.Second), "second")
	}
	d = d.Round(time.Minute)
	switch {
	case d >= 2*day && d%day == 0:
		return plural(int64(d/day), "day")
	case d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	default:
		return plural(int64(d/time.Minute), "minute")
	}
}

// sampleData fills every field a template may use, or only the required
// ones, to try templates at start-up.
func sampleData(name string, withOptional bool) Data {
	var d Data
	if needsLink[name] {
		d.Link = "https://auth.example.com/sample?token=sample"
	}
	if needsCode[name] {
		d.Code = "123456"
	}
	if withOptional {
		d.Event = "An authenticator app was added"
		d.RecipientName = "Sample Name"
		d.ExpiresIn = time.Hour
		d.Time = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		d.UnlockAt = d.Time.Add(15 * time.Minute)
		d.NewEmail = "new@example.com"
		d.IP = "192.0.2.1"
		d.UserAgent = "Mozilla/5.0 (sample)"
		d.Place = "Paris, FR"
	}
	return d
}
