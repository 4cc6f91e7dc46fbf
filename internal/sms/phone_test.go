package sms

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string // want "" means ErrInvalidPhone
	}{
		{"+14155552671", "+14155552671"},
		{"+1 415 555 2671", "+14155552671"},
		{"+1-415-555-2671", "+14155552671"},
		{"+1 (415) 555-2671", "+14155552671"},
		{"+1.415.555.2671", "+14155552671"},
		{"  +44 7400 123456 ", "+447400123456"},
		{"+49 1512 3456789", "+4915123456789"},
		{"+33 6 12 34 56 78", "+33612345678"},
		{"+33 (0)6 12 34 56 78", "+33612345678"}, // the national trunk 0, as French numbers are often written
		{"+39 06 698 12345", "+390669812345"},    // Italy keeps its leading 0
		{"4155552671", ""},                       // no +: no guessing of a region
		{"001 415 555 2671", ""},                 // international prefix instead of +
		{"(415) 555-2671", ""},
		{"+1 415 555 267", ""},         // too short
		{"+1 415 555 26710", ""},       // too long
		{"+1 999 555 2671", ""},        // no such area code
		{"+999 1234 5678", ""},         // no such calling code
		{"+44 7400 1234567890123", ""}, // more than 15 digits
		{"+1 800 FLOWERS", ""},         // letters
		{"+1 415 555 2671 ext. 12", ""},
		{"+1 415 555 2671;ext=12", ""},
		{"tel:+1-415-555-2671", ""},
		{"+１４１５５５５２６７１", ""}, // full-width digits
		{"+1\n4155552671", ""},
		{"+", ""},
		{"", ""},
		{"+" + strings.Repeat(" ", 50) + "14155552671", ""},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if tt.want == "" {
			if !errors.Is(err, ErrInvalidPhone) {
				t.Errorf("Normalize(%q) = %q, %v; want ErrInvalidPhone", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestCountryCodeAndRegion(t *testing.T) {
	tests := []struct {
		e164   string
		cc     int
		region string
	}{
		{"+14155552671", 1, "US"},
		{"+16135550123", 1, "CA"},
		{"+18762101234", 1, "JM"},
		{"+447400123456", 44, "GB"},
		{"+4915123456789", 49, "DE"},
		{"+80012345678", 800, ""},  // international freephone: no region
		{"+1 415 555 2671", 0, ""}, // not E.164 as is
		{"+1415555267", 0, ""},
		{"garbage", 0, ""},
	}
	for _, tt := range tests {
		if got := CountryCode(tt.e164); got != tt.cc {
			t.Errorf("CountryCode(%q) = %d, want %d", tt.e164, got, tt.cc)
		}
		if got := Region(tt.e164); got != tt.region {
			t.Errorf("Region(%q) = %q, want %q", tt.e164, got, tt.region)
		}
	}
}

func TestMask(t *testing.T) {
	tests := map[string]string{
		"+14155552671":    "+1********71",
		"+447400123456":   "+44********56",
		"+4915123456789":  "+49*********89",
		"4155552671":      "(invalid)",
		"+1 415 555 2671": "(invalid)",
	}
	for in, want := range tests {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNormalize checks that Normalize never panics and that what it
// returns is a valid E.164 number it maps to itself.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+14155552671", "+1 (415) 555-2671", "+44 7400 123456", "+", "++1", "+0", "+1 800 FLOWERS", "+33 (0)6 12 34 56 78"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Normalize(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidPhone) || out != "" {
				t.Fatalf("Normalize(%q) = %q, %v", in, out, err)
			}
			return
		}
		if !isE164Syntax(out) || CountryCode(out) == 0 {
			t.Fatalf("Normalize(%q) = %q, not a valid E.164 number", in, out)
		}
		if again, err := Normalize(out); err != nil || again != out {
			t.Fatalf("Normalize(%q) = %q, %v; not idempotent", out, again, err)
		}
	})
}
