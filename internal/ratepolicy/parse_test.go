package ratepolicy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/ratelimit"
)

func TestParseExample(t *testing.T) {
	p, err := Parse([]byte(ExampleYAML), "example.yaml")
	if err != nil {
		t.Fatalf("the example does not parse:\n%v", err)
	}
	perMin := func(n, burst int) ratelimit.Limit { return ratelimit.Limit{Rate: n, Burst: burst, Period: time.Minute} }
	want := &Policy{
		Source: "example.yaml",
		Tiers:  []string{"free", "standard", "enterprise"},
		Rules: []Rule{
			{Name: "login-ip", Routes: []Route{{Group: "login"}}, Key: []KeyPart{KeyIP}, Limit: perMin(60, 20), Penalty: true},
			{Name: "email-address", Routes: []Route{{Group: "email_request"}}, Key: []KeyPart{KeyEmail}, Limit: PerHour(5), Penalty: false, Silent: true},
			{
				Name: "signup-ip-email", Routes: []Route{{Group: "register"}, {Group: "email_request"}}, Key: []KeyPart{KeyIP, KeyEmail},
				Limit: ratelimit.Limit{Rate: 10, Burst: 10, Period: 15 * time.Minute}, Penalty: true, Silent: true,
			},
			{
				Name: "token-client", Routes: []Route{{Group: "token"}}, Key: []KeyPart{KeyClient}, Limit: perMin(600, 100), Penalty: true,
				Tiers: map[string]ratelimit.Limit{"free": perMin(60, 60), "enterprise": perMin(6000, 6000)},
			},
			{
				Name:   "admin-writes",
				Routes: []Route{{Method: "POST", Path: "/v1/admin/*"}, {Method: "PATCH", Path: "/v1/admin/*"}, {Method: "DELETE", Path: "/v1/admin/*"}},
				Key:    []KeyPart{KeyUser}, Limit: ratelimit.Limit{Rate: 100, Burst: 100, Period: 15 * time.Minute}, Penalty: true,
			},
			{
				Name: "device-confirm", Routes: []Route{{Method: "POST", Path: "/v1/me/mfa/devices/{id}/confirm"}}, Key: []KeyPart{KeyUser, KeyIP},
				Limit: ratelimit.Limit{Rate: 1000, Burst: 1000, Period: 24 * time.Hour}, Penalty: false,
			},
		},
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("Parse(ExampleYAML) (-want +got):\n%s", diff)
	}
	checkApplicable(t, p)
}

