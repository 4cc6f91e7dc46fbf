package password

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeChecker is a BreachChecker over a fixed set, recording what it was
// asked.
type fakeChecker struct {
	breached map[string]bool
	err      error
	asked    []string
}

func (f *fakeChecker) Breached(_ context.Context, password string) (bool, error) {
	f.asked = append(f.asked, password)
	if f.err != nil {
		return false, f.err
	}
	return f.breached[password], nil
}

func rules(vs []Violation) []string {
	out := []string{}
	for _, v := range vs {
		if v.Message == "" {
			panic("violation without message: " + v.Rule)
		}
		out = append(out, v.Rule)
	}
	return out
}

func TestPolicyCheck(t *testing.T) {
	alice := UserContext{Email: "Alice.Smith@example.com", Name: "Alice Smith", GivenName: "Alice", FamilyName: "Smith"}
	strict := DefaultPolicy()
	strict.RequireUpper, strict.RequireLower, strict.RequireDigit, strict.RequireSymbol = true, true, true, true
	noScore := DefaultPolicy()
	noScore.MinScore = 0

	tests := []struct {
		name     string
		policy   Policy
		password string
		uc       UserContext
		want     []string
	}{
		{"strong passphrase", DefaultPolicy(), "ugh7zoo-plink-mango", alice, []string{}},
		{"too short", noScore, "kT9#vLq2!zW", UserContext{}, []string{RuleMinLength}},
		{"exactly min length", noScore, "kT9#vLq2!zW8", UserContext{}, []string{}},
		{"too long", noScore, strings.Repeat("kT9#", 65), UserContext{}, []string{RuleMaxLength}},
		{"exactly max length", noScore, strings.Repeat("kT9#", 64), UserContext{}, []string{}},
		{"weak", DefaultPolicy(), "password1234", UserContext{}, []string{RuleStrength}},
		{"repeated", DefaultPolicy(), "aaaaaaaaaaaaaaaa", UserContext{}, []string{RuleStrength}},
		{"no upper", strict, "kt9#vlq2!zw8x", UserContext{}, []string{RuleUppercase}},
		{"no lower", strict, "KT9#VLQ2!ZW8X", UserContext{}, []string{RuleLowercase}},
		{"no digit", strict, "kTx#vLqy!zWbX", UserContext{}, []string{RuleDigit}},
		{"no symbol", strict, "kT9rvLq2szW8X", UserContext{}, []string{RuleSymbol}},
		{"non-ASCII classes", strict, "Ωmega-ψ٣-Ünïcode", UserContext{}, []string{}},
		{"contains email local part", noScore, "xx-alice.smith-xx", alice, []string{RuleContainsEmail, RuleContainsName}},
		{"contains email any case", noScore, "ugh7ALICE.SMITHzoo", UserContext{Email: "alice.smith@example.com"}, []string{RuleContainsEmail}},
		{"short local part ignored", noScore, "xx-jo-ugh7zoo-plink", UserContext{Email: "jo@example.com"}, []string{}},
		{"short local part, whole email", noScore, "xxjo@example.comxx", UserContext{Email: "jo@example.com"}, []string{RuleContainsEmail}},
		{"contains given name", noScore, "ugh7zoo-alice-plink", UserContext{GivenName: "Alice"}, []string{RuleContainsName}},
		{"contains family name", noScore, "ugh7zoo-SMITH-plink", UserContext{FamilyName: "Smith"}, []string{RuleContainsName}},
		{"contains word of full name", noScore, "ugh7zoo-plink-vanderberg", UserContext{Name: "Jan van der Berg-Vanderberg"}, []string{RuleContainsName}},
		{"short name parts ignored", noScore, "ugh7zoo-plink-li-al", UserContext{Name: "Al Li"}, []string{}},
		{"name in strength inputs", DefaultPolicy(), "zorbulax2024", UserContext{FamilyName: "Zorbulax"}, []string{RuleStrength, RuleContainsName}},
		{"name not given", DefaultPolicy(), "zorbulax2024", UserContext{}, []string{}},
		{"email in strength inputs", DefaultPolicy(), "zorbulax2024", UserContext{Email: "zorbulax@example.com"}, []string{RuleStrength, RuleContainsEmail}},
		{"everything at once", strict, "asmith", UserContext{Email: "asmith@example.com", FamilyName: "Smith"}, []string{RuleMinLength, RuleUppercase, RuleDigit, RuleSymbol, RuleStrength, RuleContainsEmail, RuleContainsName}},
		// NFKC: the ligature "ﬃ" is 3 code points, full-width letters
		// are ASCII; a combining accent composes into one code point.
		{"length after NFKC", noScore, "ﬃﬃﬃﬃ", UserContext{}, []string{}},
		{"composed length", noScore, strings.Repeat("e\u0301", 11), UserContext{}, []string{RuleMinLength}},
		{"full-width name", noScore, "ugh7-ＡＬＩＣＥ-zoo", UserContext{GivenName: "alice"}, []string{RuleContainsName}},
		{"zero max means default", Policy{MinLength: 1}, strings.Repeat("x", 256), UserContext{}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := tc.policy.Check(context.Background(), tc.password, tc.uc)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, rules(vs)); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyBreached(t *testing.T) {
	ctx := context.Background()
	p := DefaultPolicy()
	p.MinScore = 0

	fake := &fakeChecker{breached: map[string]bool{"correct horse battery staple": true, "password123!": true}}
	p.Breached = fake
	vs, err := p.Check(ctx, "correct horse battery staple", UserContext{})
	if err != nil || !cmp.Equal(rules(vs), []string{RuleBreached}) {
		t.Errorf("breached: %v, %v; want [breached], nil", rules(vs), err)
	}
	// The normalized form is checked too when it differs.
	fake.asked = nil
	vs, _ = p.Check(ctx, "ｐａｓｓｗｏｒｄ１２３！", UserContext{})
	if !cmp.Equal(rules(vs), []string{RuleBreached}) {
		t.Errorf("full-width breached: %v; want [breached]", rules(vs))
	}
	if want := []string{"ｐａｓｓｗｏｒｄ１２３！", "password123!"}; !cmp.Equal(fake.asked, want) {
		t.Errorf("asked %q; want %q", fake.asked, want)
	}
	// No lookup for a password that is too long anyway.
	fake.asked = nil
	vs, _ = p.Check(ctx, strings.Repeat("z", 300), UserContext{})
	if len(fake.asked) != 0 || !cmp.Equal(rules(vs), []string{RuleMaxLength}) {
		t.Errorf("too long: asked %d, rules %v", len(fake.asked), rules(vs))
	}

	// A checker failure is returned apart; the other rules still apply.
	down := errors.New("api down")
	p.Breached = &fakeChecker{err: down}
	vs, err = p.Check(ctx, "short", UserContext{})
	if !errors.Is(err, down) {
		t.Errorf("err = %v; want the checker's", err)
	}
	if !cmp.Equal(rules(vs), []string{RuleMinLength}) {
		t.Errorf("rules with checker down = %v; want [min_length]", rules(vs))
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Errorf("DefaultPolicy: %v", err)
	}
	err := Policy{MinLength: 100, MaxLength: 63, MinScore: 5}.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad policy")
	}
	for _, want := range []string{"max length must be at least 64", "min length must not exceed", "min score"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
}

func TestPrefix(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{{"abc", 0, ""}, {"abc", 2, "ab"}, {"abc", 3, "abc"}, {"abc", 9, "abc"}, {"äöü", 2, "äö"}} {
		if got := prefix(tc.s, tc.n); got != tc.want {
			t.Errorf("prefix(%q, %d) = %q; want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
