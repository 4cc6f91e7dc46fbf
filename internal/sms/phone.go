package sms

import (
	"errors"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidPhone is returned by Normalize for input that is not a valid
// international phone number.
var ErrInvalidPhone = errors.New("sms: not a valid international phone number (E.164, starting with +)")

// maxPhoneInput bounds the raw input Normalize looks at; an E.164 number has
// at most 16 characters, and spaces, dashes and parentheses do not double it.
const maxPhoneInput = 40

// Normalize parses a phone number typed by a person and returns it in
// E.164 form ("+14155552671"). The input must start with + and the country
// calling code: there is no default region, since guessing one sends codes
// to the wrong country. Spaces, dashes, dots and parentheses between the
// digits are allowed and dropped; letters, extensions and anything else
// are refused. The number must be valid (an assigned range in the
// numbering plan of its country), not merely of a plausible length.
func Normalize(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if len(s) < 2 || len(s) > maxPhoneInput || s[0] != '+' {
		return "", ErrInvalidPhone
	}
	digits := 0
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", ErrInvalidPhone
		}
	}
	if digits > 15 { // E.164 maximum, calling code included
		return "", ErrInvalidPhone
	}
	num, err := phonenumbers.Parse(s, "")
	if err != nil || num.GetExtension() != "" || !phonenumbers.IsValidNumber(num) {
		return "", ErrInvalidPhone
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// parseE164 parses a number already in E.164 form, as Normalize returns
// it, and fails for anything else.
func parseE164(e164 string) (*phonenumbers.PhoneNumber, error) {
	if !isE164Syntax(e164) {
		return nil, ErrInvalidPhone
	}
	num, err := phonenumbers.Parse(e164, "")
	if err != nil || !phonenumbers.IsValidNumber(num) || phonenumbers.Format(num, phonenumbers.E164) != e164 {
		return nil, ErrInvalidPhone
	}
	return num, nil
}

// isE164Syntax reports whether s has the shape of an E.164 number: + and
// 2 to 15 digits, the first not 0. It says nothing of validity.
func isE164Syntax(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CountryCode returns the country calling code of an E.164 number (1 for
// +14155552671, 44 for +447911123456), or 0 when e164 is not a valid
// E.164 number. Several countries share a calling code: 1 is the whole
// North American Numbering Plan; see Region for the country.
func CountryCode(e164 string) int {
	num, err := parseE164(e164)
	if err != nil {
		return 0
	}
	return int(num.GetCountryCode())
}

// Region returns the ISO 3166-1 alpha-2 region of an E.164 number ("US",
// "CA", "JM", "GB"), or "" when e164 is not valid or its region is not
// geographic (for example +800 international freephone numbers).
func Region(e164 string) string {
	num, err := parseE164(e164)
	if err != nil {
		return ""
	}
	r := phonenumbers.GetRegionCodeForNumber(num)
	if r == "ZZ" || r == "001" {
		return ""
	}
	return r
}

// smsCapable reports whether num is of a type that can receive text
// messages. Mobile numbers can, and so can the ranges whose type cannot be
// told from the number (FIXED_LINE_OR_MOBILE, all of +1), VoIP and
// personal numbers. Landlines, premium-rate, shared-cost, toll-free,
// universal-access, voicemail and pager numbers cannot, and premium-rate
// and shared-cost ranges are the classic destinations of toll fraud.
func smsCapable(num *phonenumbers.PhoneNumber) bool {
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.FIXED_LINE, phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST,
		phonenumbers.TOLL_FREE, phonenumbers.UAN, phonenumbers.VOICEMAIL,
		phonenumbers.PAGER, phonenumbers.UNKNOWN:
		return false
	}
	return true
}

// Mask returns a form of a phone number fit for logs: the calling code and
// the last two digits, the rest replaced by '*' ("+44********56"). It
// never returns more than that, even for input that is not a valid number.
func Mask(e164 string) string {
	cc := CountryCode(e164)
	if cc == 0 {
		return "(invalid)"
	}
	prefix := "+" + strconv.Itoa(cc)
	rest := len(e164) - len(prefix)
	if rest <= 2 {
		return prefix + strings.Repeat("*", rest)
	}
	return prefix + strings.Repeat("*", rest-2) + e164[len(e164)-2:]
}
