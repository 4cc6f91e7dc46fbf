package sms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/ratelimit"
	"github.com/gatehouse/gatehouse/internal/secret"
)

var (
	// ErrCountryNotAllowed is returned by Guard.Check for a number outside
	// the country allowlist.
	ErrCountryNotAllowed = errors.New("sms: text messages to this country are not enabled")
	// ErrNotMobile is returned by Guard.Check for a number of a type that
	// cannot receive text messages: landline, premium-rate, shared-cost,
	// toll-free and the like.
	ErrNotMobile = errors.New("sms: the number cannot receive text messages")
)

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrInvalidPhone, http.StatusUnprocessableEntity, "invalid_phone_number",
			"The phone number is not valid; give it in international form, starting with + and the country code."),
		httpapi.MapError(ErrCountryNotAllowed, http.StatusUnprocessableEntity, "phone_country_not_allowed",
			"Text messages to this country are not enabled."),
		httpapi.MapError(ErrNotMobile, http.StatusUnprocessableEntity, "phone_not_mobile",
			"The phone number cannot receive text messages."),
	}
}

// ErrRateLimited is returned by Guard.Check when a limit refuses the
// message; take it apart with errors.As(err, &rl) where rl is an
// *ErrRateLimited. (It is a type, not a sentinel, because it carries
// RetryAfter; the name is the one callers were written against.)
type ErrRateLimited struct {
	// Scope names the limit: "user", "phone" or "country". Fit for logs
	// and metrics; do not tell the client which one it was.
	Scope string
	// RetryAfter is how long until the same message would be allowed.
	RetryAfter time.Duration
}

func (e *ErrRateLimited) Error() string {
	return "sms: too many text messages (" + e.Scope + " limit); retry after " + e.RetryAfter.Round(time.Second).String()
}

// Problem returns a 429 problem with the code rate_limited and a
// Retry-After of at least one second, for callers that have no better
// answer (such as offering the email code).
func (e *ErrRateLimited) Problem() *httpapi.Problem {
	p := httpapi.NewProblem(http.StatusTooManyRequests, "rate_limited", "Too many text messages; try again later.")
	p.RetryAfter = max(1, int((e.RetryAfter+time.Second-1)/time.Second))
	return p
}

// Guard decides whether a text message may be sent: the defences against
// SMS pumping (toll fraud) and SMS bombing. Call Check before enqueueing
// every message, with the user it is for.
//
// A zero Limit (ratelimit.Limit{}) disables that limit. Limits are kept in Limiter
// under the keys "sms:user:<id>", "sms:phone:<pseudonym of the E.164
// number>" (see secret.Keyring.Pseudonym: no key holds a number) and
// "sms:country:<calling code>".
//
// The allowlist is the strongest defence: allow only the countries the
// service has users in. AllowedCountries holds calling codes and
// AllowedRegions ISO 3166 regions; a number is allowed when either lists
// it, and every number is when both are empty. Regions matter because
// calling codes are shared: +1 is the United States, Canada and two dozen
// other countries and territories, most of them in the Caribbean and some
// favourite pumping destinations, so
// AllowedRegions: {"US", "CA"} is tighter than AllowedCountries: {1}.
type Guard struct {
	Limiter ratelimit.Limiter
	// Keys names the per-phone limit by a keyed hash of the number.
	Keys *secret.Keyring

	// PerUser limits messages to one account, whatever the number.
	PerUser ratelimit.Limit
	// PerPhone limits messages to one number, whoever asks: against
	// bombing a victim, and against pumping through many accounts.
	PerPhone ratelimit.Limit
	// PerCountry limits messages to each calling code, shared by all users;
	// it caps what a pumping attack costs. Countries not listed get
	// DefaultPerCountry; an entry with a zero Limit exempts its country.
	PerCountry        map[int]ratelimit.Limit
	DefaultPerCountry ratelimit.Limit

	AllowedCountries []int
	AllowedRegions   []string
}

// Validate reports every problem with g's configuration at once: limits
// that are neither zero nor usable (Rate and Burst at least 1, Period
// positive), limits without a Limiter, calling codes and regions that do
// not exist. Call it at start-up: Check fails closed (returns an error for
// every message) on an unusable limit, and an allowlist entry that does
// not exist matches nothing.
func (g *Guard) Validate() error {
	var errs []error
	limits := map[string]ratelimit.Limit{"per-user": g.PerUser, "per-phone": g.PerPhone, "default per-country": g.DefaultPerCountry}
	for _, cc := range slices.Sorted(maps.Keys(g.PerCountry)) {
		limits["per-country +"+strconv.Itoa(cc)] = g.PerCountry[cc]
		if phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
			errs = append(errs, fmt.Errorf("sms: per-country limit for +%d, which is not a calling code", cc))
		}
	}
	names := slices.Sorted(maps.Keys(limits))
	anySet := false
	for _, name := range names {
		l := limits[name]
		if l == (ratelimit.Limit{}) {
			continue
		}
		anySet = true
		if l.Rate < 1 || l.Burst < 1 || l.Period <= 0 {
			errs = append(errs, fmt.Errorf("sms: %s limit %v: Rate and Burst must be at least 1 and Period positive", name, l))
		}
	}
	if anySet && g.Limiter == nil {
		errs = append(errs, errors.New("sms: Guard has limits but no Limiter"))
	}
	if g.PerPhone != (ratelimit.Limit{}) && len(g.Keys.KeyIDs()) == 0 {
		// Without keys the per-phone key would be an unkeyed hash of the
		// number, which a list of numbers reverses.
		errs = append(errs, errors.New("sms: Guard has a per-phone limit but no Keys to name numbers by"))
	}
	for _, cc := range g.AllowedCountries {
		if cc <= 0 || phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
			errs = append(errs, fmt.Errorf("sms: allowed country +%d is not a calling code", cc))
		}
	}
	for _, r := range g.AllowedRegions {
		if phonenumbers.GetCountryCodeForRegion(strings.ToUpper(r)) == 0 {
			errs = append(errs, fmt.Errorf("sms: allowed region %q is not an ISO 3166 region with phone numbers", r))
		}
	}
	return errors.Join(errs...)
}