// checkApplicable checks that package ratelimit accepts every limit of p.
func checkApplicable(t *testing.T, p *Policy) {
	t.Helper()
	l := ratelimit.NewMemory(nil)
	for _, r := range p.Rules {
		limits := []ratelimit.Limit{r.Limit}
		for _, tl := range r.Tiers {
			limits = append(limits, tl)
		}
		for _, limit := range limits {
			if _, err := l.AllowN(t.Context(), "check", limit, 0); err != nil {
				t.Errorf("rule %s: ratelimit refuses %v: %v", r.Name, limit, err)
			}
		}
	}
}

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ratelimit.Limit
		out  string // FormatLimit of it
	}{
		{"10/1m", ratelimit.Limit{Rate: 10, Burst: 10, Period: time.Minute}, "10/1m"},
		{"5/h", ratelimit.Limit{Rate: 5, Burst: 5, Period: time.Hour}, "5/1h"},
		{"100/15m", ratelimit.Limit{Rate: 100, Burst: 100, Period: 15 * time.Minute}, "100/15m"},
		{"1000/1d", ratelimit.Limit{Rate: 1000, Burst: 1000, Period: 24 * time.Hour}, "1000/1d"},
		{"30/90s", ratelimit.Limit{Rate: 30, Burst: 30, Period: 90 * time.Second}, "30/90s"},
		{"2/120m", ratelimit.Limit{Rate: 2, Burst: 2, Period: 2 * time.Hour}, "2/2h"},
		{" 7 / 2h ", ratelimit.Limit{Rate: 7, Burst: 7, Period: 2 * time.Hour}, "7/2h"},
	} {
		got, err := ParseLimit(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		if s := FormatLimit(got); s != tc.out {
			t.Errorf("FormatLimit(%v) = %q, want %q", got, s, tc.out)
		}
	}
	for _, in := range []string{
		"", "10", "10/", "/1m", "0/1m", "-1/1m", "+5/1m", "1.5/1m", "10/0m", "10/-1m", "10/1x", "10/1.5m", "10/m1",
		"10/1 m", "10/1M", "ten/1m", "1000000000000/1s", "10/9999999999999999d", "10/1m/2",
	} {
		if l, err := ParseLimit(in); err == nil {
			t.Errorf("ParseLimit(%q) = %v, want an error", in, l)
		}
	}
}

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Route
	}{
		{"login", Route{Group: "login"}},
		{"POST /v1/auth/login", Route{Method: "POST", Path: "/v1/auth/login"}},
		{"  GET   /v1/me ", Route{Method: "GET", Path: "/v1/me"}},
		{"/v1/admin/*", Route{Path: "/v1/admin/*"}},
		{"DELETE /v1/admin/users/{id}/sessions", Route{Method: "DELETE", Path: "/v1/admin/users/{id}/sessions"}},
		{"GET /docs/{rest...}", Route{Method: "GET", Path: "/docs/{rest...}"}},
		{"GET /", Route{Method: "GET", Path: "/"}},
		{"GET /.well-known/openid-configuration", Route{Method: "GET", Path: "/.well-known/openid-configuration"}},
	} {
		got, err := ParseRoute(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRoute(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", "logn", "Login", "post /x", "PSOT /x", "POST", "POST x", "v1/me", "/v1//me", "/v1/me/", "/v1/*/me",
		"/v1/{id", "/v1/{}", "/v1/{1d}", "/v1/{id}/{id}", "/v1/{rest...}/x", "/v1/me?x=1", "/v1/a b", "/v1/../admin", "/v1/./me",
		"/v1/a*", "/v1/x|y",
	} {
		if rt, err := ParseRoute(in); err == nil {
			t.Errorf("ParseRoute(%q) = %+v, want an error", in, rt)
		}
	}
}

func TestRouteCovers(t *testing.T) {
	for _, tc := range []struct {
		route               string
		group, method, path string
		want                bool
	}{
		{"login", "login", "POST", "/v1/auth/login", true},
		{"login", "register", "POST", "/v1/auth/login", false},
		{"login", "", "POST", "/v1/auth/login", false}, // a group covers by group only
		{"POST /v1/auth/login", "", "POST", "/v1/auth/login", true},
		{"POST /v1/auth/login", "login", "POST", "/v1/auth/login", true},
		{"POST /v1/auth/login", "", "GET", "/v1/auth/login", false},
		{"POST /v1/auth/login", "", "POST", "/v1/auth/login/x", false},
		{"POST /v1/auth/login", "", "POST", "/v1/auth", false},
		{"GET /v1/me", "", "HEAD", "/v1/me", true},
		{"HEAD /v1/me", "", "GET", "/v1/me", false},
		{"/v1/me", "", "PATCH", "/v1/me", true},
		{"POST /v1/me/mfa/devices/{id}/confirm", "", "POST", "/v1/me/mfa/devices/abc/confirm", true},
		{"POST /v1/me/mfa/devices/{id}/confirm", "", "POST", "/v1/me/mfa/devices//confirm", false},
		{"POST /v1/me/mfa/devices/{id}/confirm", "", "POST", "/v1/me/mfa/devices/a/b/confirm", false},
		{"/v1/admin/*", "", "GET", "/v1/admin/users", true},
		{"/v1/admin/*", "", "DELETE", "/v1/admin/users/1/sessions", true},
		{"/v1/admin/*", "", "GET", "/v1/admin/", true},
		{"/v1/admin/*", "", "GET", "/v1/admin", false},
		{"/v1/admin/*", "", "GET", "/v1/administrators", false},
		{"/v1/{x}/*", "", "GET", "/v1/me/sessions", true},
		{"GET /docs/{rest...}", "", "GET", "/docs/a/b", true},
		{"GET /", "", "GET", "/", true},
		{"GET /", "", "GET", "/x", false},
		{"/*", "", "GET", "/anything/at/all", true},
		{"/v1/me", "", "GET", "v1/me", false},
	} {
		rt, err := ParseRoute(tc.route)
		if err != nil {
			t.Fatal(err)
		}
		if got := rt.Covers(tc.group, tc.method, tc.path); got != tc.want {
			t.Errorf("%q covers (%q, %s %s) = %v, want %v", tc.route, tc.group, tc.method, tc.path, got, tc.want)
		}
	}
}

func TestParseKey(t *testing.T) {
	got, err := ParseKey("ip+email")
	if diff := cmp.Diff([]KeyPart{KeyIP, KeyEmail}, got); err != nil || diff != "" {
		t.Errorf("ParseKey(ip+email) = %v, %v; diff %s", got, err, diff)
	}
	for _, in := range []string{"", "phone", "ip+", "ip+ip", "IP", "ip,email"} {
		if k, err := ParseKey(in); err == nil {
			t.Errorf("ParseKey(%q) = %v, want an error", in, k)
		}
	}
}

// TestParseFieldDefaults checks burst (N), penalty (true), tiers (none)
// and silence when a file leaves them out.
func TestParseFieldDefaults(t *testing.T) {
	p, err := Parse([]byte(`
rules:
  - {name: a, routes: [login], key: ip, limit: 10/1m}
  - {name: b, routes: ["POST /v1/auth/password/forgot"], key: ip, limit: 10/1m, burst: 3, penalty: true}
  - {name: c, routes: [magic_link], key: user, limit: 10/1m}
  - {name: d, routes: ["/v1/auth/*"], key: client+email, limit: 10/1m, penalty: false}
`), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Burst           int
		Penalty, Silent bool
		Tiers           int
	}
	var got []summary
	for _, r := range p.Rules {
		got = append(got, summary{r.Limit.Burst, r.Penalty, r.Silent, len(r.Tiers)})
	}
	want := []summary{{10, true, false, 0}, {3, true, true, 0}, {10, true, true, 0}, {10, false, true, 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestParseReportsEveryProblem checks that one file with a problem of
// every kind reports them all at once, each naming its rule and field.
func TestParseReportsEveryProblem(t *testing.T) {
	const file = `tiers: [free, free]
colour: red
rules:
  - name: bad-routes
    routes: [logn, "POST /v1//x", "PSOT /x", login, login]
    key: ip
    limit: 10/1m
  - name: bad-key
    routes: [login]
    key: ip+phone
    limit: 10/1m
  - name: bad-limit
    routes: [login]
    key: ip
    limit: 10/1x
  - name: bad-burst
    routes: [login]
    key: ip
    limit: 10/1m
    burst: 0
  - name: bad-limit
    routes: [login]
    key: ip
    limit: 10/1m
  - name: bad-tier
    routes: [token]
    key: client
    limit: 10/1m
    tiers: {gold: 100/1m, free: 0/1m}
  - name: bad-field
    routes: [login]
    key: ip
    limit: 10/1m
    limits: 20/1m
  - routes: [login]
    key: ip
    limit: 10/1m
  - name: bad-types
    routes: login
    key: [ip]
    limit: 10/1m
    burst: many
    penalty: maybe
`
	_, err := Parse([]byte(file), "policy.yaml")
	if err == nil {
		t.Fatal("Parse accepted a bad file")
	}
	want := []string{
		`policy.yaml:1: tiers: "free" is listed twice`,
		`policy.yaml:2: unknown field "colour"`,
		`policy.yaml:5: rule 1 "bad-routes" routes: "logn" is not a route group`,
		`policy.yaml:5: rule 1 "bad-routes" routes: "POST /v1//x": the path has an empty segment`,
		`policy.yaml:5: rule 1 "bad-routes" routes: "PSOT /x": "PSOT" is not an HTTP method`,
		`policy.yaml:5: rule 1 "bad-routes" routes: "login" is listed twice`,
		`policy.yaml:10: rule 2 "bad-key" key: "phone" is not a key part`,
		`policy.yaml:15: rule 3 "bad-limit" limit: "10/1x": the period "1x" does not end in a unit`,
		`policy.yaml:20: rule 4 "bad-burst" burst: 0: must be at least 1`,
		`policy.yaml:21: rule 5 "bad-limit" name: duplicate: rule 3 has the same name`,
		`policy.yaml:29: rule 6 "bad-tier" tiers: tier "gold" is not declared in the top-level tiers: list`,
		`policy.yaml:29: rule 6 "bad-tier" tiers free: "0/1m": N must be a whole number of at least 1`,
		`policy.yaml:34: rule 7 "bad-field": unknown field "limits"`,
		`policy.yaml:35: rule 8 name: required`,
		`policy.yaml:39: rule 9 "bad-types" routes: must be a list`,
		`policy.yaml:40: rule 9 "bad-types" key: must be a single value`,
		`policy.yaml:42: rule 9 "bad-types" burst: "many": must be a whole number`,
		`policy.yaml:43: rule 9 "bad-types" penalty: "maybe": must be true or false`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d: want one starting %q; got:\n%v", i+1, w, err)
			break
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(lines) {
		t.Errorf("the error is not one error per problem (errors.Join)")
	}
}

func TestParseWholeFileProblems(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"", "f.yaml: the file is empty"},
		{"# only a comment\n", "f.yaml: the file is empty"},
		{"tiers: [free]\n", "f.yaml: rules: no rules"},
		{"rules: []\n", "f.yaml:1: rules: no rules"},
		{"rules:\n", "f.yaml:1: rules: no rules"},
		{"rules: login\n", "f.yaml:1: rules: must be a list"},
		{"- name: a\n", "f.yaml:1: the top level must be a mapping"},
		{"rules: [\n", "f.yaml: yaml: "},
		{"rules: []\n---\nrules: []\n", "f.yaml:2: a policy file holds one YAML document"},
		{"rules: [a]\n", "f.yaml:1: rule 1: must be a mapping"},
		{"rules: [{name: a, routes: [login], key: ip, limit: 1/1m}]\nrules: []\n", "f.yaml:2: rules: given twice"},
	} {
		_, err := Parse([]byte(tc.file), "f.yaml")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error starting %q", tc.file, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(ExampleYAML))
	f.Add([]byte("rules: [{name: a, routes: [\"GET /x/{id}/*\"], key: ip+user, limit: 3/2h, burst: 1}]"))
	f.Add([]byte("tiers: [t]\nrules: [{name: a, routes: [api], key: client, limit: 1/1s, tiers: {t: 9/9d}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		checkApplicable(t, p)
		// What Parse accepts, it writes back to the same policy.
		out, err := p.YAML()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out, "fuzz")
		if err != nil {
			t.Fatalf("Parse of its own YAML: %v\n%s", err, out)
		}
		if diff := cmp.Diff(p, again); diff != "" {
			t.Fatalf("YAML round trip (-first +second):\n%s", diff)
		}
	})
}
