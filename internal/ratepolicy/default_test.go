package ratepolicy

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/mfa"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/social"
	"github.com/gatehouse/gatehouse/internal/user"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// settingDefault returns the default of a GATEHOUSE_* setting as a number.
func settingDefault(t *testing.T, name string) int {
	t.Helper()
	for _, f := range config.Fields() {
		if f.Var == name {
			n, err := strconv.Atoi(f.Default)
			if err != nil {
				t.Fatalf("%s default %q: %v", name, f.Default, err)
			}
			return n
		}
	}
	t.Fatalf("no setting %s", name)
	return 0
}

// TestBuiltinIsTodaysLimits checks that the built-in numbers are those
// the features apply on their own and the settings' defaults.
func TestBuiltinIsTodaysLimits(t *testing.T) {
	u := user.DefaultConfig("https://app.example")
	s := social.DefaultConfig("https://id.example", "https://app.example", nil)
	m := mfa.DefaultConfig("Gatehouse")
	b := Builtin()
	for _, tc := range []struct {
		name      string
		got, want ratelimit.Limit
	}{
		{"RegisterPerIP = user", b.RegisterPerIP, u.RegisterPerIP},
		{"RegisterPerIP = setting", b.RegisterPerIP, PerHour(settingDefault(t, "GATEHOUSE_REGISTER_LIMIT_PER_IP"))},
		{"EmailPerAddress = user", b.EmailPerAddress, u.EmailPerAddress},
		{"EmailPerAddress = setting", b.EmailPerAddress, PerHour(settingDefault(t, "GATEHOUSE_EMAIL_LIMIT_PER_ADDRESS"))},
		{"EmailPerIP = user", b.EmailPerIP, u.EmailPerIP},
		{"EmailPerIP = setting", b.EmailPerIP, PerHour(settingDefault(t, "GATEHOUSE_EMAIL_LIMIT_PER_IP"))},
		{"MagicLinkPerAddress", b.MagicLinkPerAddress, s.MagicLinkPerAddress},
		{"MagicLinkPerIP", b.MagicLinkPerIP, s.MagicLinkPerIP},
		{"MFAVerifyPerUser", b.MFAVerifyPerUser, m.VerifyLimit},
		{"MFASendPerUser", b.MFASendPerUser, m.ResendLimit},
		{"PasswordChangePerUser", b.PasswordChangePerUser, u.PasswordChangePerUser},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// TestDefaultRules checks every rule of the built-in policy: what it
// covers, its key, limit (from Defaults), penalty and silence.
func TestDefaultRules(t *testing.T) {
	b := Builtin()
	type row struct {
		Routes          string
		Key             string
		Limit           ratelimit.Limit
		Penalty, Silent bool
	}
	want := map[string]row{
		"register-ip":          {"register", "ip", b.RegisterPerIP, true, false},
		"email-address":        {"email_request", "email", b.EmailPerAddress, false, true},
		"email-ip":             {"email_request", "ip", b.EmailPerIP, true, true},
		"magic-link-address":   {"magic_link", "email", b.MagicLinkPerAddress, false, true},
		"magic-link-ip":        {"magic_link", "ip", b.MagicLinkPerIP, true, true},
		"mfa-verify-user":      {"mfa_verify", "user", b.MFAVerifyPerUser, true, false},
		"mfa-send-user":        {"POST /v1/auth/mfa/challenge, POST /v1/me/mfa/sms, POST /v1/me/mfa/email", "user", b.MFASendPerUser, true, false},
		"password-change-user": {"POST /v1/me/password", "user", b.PasswordChangePerUser, true, false},
		"passkey-begin-ip":     {"POST /v1/auth/passkey/begin", "ip", PasskeyBeginPerIP, false, false},
	}
	got := map[string]row{}
	p := Default(Defaults{})
	for _, r := range p.Rules {
		var routes []string
		for _, rt := range r.Routes {
			routes = append(routes, rt.String())
		}
		got[r.Name] = row{strings.Join(routes, ", "), r.KeyString(), r.Limit, r.Penalty, r.Silent}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Default rules (-want +got):\n%s", diff)
	}
	if p.Source != "default" {
		t.Errorf("Source = %q, want default", p.Source)
	}
	// The groups nothing limited before the policy have no built-in rule:
	// upgrading changes no answer.
	for _, g := range []string{"login", "token", "introspect", "oauth_start", "api", "admin"} {
		if rules := p.RulesFor(g, "POST", "/nowhere"); len(rules) != 0 {
			t.Errorf("built-in rules cover the group %s: %v", g, rules)
		}
	}
}

// TestDefaultTakesTheSettings checks that the numbers of Defaults, filled
// from the GATEHOUSE_* settings, reach the rules, and that zero ones are
// the built-in numbers.
func TestDefaultTakesTheSettings(t *testing.T) {
	d := Defaults{RegisterPerIP: PerHour(7), EmailPerAddress: PerHour(2), EmailPerIP: PerHour(9)}
	p := Default(d)
	for name, want := range map[string]ratelimit.Limit{
		"register-ip": PerHour(7), "email-address": PerHour(2), "email-ip": PerHour(9),
		"magic-link-ip": Builtin().MagicLinkPerIP, "mfa-verify-user": Builtin().MFAVerifyPerUser,
	} {
		if got := p.Rule(name).Limit; got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	if diff := cmp.Diff(Default(Builtin()), Default(Defaults{})); diff != "" {
		t.Errorf("Default(Defaults{}) differs from Default(Builtin()):\n%s", diff)
	}
}

// TestDefaultIsValid runs the built-in policy through the checks of a
// file: written as YAML, it parses back to itself.
func TestDefaultIsValid(t *testing.T) {
	p := Default(Defaults{})
	data, err := p.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(data, "default")
	if err != nil {
		t.Fatalf("the built-in policy is not a valid file:\n%v\n%s", err, data)
	}
	if diff := cmp.Diff(p, again); diff != "" {
		t.Errorf("YAML round trip (-default +parsed):\n%s", diff)
	}
	checkApplicable(t, p)
}

// TestExampleRoundTrip checks that the example, written back as YAML,
// parses to the same policy (every field survives).
func TestExampleRoundTrip(t *testing.T) {
	p, err := Parse([]byte(ExampleYAML), "x")
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(data, "x")
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if diff := cmp.Diff(p, again); diff != "" {
		t.Errorf("(-example +round trip):\n%s", diff)
	}
}

func TestRulesFor(t *testing.T) {
	p := Default(Defaults{})
	ex, err := Parse([]byte(ExampleYAML), "x")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p                   *Policy
		group, method, path string
		want                []string
	}{
		{p, "login", "POST", "/v1/auth/login", nil}, // the lockout's, not a rule
		{p, "register", "POST", "/v1/auth/register", []string{"register-ip"}},
		{p, "email_request", "POST", "/v1/auth/password/forgot", []string{"email-address", "email-ip"}},
		{p, "api", "GET", "/v1/me", nil},
		{p, "api", "POST", "/v1/me/password", []string{"password-change-user"}},
		{p, "", "POST", "/v1/auth/mfa/challenge", []string{"mfa-send-user"}},
		{p, "mfa_verify", "POST", "/v1/auth/mfa/verify", []string{"mfa-verify-user"}},
		{p, "token", "POST", "/oauth2/token", nil},
		{ex, "token", "POST", "/oauth2/token", []string{"token-client"}},
		{p, "", "GET", "/healthz", nil},
		{ex, "register", "POST", "/v1/auth/register", []string{"signup-ip-email"}},
		{ex, "email_request", "POST", "/v1/auth/password/forgot", []string{"email-address", "signup-ip-email"}},
		{ex, "admin", "DELETE", "/v1/admin/users/u1", []string{"admin-writes"}},
		{ex, "admin", "GET", "/v1/admin/users/u1", nil},
		{ex, "mfa_verify", "POST", "/v1/me/mfa/devices/d1/confirm", []string{"device-confirm"}},
	} {
		var got []string
		for _, r := range tc.p.RulesFor(tc.group, tc.method, tc.path) {
			got = append(got, r.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s RulesFor(%q, %s %s) = %v, want %v", tc.p.Source, tc.group, tc.method, tc.path, got, tc.want)
		}
	}
	// The rules are the policy's own.
	if r := p.RulesFor("register", "POST", "/v1/auth/register")[0]; r != p.Rule("register-ip") || r != &p.Rules[0] {
		t.Error("RulesFor does not return the policy's rules")
	}
	if p.Rule("nope") != nil {
		t.Error(`Rule("nope") is not nil`)
	}
}

func TestLimitFor(t *testing.T) {
	p, err := Parse([]byte(ExampleYAML), "x")
	if err != nil {
		t.Fatal(err)
	}
	r := p.Rule("token-client")
	for tier, want := range map[string]ratelimit.Limit{
		"":           r.Limit,
		"standard":   r.Limit, // declared, but the rule gives it no limit
		"unknown":    r.Limit,
		"free":       {Rate: 60, Burst: 60, Period: time.Minute},
		"enterprise": {Rate: 6000, Burst: 6000, Period: time.Minute},
	} {
		if got := r.LimitFor(tier); got != want {
			t.Errorf("LimitFor(%q) = %v, want %v", tier, got, want)
		}
	}
}

func TestGroupDocs(t *testing.T) {
	for _, g := range Groups {
		if GroupDoc(g) == "" {
			t.Errorf("group %s has no doc", g)
		}
	}
	if len(groupDocs) != len(Groups) || GroupDoc("nope") != "" {
		t.Error("groupDocs describes something that is not a group")
	}
}

// TestTable compares the Markdown table of the built-in policy and of the
// example with golden files (go test -update rewrites them).
func TestTable(t *testing.T) {
	ex, err := Parse([]byte(ExampleYAML), "x")
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*Policy{"default-table.md": Default(Defaults{}), "example-table.md": ex} {
		golden(t, name, p.Table())
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-golden +got):\n%s", name, diff)
	}
}
