package sms

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/clocktest"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
)

func newTestGuard() (*Guard, *clocktest.Clock) {
	clock := clocktest.New(time.Date(2025, 6, 7, 8, 0, 0, 0, time.UTC))
	return &Guard{Limiter: ratelimit.NewMemory(clock.Now)}, clock
}

// Numbers of several kinds, valid in the numbering plans.
const (
	ukMobile    = "+447400123456"
	ukMobile2   = "+447400123457"
	ukLandline  = "+441212345678"
	ukPremium   = "+449012345678"
	usNumber    = "+14155552671"
	usNumber2   = "+12015550123"
	usTollFree  = "+18002345678"
	caNumber    = "+16135550123"
	jmMobile    = "+18762101234"
	deMobile    = "+4915123456789"
	frMobile    = "+33612345678"
	frShareCost = "+33884012345"
)

func rateLimited(t *testing.T, err error, scope string) {
	t.Helper()
	var rl *ErrRateLimited
	if !errors.As(err, &rl) {
		t.Fatalf("Check = %v, want an *ErrRateLimited", err)
	}
	if rl.Scope != scope || rl.RetryAfter <= 0 {
		t.Fatalf("Check = %+v, want scope %q and a positive RetryAfter", rl, scope)
	}
}

func TestGuardAllowlist(t *testing.T) {
	tests := []struct {
		name      string
		countries []int
		regions   []string
		allowed   []string
		refused   []string
	}{
		{"empty allows all", nil, nil, []string{ukMobile, usNumber, jmMobile, deMobile}, nil},
		{"calling codes", []int{44, 49}, nil, []string{ukMobile, deMobile}, []string{usNumber, frMobile, jmMobile}},
		{"+1 is all of NANP", []int{1}, nil, []string{usNumber, caNumber, jmMobile}, []string{ukMobile}},
		{"regions split NANP", nil, []string{"US", "ca"}, []string{usNumber, caNumber}, []string{jmMobile, ukMobile}},
		{"union of both", []int{33}, []string{"US"}, []string{frMobile, usNumber}, []string{jmMobile, deMobile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := newTestGuard()
			g.AllowedCountries, g.AllowedRegions = tt.countries, tt.regions
			for _, n := range tt.allowed {
				if err := g.Check(t.Context(), "u1", n); err != nil {
					t.Errorf("Check(%s) = %v, want allowed", n, err)
				}
			}
			for _, n := range tt.refused {
				if err := g.Check(t.Context(), "u1", n); !errors.Is(err, ErrCountryNotAllowed) {
					t.Errorf("Check(%s) = %v, want ErrCountryNotAllowed", n, err)
				}
			}
		})
	}
}

func TestGuardRefusesNumbers(t *testing.T) {
	g, _ := newTestGuard()
	g.PerUser = ratelimit.Limit{Rate: 1, Burst: 1, Period: time.Hour}
	for _, n := range []string{ukLandline, ukPremium, usTollFree, frShareCost} {
		if err := g.Check(t.Context(), "u1", n); !errors.Is(err, ErrNotMobile) {
			t.Errorf("Check(%s) = %v, want ErrNotMobile", n, err)
		}
	}
	for _, n := range []string{"+1 415 555 2671", "4155552671", "+1415555267", ""} {
		if err := g.Check(t.Context(), "u1", n); !errors.Is(err, ErrInvalidPhone) {
			t.Errorf("Check(%q) = %v, want ErrInvalidPhone", n, err)
		}
	}
	// None of the refusals used the user's single unit.
	if err := g.Check(t.Context(), "u1", ukMobile); err != nil {
		t.Errorf("Check after refusals = %v, want allowed", err)
	}
}

func TestGuardPerUser(t *testing.T) {
	g, clock := newTestGuard()
	g.PerUser = ratelimit.Limit{Rate: 3, Burst: 3, Period: time.Hour}
	phones := []string{ukMobile, usNumber, deMobile}
	for _, p := range phones {
		if err := g.Check(t.Context(), "u1", p); err != nil {
			t.Fatal(err)
		}
	}
	rateLimited(t, g.Check(t.Context(), "u1", frMobile), "user")
	if err := g.Check(t.Context(), "u2", frMobile); err != nil {
		t.Errorf("another user: %v", err)
	}
	// With no user, there is no per-user limit.
	for range 5 {
		if err := g.Check(t.Context(), "", frMobile); err != nil {
			t.Fatalf("no user: %v", err)
		}
	}
	clock.Advance(20 * time.Minute) // one emission interval
	if err := g.Check(t.Context(), "u1", frMobile); err != nil {
		t.Errorf("after 20 minutes: %v", err)
	}
	rateLimited(t, g.Check(t.Context(), "u1", frMobile), "user")
}

