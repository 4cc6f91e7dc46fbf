package password

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
	"golang.org/x/text/unicode/norm"
)

// Rule names, as the API returns them in violations.
const (
	RuleMinLength     = "min_length"
	RuleMaxLength     = "max_length"
	RuleUppercase     = "uppercase"
	RuleLowercase     = "lowercase"
	RuleDigit         = "digit"
	RuleSymbol        = "symbol"
	RuleStrength      = "strength"
	RuleContainsEmail = "contains_email"
	RuleContainsName  = "contains_name"
	RuleBreached      = "breached"
)

// Policy defaults. NIST SP 800-63B asks for at least 64 characters to be
// allowed and advises against composition rules.
const (
	DefaultMinLength = 12
	DefaultMaxLength = 256
	DefaultMinScore  = 3
	// MinMaxLength is the least MaxLength Validate accepts.
	MinMaxLength = 64
)

// strengthMaxRunes is the longest prefix zxcvbn scores: its matching is
// superlinear (about 30 ms at 128 characters, 200 ms at 256, seconds at
// 1024). A prefix scores no higher than the whole password, so a
// longer password whose first 128 characters are strong is strong; one
// whose prefix is weak but whose tail is not gets a strength violation.
const strengthMaxRunes = 128

// Policy is the rule set new passwords are checked against.
type Policy struct {
	// MinLength and MaxLength bound the length in Unicode code points
	// after NFKC normalization. MaxLength <= 0 means DefaultMaxLength.
	MinLength int
	MaxLength int
	// Composition rules, off by default as NIST SP 800-63B advises.
	// Upper- and lower-case letters are those Unicode classes, digits
	// are decimal digits in any script, symbols are Unicode punctuation
	// and symbols.
	RequireUpper, RequireLower, RequireDigit, RequireSymbol bool
	// MinScore is the least zxcvbn score (0–4) accepted; 0 turns the
	// strength rule off.
	MinScore int
	// Breached, if set, rejects passwords known from breaches.
	Breached BreachChecker
}

// DefaultPolicy returns a policy with MinLength 12, MaxLength 256, no
// composition rules, MinScore 3 and no breach checker.
func DefaultPolicy() Policy {
	return Policy{MinLength: DefaultMinLength, MaxLength: DefaultMaxLength, MinScore: DefaultMinScore}
}

// Validate reports every problem with p at once.
func (p Policy) Validate() error {
	var errs []error
	if p.MinLength < 1 {
		errs = append(errs, errors.New("min length must be at least 1"))
	}
	if p.MaxLength < MinMaxLength {
		errs = append(errs, fmt.Errorf("max length must be at least %d", MinMaxLength))
	}
	if p.MinLength > p.MaxLength {
		errs = append(errs, errors.New("min length must not exceed max length"))
	}
	if p.MinScore < 0 || p.MinScore > 4 {
		errs = append(errs, errors.New("min score must be 0 to 4"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("password: invalid policy: %w", err)
	}
	return nil
}

// UserContext is what is known about the user choosing a password, so that
// passwords made of it are refused.
type UserContext struct {
	Email, Name, GivenName, FamilyName string
}

// Violation is one rule a password fails.
type Violation struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// Check returns every rule password fails, in a fixed order (the Rule*
// constants' order), or none. The error is only ever the breach checker's
// failure: the check is then skipped, the violations are otherwise
// complete, and the caller decides whether to log and accept or to refuse.
//
// The password is NFKC-normalized, as Hasher.Hash stores it, before every
// rule. The breach checker sees the password as given and, if that is not
// breached and normalization changed it, the normalized form. A password
// longer than MaxLength gets neither the strength rule (zxcvbn is slow on
// long input) nor a breach lookup.
func (p Policy) Check(ctx context.Context, password string, uc UserContext) ([]Violation, error) {
	maxLen := p.MaxLength
	if maxLen <= 0 {
		maxLen = DefaultMaxLength
	}
	pw := norm.NFKC.String(password)
	n := utf8.RuneCountInString(pw)

	var v []Violation
	add := func(rule, format string, args ...any) {
		v = append(v, Violation{Rule: rule, Message: fmt.Sprintf(format, args...)})
	}
	if n < p.MinLength {
		add(RuleMinLength, "must be at least %d characters long", p.MinLength)
	}
	tooLong := n > maxLen
	if tooLong {
		add(RuleMaxLength, "must be at most %d characters long", maxLen)
	}

	var upper, lower, digit, symbol bool
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsPunct(r) || unicode.IsSymbol(r):
			symbol = true
		}
	}
	if p.RequireUpper && !upper {
		add(RuleUppercase, "must contain an upper-case letter")
	}
	if p.RequireLower && !lower {
		add(RuleLowercase, "must contain a lower-case letter")
	}
	if p.RequireDigit && !digit {
		add(RuleDigit, "must contain a digit")
	}
	if p.RequireSymbol && !symbol {
		add(RuleSymbol, "must contain a symbol")
	}

	email := strings.TrimSpace(norm.NFKC.String(uc.Email))
	local := email
	if at := strings.LastIndexByte(email, '@'); at >= 0 {
		local = email[:at]
	}
	names := nameParts(uc)

	if p.MinScore > 0 && !tooLong {
		var inputs []string
		for _, s := range append([]string{email, local}, names...) {
			if s != "" {
				inputs = append(inputs, s)
			}
		}
		if score := zxcvbn.PasswordStrength(prefix(pw, strengthMaxRunes), inputs).Score; score < p.MinScore {
			add(RuleStrength, "is too easy to guess")
		}
	}

	lowerPW := strings.ToLower(pw)
	if (utf8.RuneCountInString(local) >= 3 && strings.Contains(lowerPW, strings.ToLower(local))) ||
		(strings.Contains(email, "@") && strings.Contains(lowerPW, strings.ToLower(email))) {
		add(RuleContainsEmail, "must not contain your email address")
	}
	for _, name := range names {
		if strings.Contains(lowerPW, strings.ToLower(name)) {
			add(RuleContainsName, "must not contain your name")
			break
		}
	}

	if p.Breached == nil || tooLong {
		return v, nil
	}
	breached, err := p.Breached.Breached(ctx, password)
	if err == nil && !breached && pw != password {
		breached, err = p.Breached.Breached(ctx, pw)
	}
	if err != nil {
		return v, fmt.Errorf("password: breach check: %w", err)
	}
	if breached {
		add(RuleBreached, "appears in a known data breach")
	}
	return v, nil
}

// nameParts returns the user's name fields and the words in them, each at
// least 3 characters long, NFKC-normalized, without duplicates.
func nameParts(uc UserContext) []string {
	var parts []string
	seen := map[string]bool{}
	addPart := func(s string) {
		k := strings.ToLower(s)
		if utf8.RuneCountInString(s) >= 3 && !seen[k] {
			seen[k] = true
			parts = append(parts, s)
		}
	}
	for _, f := range []string{uc.Name, uc.GivenName, uc.FamilyName} {
		f = strings.TrimSpace(norm.NFKC.String(f))
		addPart(f)
		for _, w := range strings.FieldsFunc(f, func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r)
		}) {
			addPart(w)
		}
	}
	return parts
}

// prefix returns the first n runes of s.
func prefix(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
