package user

import (
	"encoding/json"
	"net/mail"
	"net/url"
	"strings"
	"time"
	_ "time/tzdata" // zoneinfo validation must not depend on the host's tz database
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"

	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// Limits on profile input.
const (
	maxEmailLength    = 254
	maxNameLength     = 200
	maxPictureLength  = 2048
	maxMetadataBytes  = 16 << 10
	maxEnterpriseText = 200
)

// NormalizeEmail returns the key an address is unique by: trimmed, with
// the ASCII letters A to Z lower-cased and nothing else changed. The
// address as typed is kept for display.
//
// Only ASCII is folded: strings.ToLower maps other code points onto ASCII
// letters too (U+212A KELVIN SIGN to "k", U+0130 to "i"), which would make
// a different address look like a case change of another. Addresses that
// are not ASCII are refused by validation anyway (see checkEmail).
func NormalizeEmail(email string) string {
	email = strings.TrimSpace(email)
	b := []byte(email)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// isASCII reports whether s is printable ASCII only.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// sameAddress reports whether b is a (case) respelling of the address a:
// both ASCII and equal but for the case of ASCII letters.
func sameAddress(a, b string) bool {
	return isASCII(a) && isASCII(b) && NormalizeEmail(a) == NormalizeEmail(b)
}

// fieldErrors collects validation failures.
type fieldErrors []httpapi.FieldError

func (f *fieldErrors) add(field, rule, message string) {
	*f = append(*f, httpapi.FieldError{Field: field, Rule: rule, Message: message})
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return httpapi.Validation(f...)
}

// checkEmail validates an address as the user typed it and returns it
// trimmed. Addresses must be ASCII: the mailer cannot send to
// internationalized addresses (SMTPUTF8), and case folding beyond ASCII is
// ambiguous.
func checkEmail(errs *fieldErrors, field, email string) string {
	email = strings.TrimSpace(email)
	switch {
	case email == "":
		errs.add(field, "required", "An email address is required.")
	case len(email) > maxEmailLength:
		errs.add(field, "max_length", "The email address is longer than 254 characters.")
	case !isASCII(email):
		errs.add(field, "ascii", "Only email addresses made of ASCII characters are supported (internationalized addresses are not); for an internationalized domain, use its xn-- form.")
	case !validEmail(email):
		errs.add(field, "format", "Not a valid email address.")
	}
	return email
}

// ValidateEmail validates an address given as field of a request that
// emails it (forgot-password, resend-verification, magic link) and returns
// it trimmed, or the 422 problem naming field with the broken rule. It
// never looks the address up.
func ValidateEmail(field, email string) (string, error) {
	var errs fieldErrors
	email = checkEmail(&errs, field, email)
	return email, errs.err()
}

func validEmail(email string) bool {
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email {
		return false
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || len(local) > 64 || !strings.Contains(domain, ".") || strings.HasSuffix(domain, ".") {
		return false
	}
	for _, r := range email {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// cleanText trims s and refuses control characters and overlong values.
func cleanText(errs *fieldErrors, field, s string, max int) string {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		errs.add(field, "format", "Must be valid UTF-8 text.")
		return s
	}
	if utf8.RuneCountInString(s) > max {
		errs.add(field, "max_length", "Must be at most "+itoa(max)+" characters.")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (unicode.Is(unicode.Cf, r) && r != '\u200d') {
			errs.add(field, "format", "Must not contain control characters.")
			break
		}
	}
	return s
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func checkLocale(errs *fieldErrors, s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	tag, err := language.Parse(s)
	if err != nil || len(s) > 35 {
		errs.add("locale", "format", "Must be a BCP 47 language tag such as en-US.")
		return s
	}
	return tag.String()
}

func checkZoneinfo(errs *fieldErrors, s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if s == "Local" || len(s) > 64 {
		errs.add("zoneinfo", "format", "Must be an IANA time zone such as Europe/Paris.")
		return s
	}
	if _, err := time.LoadLocation(s); err != nil {
		errs.add("zoneinfo", "format", "Must be an IANA time zone such as Europe/Paris.")
	}
	return s
}

// checkPhone parses an international number and returns it in E.164.
func checkPhone(errs *fieldErrors, s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if !strings.HasPrefix(s, "+") || len(s) > 32 {
		errs.add("phone_number", "format", "Must be an international number starting with + (E.164).")
		return s
	}
	num, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		errs.add("phone_number", "format", "Not a valid phone number.")
		return s
	}
	return phonenumbers.Format(num, phonenumbers.E164)
}

func checkPicture(errs *fieldErrors, s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || len(s) > maxPictureLength || u.Scheme != "https" || u.Host == "" || u.User != nil {
		errs.add("picture", "format", "Must be an https:// URL of at most 2048 characters.")
	}
	return s
}

func checkMetadata(errs *fieldErrors, field string, raw json.RawMessage) map[string]any {
	if len(raw) > maxMetadataBytes {
		errs.add(field, "max_size", "Must be at most 16 KiB of JSON.")
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		errs.add(field, "type", "Must be a JSON object.")
		return nil
	}
	return m
}