func TestGuardPerPhone(t *testing.T) {
	g, _ := newTestGuard()
	g.PerPhone = ratelimit.Limit{Rate: 2, Burst: 2, Period: time.Hour}
	// SMS bombing: many accounts, one victim.
	for _, u := range []string{"u1", "u2"} {
		if err := g.Check(t.Context(), u, ukMobile); err != nil {
			t.Fatal(err)
		}
	}
	rateLimited(t, g.Check(t.Context(), "u3", ukMobile), "phone")
	if err := g.Check(t.Context(), "u3", ukMobile2); err != nil {
		t.Errorf("another number: %v", err)
	}
}

func TestGuardPerCountry(t *testing.T) {
	g, _ := newTestGuard()
	g.DefaultPerCountry = ratelimit.Limit{Rate: 2, Burst: 2, Period: time.Hour}
	g.PerCountry = map[int]ratelimit.Limit{1: {Rate: 3, Burst: 3, Period: time.Hour}}

	// Pumping: many users, many numbers, one country.
	for i, p := range []string{ukMobile, ukMobile2} {
		if err := g.Check(t.Context(), "u"+string(rune('a'+i)), p); err != nil {
			t.Fatal(err)
		}
	}
	rateLimited(t, g.Check(t.Context(), "uz", "+447400123458"), "country")
	if err := g.Check(t.Context(), "uz", deMobile); err != nil {
		t.Errorf("another country: %v", err)
	}
	// +1 has its own, larger limit, shared by the US, Canada and Jamaica.
	for _, p := range []string{usNumber, caNumber, jmMobile} {
		if err := g.Check(t.Context(), "u-"+p, p); err != nil {
			t.Fatalf("Check(%s): %v", p, err)
		}
	}
	rateLimited(t, g.Check(t.Context(), "u-x", usNumber2), "country")
}

// TestGuardOrder checks that the narrower limits come first, so that an
// abuser stopped by their own limit does not drain the country limit every
// user shares, and documents that a later refusal has used a unit of the
// earlier limits.
func TestGuardOrder(t *testing.T) {
	g, clock := newTestGuard()
	g.PerUser = ratelimit.Limit{Rate: 1, Burst: 1, Period: time.Hour}
	g.PerPhone = ratelimit.Limit{Rate: 10, Burst: 10, Period: time.Hour}
	g.DefaultPerCountry = ratelimit.Limit{Rate: 3, Burst: 3, Period: time.Hour}

	if err := g.Check(t.Context(), "abuser", ukMobile); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		rateLimited(t, g.Check(t.Context(), "abuser", ukMobile2), "user")
	}
	// The country limit still has 2 of its 3 units for everyone else.
	for _, u := range []struct{ user, phone string }{{"alice", "+447400123460"}, {"bob", "+447400123461"}} {
		if err := g.Check(t.Context(), u.user, u.phone); err != nil {
			t.Fatalf("%s: %v", u.user, err)
		}
	}
	rateLimited(t, g.Check(t.Context(), "carol", "+447400123462"), "country")

	// Carol's refused attempt used her user unit: once the country limit
	// has room again, her own limit refuses her.
	clock.Advance(20 * time.Minute) // one country emission interval
	rateLimited(t, g.Check(t.Context(), "carol", "+447400123462"), "user")
	if err := g.Check(t.Context(), "dave", "+447400123463"); err != nil {
		t.Errorf("dave after the country limit refilled: %v", err)
	}
}

func TestGuardLimiterFailureFailsClosed(t *testing.T) {
	g := &Guard{Limiter: failingLimiter{}, PerPhone: ratelimit.Limit{Rate: 1, Burst: 1, Period: time.Hour}}
	err := g.Check(t.Context(), "u1", ukMobile)
	var rl *ErrRateLimited
	if err == nil || errors.As(err, &rl) || !strings.Contains(err.Error(), "redis down") {
		t.Errorf("Check with a failing limiter = %v, want its error", err)
	}
	g = &Guard{PerPhone: ratelimit.Limit{Rate: 1, Burst: 1, Period: time.Hour}}
	if err := g.Check(t.Context(), "u1", ukMobile); err == nil {
		t.Error("Check with limits and no Limiter succeeded")
	}
	// Without limits, no Limiter is needed.
	if err := (&Guard{}).Check(t.Context(), "u1", ukMobile); err != nil {
		t.Errorf("Check on a zero Guard = %v", err)
	}
}