// Check reports whether a message may be sent to the E.164 number e164 for
// userID (empty: no per-user limit), and if so counts it against every
// limit. It returns ErrInvalidPhone, ErrCountryNotAllowed, ErrNotMobile, an
// *ErrRateLimited, or an error of the Limiter (fail closed: no message).
//
// The allowlist and number type are checked first and cost nothing. The
// limits are then taken one after the other, narrowest first: user, phone,
// country. GCRA cannot take a unit from several keys atomically, so a
// message refused by a later limit has already used a unit of the earlier
// ones. That errs on the safe side (a refused attempt still counts against
// the one who made it), and the order makes it cheap: an attacker stopped
// by their own user or phone limit never reaches, and so never drains, the
// country limit that every user of that country shares.
func (g *Guard) Check(ctx context.Context, userID, e164 string) error {
	num, err := parseE164(e164)
	if err != nil {
		return err
	}
	cc := int(num.GetCountryCode())
	if !g.allowed(cc, phonenumbers.GetRegionCodeForNumber(num)) {
		return ErrCountryNotAllowed
	}
	if !smsCapable(num) {
		return ErrNotMobile
	}
	country := g.DefaultPerCountry
	if l, ok := g.PerCountry[cc]; ok {
		country = l
	}
	steps := []struct {
		scope, key string
		limit      ratelimit.Limit
	}{
		{"user", "sms:user:" + userID, g.PerUser},
		{"phone", "sms:phone:" + g.Keys.Pseudonym(secret.RateLimitPurpose, e164), g.PerPhone},
		{"country", "sms:country:" + strconv.Itoa(cc), country},
	}
	for _, s := range steps {
		if s.limit == (ratelimit.Limit{}) || (s.scope == "user" && userID == "") {
			continue
		}
		if g.Limiter == nil {
			return errors.New("sms: Guard has limits but no Limiter")
		}
		res, err := g.Limiter.AllowN(ctx, s.key, s.limit, 1)
		if err != nil {
			return fmt.Errorf("sms: %s rate limit: %w", s.scope, err)
		}
		if res.Allowed == 0 {
			return &ErrRateLimited{Scope: s.scope, RetryAfter: res.RetryAfter}
		}
	}
	return nil
}

// allowed applies the allowlist to a calling code and region.
func (g *Guard) allowed(cc int, region string) bool {
	if len(g.AllowedCountries) == 0 && len(g.AllowedRegions) == 0 {
		return true
	}
	return slices.Contains(g.AllowedCountries, cc) ||
		slices.ContainsFunc(g.AllowedRegions, func(r string) bool { return strings.EqualFold(r, region) })
}

// ParseAllowlist parses a comma-separated country allowlist, as
// configuration gives it, into calling codes and regions for a Guard.
// Entries are calling codes ("44", "+44") or ISO 3166-1 alpha-2 regions
// ("US", "gb"); white space is ignored; unknown codes and regions are
// errors, all reported at once. An empty s allows every country.
func ParseAllowlist(s string) (codes []int, regions []string, err error) {
	var errs []error
	for i, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			if strings.TrimSpace(s) != "" {
				errs = append(errs, fmt.Errorf("sms: allowlist entry %d is empty", i+1))
			}
			continue
		}
		if n, convErr := strconv.Atoi(strings.TrimPrefix(e, "+")); convErr == nil {
			if n <= 0 || phonenumbers.GetRegionCodeForCountryCode(n) == "ZZ" {
				errs = append(errs, fmt.Errorf("sms: allowlist entry %d: %q is not a country calling code", i+1, e))
				continue
			}
			if !slices.Contains(codes, n) {
				codes = append(codes, n)
			}
			continue
		}
		r := strings.ToUpper(e)
		if len(r) != 2 || phonenumbers.GetCountryCodeForRegion(r) == 0 {
			errs = append(errs, fmt.Errorf("sms: allowlist entry %d: %q is neither a calling code nor an ISO 3166 region", i+1, e))
			continue
		}
		if !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return codes, regions, nil
}
