package authz

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func newCompiler(t testing.TB, opts CompilerOptions) *Compiler {
	t.Helper()
	c, err := NewCompiler(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompileRefused(t *testing.T) {
	c := newCompiler(t, CompilerOptions{})
	tests := []struct {
		name, expr string
		msg        []string // in the compiler's message, in order
	}{
		{"syntax", "request.mfa &&", []string{"Syntax error", "| request.mfa &&"}},
		{"undefined field", "request.mfaa", []string{"undefined field 'mfaa'", "| request.mfaa"}},
		{"undeclared variable", "session.mfa", []string{"undeclared reference to 'session'"}},
		{"type mismatch", `request.mfa == "yes"`, []string{"found no matching overload for '_==_' applied to '(bool, string)'"}},
		{"int", "1 + 1", []string{"expression of type int, want bool"}},
		{"string", "request.ip", []string{"expression of type string, want bool"}},
		{"dyn", `resource.attributes["public"]`, []string{"expression of type dyn, want bool"}},
		{"empty", "", []string{"Syntax error"}},
		{"too long", "true || " + strings.Repeat("request.mfa || ", 200) + "false", []string{"expression of 3013 characters, at most 2000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cond, err := c.Compile(tt.expr)
			if !errors.Is(err, ErrInvalidCondition) {
				t.Fatalf("Compile(%q) = %v, %v; want ErrInvalidCondition", tt.expr, cond, err)
			}
			var ce *ConditionError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T, want *ConditionError", err)
			}
			rest := ce.Message
			for _, m := range tt.msg {
				i := strings.Index(rest, m)
				if i < 0 {
					t.Fatalf("message %q lacks %q", ce.Message, m)
				}
				rest = rest[i+len(m):]
			}
			// A refusal is cached like a success.
			if _, again := c.Compile(tt.expr); again != err {
				t.Errorf("second Compile = %v, want the cached %v", again, err)
			}
		})
	}
}

func TestCompileLength(t *testing.T) {
	c := newCompiler(t, CompilerOptions{})
	// Exactly MaxConditionLength characters, some of them multibyte.
	expr := `request.country != "` + strings.Repeat("é", MaxConditionLength-21) + `"`
	if n := len([]rune(expr)); n != MaxConditionLength {
		t.Fatalf("test expression of %d characters", n)
	}
	if _, err := c.Compile(expr); err != nil {
		t.Fatalf("Compile at the limit: %v", err)
	}
	if _, err := c.Compile(expr + " "); !errors.Is(err, ErrInvalidCondition) {
		t.Fatalf("Compile beyond the limit: %v", err)
	}
}

func TestConditionEval(t *testing.T) {
	c := newCompiler(t, CompilerOptions{})
	big := make([]any, 20_000)
	for i := range big {
		big[i] = i
	}
	vars := c.Vars(
		Request{IP: "10.1.2.3", Time: time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC), MFA: true, Country: "FR"},
		User{ID: "u1", EmailVerified: true, Organizations: []string{"o1", "o2"}, Metadata: map[string]any{"plan": "pro", "seats": 12}},
		Resource{Type: "invoice", ID: "inv1", OrganizationID: "o1", OwnerID: "u1", Attributes: map[string]any{
			"amount": 250.5, "tags": []any{"q1", "paid"}, "public": false, "big": big,
		}},
	)
	tests := []struct {
		expr string
		want bool
		err  string // in the evaluation error
	}{
		{expr: "request.mfa", want: true},
		{expr: "!request.mfa", want: false},
		{expr: `request.country == "FR" && request.ip.startsWith("10.")`, want: true},
		{expr: `cidr("10.0.0.0/8").containsIP(request.ip)`, want: true},
		{expr: `cidr("192.168.0.0/16").containsIP(request.ip)`, want: false},
		{expr: `request.time >= timestamp("2026-03-01T12:00:00Z") && request.time.getHours() == 12`, want: true},
		{expr: "user.email_verified && user.id == resource.owner_id", want: true},
		{expr: "resource.organization_id in user.organizations", want: true},
		{expr: `user.metadata.plan == "pro" && user.metadata.seats > 10`, want: true},
		{expr: `resource.type == "invoice" && resource.id == "inv1"`, want: true},
		{expr: `resource.attributes.amount < 1000.0 && "paid" in resource.attributes.tags`, want: true},
		{expr: `resource.attributes.public == true`, want: false},
		{expr: `has(resource.attributes.region) && resource.attributes.region == "eu"`, want: false},
		{expr: `resource.attributes.region == "eu"`, err: "no such key: region"},
		{expr: `user.metadata.plan > 3`, err: "no such overload"},
		{expr: "resource.attributes.big.all(i, i >= 0)", err: "cost limit exceeded"},
		{expr: `ip(request.country) == ip("10.0.0.1")`, err: "parse error"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			cond, err := c.Compile(tt.expr)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := cond.Eval(vars)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Eval = %v, %v; want an error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Eval = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestCostLimit: the limit is the Compiler's, and a comprehension just
// under it passes while a bigger list does not.
func TestCostLimit(t *testing.T) {
	for _, tt := range []struct {
		limit uint64
		n     int
		fails bool
	}{
		{limit: 0, n: 100, fails: false}, // default limit
		{limit: 0, n: 20_000, fails: true},
		{limit: 50, n: 100, fails: true},
		{limit: 1_000_000, n: 20_000, fails: false},
	} {
		t.Run(fmt.Sprintf("limit %d, %d items", tt.limit, tt.n), func(t *testing.T) {
			c := newCompiler(t, CompilerOptions{CostLimit: tt.limit})
			items := make([]any, tt.n)
			for i := range items {
				items[i] = i
			}
			vars := c.Vars(Request{}, User{}, Resource{Attributes: map[string]any{"items": items}})
			cond, err := c.Compile("resource.attributes.items.all(i, i >= 0)")
			if err != nil {
				t.Fatal(err)
			}
			ok, err := cond.Eval(vars)
			if tt.fails {
				if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
					t.Fatalf("Eval = %v, %v; want the cost limit exceeded", ok, err)
				}
				return
			}
			if err != nil || !ok {
				t.Fatalf("Eval = %v, %v; want true", ok, err)
			}
		})
	}
}

func TestCompileCache(t *testing.T) {
	c := newCompiler(t, CompilerOptions{CacheSize: 2})
	compile := func(expr string) *Condition {
		t.Helper()
		cond, err := c.Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		return cond
	}
	a := compile("request.mfa")
	if compile("request.mfa") != a {
		t.Fatal("second Compile did not hit the cache")
	}
	b := compile("user.email_verified")
	if compile("request.mfa") != a { // a is now the most recently used
		t.Fatal("cache miss for a")
	}
	compile(`request.country == "FR"`) // evicts b, the least recently used
	if compile("request.mfa") != a {
		t.Fatal("a was evicted, want b evicted")
	}
	if compile("user.email_verified") == b {
		t.Fatal("b still cached beyond the cache size")
	}
	if n := c.lru.Len(); n != 2 {
		t.Fatalf("cache holds %d entries, want 2", n)
	}
}

// TestCompilerConcurrent compiles and evaluates from many goroutines (run
// with -race).
func TestCompilerConcurrent(t *testing.T) {
	c := newCompiler(t, CompilerOptions{CacheSize: 8})
	vars := c.Vars(Request{MFA: true}, User{ID: "u1"}, Resource{OwnerID: "u1"})
	var wg sync.WaitGroup
	errs := make(chan error, 16*50)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				expr := fmt.Sprintf("request.mfa && resource.owner_id == user.id && %d >= 0", (g+i)%12)
				cond, err := c.Compile(expr)
				if err != nil {
					errs <- err
					return
				}
				if ok, err := cond.Eval(vars); err != nil || !ok {
					errs <- fmt.Errorf("%s = %v, %v", expr, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := c.lru.Len(); n > 8 {
		t.Errorf("cache holds %d entries, more than its size 8", n)
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"request.mfa", `resource.attributes["x"] == 1`, "1 + ", `cidr("10.0.0.0/8").containsIP(request.ip)`, "[1,2].all(x, x > 0)"} {
		f.Add(s)
	}
	c := newCompiler(f, CompilerOptions{CacheSize: 64})
	vars := c.Vars(Request{IP: "10.0.0.1"}, User{}, Resource{Attributes: map[string]any{"x": 1}})
	f.Fuzz(func(t *testing.T, expr string) {
		cond, err := c.Compile(expr)
		if err != nil {
			if !errors.Is(err, ErrInvalidCondition) {
				t.Fatalf("Compile(%q) = %v, not ErrInvalidCondition", expr, err)
			}
			return
		}
		_, _ = cond.Eval(vars) // must not panic
	})
}