type failingLimiter struct{}

func (failingLimiter) AllowN(context.Context, string, ratelimit.Limit, int) (ratelimit.Result, error) {
	return ratelimit.Result{}, errors.New("redis down")
}
func (failingLimiter) Reset(context.Context, string) error { return nil }

func TestGuardValidate(t *testing.T) {
	ok := ratelimit.Limit{Rate: 5, Burst: 5, Period: time.Hour}
	mem := ratelimit.NewMemory(nil)
	tests := []struct {
		name string
		g    Guard
		want []string
	}{
		{"zero", Guard{}, nil},
		{"per-phone without keys", Guard{Limiter: mem, PerPhone: ok}, []string{"no Keys"}},
		{"full", Guard{Limiter: mem, Keys: newKeyring(t), PerUser: ok, PerPhone: ok, DefaultPerCountry: ok,
			PerCountry: map[int]ratelimit.Limit{44: ok}, AllowedCountries: []int{1, 44}, AllowedRegions: []string{"us", "GB"}}, nil},
		{"no limiter", Guard{PerUser: ok}, []string{"no Limiter"}},
		{"bad limit", Guard{Limiter: mem, PerPhone: ratelimit.Limit{Rate: 5}}, []string{"per-phone"}},
		{"bad country limit", Guard{Limiter: mem, PerCountry: map[int]ratelimit.Limit{999: ok, 44: {Burst: 1}}},
			[]string{"+999", "per-country +44"}},
		{"bad allowlist", Guard{AllowedCountries: []int{0, 999}, AllowedRegions: []string{"XX"}},
			[]string{"+0", "+999", `"XX"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseAllowlist(t *testing.T) {
	codes, regions, err := ParseAllowlist(" 1, +44,49 ,us, GB,44 ")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := codes, []int{1, 44, 49}; !equalSlices(got, want) {
		t.Errorf("codes = %v, want %v", got, want)
	}
	if got, want := regions, []string{"US", "GB"}; !equalSlices(got, want) {
		t.Errorf("regions = %v, want %v", got, want)
	}
	if c, r, err := ParseAllowlist("  "); err != nil || c != nil || r != nil {
		t.Errorf("empty allowlist = %v, %v, %v", c, r, err)
	}
	_, _, err = ParseAllowlist("1,,999,XX,USA,-1")
	if err == nil {
		t.Fatal("bad allowlist accepted")
	}
	for _, w := range []string{"entry 2 is empty", `"999"`, `"XX"`, `"USA"`, `"-1"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %s", err, w)
		}
	}
}

func equalSlices[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGuardErrorsAsProblems checks the problems the API answers with.
func TestGuardErrorsAsProblems(t *testing.T) {
	tests := []struct {
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{ErrInvalidPhone, 422, "invalid_phone_number", ""},
		{ErrCountryNotAllowed, 422, "phone_country_not_allowed", ""},
		{ErrNotMobile, 422, "phone_not_mobile", ""},
		{(&ErrRateLimited{Scope: "phone", RetryAfter: 1500 * time.Millisecond}).Problem(), 429, "rate_limited", "2"},
		{(&ErrRateLimited{Scope: "user", RetryAfter: time.Millisecond}).Problem(), 429, "rate_limited", "1"},
	}
	errs, err := httpapi.NewErrorTable(Errors())
	if err != nil {
		t.Fatal(err)
	}
	ew := httpapi.ErrorWriter{Log: nil, Errors: errs}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		ew.Write(rec, httptest.NewRequest(http.MethodPost, "/v1/x", nil), tt.err)
		var p struct {
			Code   string `json:"code"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tt.status || p.Code != tt.code || rec.Header().Get("Retry-After") != tt.retryAfter {
			t.Errorf("%v: HTTP %d code %q Retry-After %q, want %d %q %q",
				tt.err, rec.Code, p.Code, rec.Header().Get("Retry-After"), tt.status, tt.code, tt.retryAfter)
		}
	}
}
