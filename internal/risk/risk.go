// Package risk scores a sign-in from what Gatehouse knows about the
// network it comes from, the device, recent failures and the user's own
// habits, and decides whether to allow it, ask for a second factor (step
// up) or refuse it (block). It is pure and explainable: Score is a
// function of its Input and the Settings, with no I/O, no clock and no
// opaque model, and every point of a score comes with the reason code of
// the signal that gave it.
//
// # Score
//
// Each signal that fires contributes its weight (Settings.Weights; 0
// disables the signal). The score is the sum of the contributions capped
// at 100, and each Reason carries the points it contributed before the
// cap, so the reasons always explain the whole score. The decision is
// block when the score reaches Settings.Block, step_up when it reaches
// Settings.StepUp, allow otherwise.
//
// # Signals
//
// The behavioural signals (new_device, new_country, new_asn,
// unusual_time, impossible_travel, velocity) compare the sign-in with the
// user's Profile, an online summary of past successful sign-ins. Each
// needs history of its own kind: a user's first sign-in, or the first one
// with a location once geolocation is turned on, is never penalised for
// having none. The network signals (tor_exit, datacenter_ip,
// blocklisted_ip) come from the IP lists the address is in, and
// credential_stuffing and account_under_attack from the failure counters
// of the ephemeral store (Counters). An address in the allowlist list
// never gets a network signal: neither the three list signals nor
// credential_stuffing.
//
// # Refreshes
//
// ScoreRefresh scores a refresh of a session against the session itself
// rather than the user's profile, with the same weights, reason codes and
// thresholds and these meanings:
//
//   - new_country: the refresh comes from another country than the one
//     the session was last seen in (its sign-in or latest refresh);
//   - new_asn: from another network (ASN) than the one it was last seen on;
//   - new_device: with another user agent than the session's sign-in;
//   - impossible_travel: the distance from where the session was last
//     seen, over the time since, is above MaxKMH (never under
//     MinTravelKM, as for sign-ins);
//   - tor_exit, datacenter_ip, blocklisted_ip: the refresh's address is in
//     the list (never for an address in the allowlist).
//
// The other signals need sign-in attempts or the profile and do not apply.
// A refresh from the session's own network with its user agent scores 0.
// A refresh is an anomaly when it changes country or network together
// with the user agent, or travels impossibly (counting only signals with
// a weight): a stolen refresh token used from elsewhere, or one session
// shared between distant networks, whose alternating refreshes each
// travel impossibly from the one before. A refresh cannot step up (there
// is nobody to ask for a second factor): at Settings.Block its decision
// is block, below it allow, an anomaly included.
package risk

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Code is a signal's reason code, as recorded on sessions and events.
type Code string

// The signals.
const (
	NewDevice          Code = "new_device"           // a device fingerprint never seen for this user
	NewCountry         Code = "new_country"          // a country never seen for this user
	NewASN             Code = "new_asn"              // a network (ASN) never seen for this user
	ImpossibleTravel   Code = "impossible_travel"    // too far from the last sign-in for the time elapsed
	TorExit            Code = "tor_exit"             // the address is in the tor list
	DatacenterIP       Code = "datacenter_ip"        // the address is in the datacenter list
	BlocklistedIP      Code = "blocklisted_ip"       // the address is in the blocklist list
	CredentialStuffing Code = "credential_stuffing"  // this address failed sign-ins for many distinct accounts
	AccountUnderAttack Code = "account_under_attack" // this account failed sign-ins from many distinct addresses
	UnusualTime        Code = "unusual_time"         // an hour of the week this user (almost) never signs in at
	Velocity           Code = "velocity"             // many successful sign-ins of this user in a short time
)

// Codes lists every signal, in the order Score evaluates them.
var Codes = []Code{
	NewDevice, NewCountry, NewASN, ImpossibleTravel, TorExit, DatacenterIP,
	BlocklistedIP, CredentialStuffing, AccountUnderAttack, UnusualTime, Velocity,
}

// Built-in IP list names (netintel's GATEHOUSE_IP_LISTS).
const (
	ListTor        = "tor"
	ListDatacenter = "datacenter"
	ListBlocklist  = "blocklist"
	ListAllowlist  = "allowlist"
)

// Decision is what a score means for the sign-in.
type Decision string

// The decisions, in increasing severity.
const (
	Allow  Decision = "allow"
	StepUp Decision = "step_up"
	Block  Decision = "block"
)

// DefaultWeights are the signals' default contributions. They are chosen
// so that one strong signal alone steps up (impossible_travel, tor_exit),
// an address an operator blocklisted blocks, and the weaker behavioural
// signals do not step up by themselves: a new device in a new country on
// a new network (35) is allowed, and the user is told ("was this you?").
// Impossible travel to a new country on a new network from a new device
// (85) steps up rather than blocks: the user may be real, behind a VPN.
func DefaultWeights() map[Code]int {
	return map[Code]int{
		NewDevice:          15,
		NewCountry:         15,
		NewASN:             5,
		ImpossibleTravel:   50,
		TorExit:            50,
		DatacenterIP:       20,
		BlocklistedIP:      90,
		CredentialStuffing: 40,
		AccountUnderAttack: 30,
		UnusualTime:        15,
		Velocity:           25,
	}
}

// Settings tune the signals and the decision. The wiring fills them from
// the configuration (GATEHOUSE_RISK_*); DefaultSettings gives the defaults.
type Settings struct {
	// Weights gives each signal's points (0–100); a missing or 0 weight
	// disables the signal.
	Weights map[Code]int
	// StepUp and Block are the decision thresholds (GATEHOUSE_RISK_STEP_UP,
	// default 50; GATEHOUSE_RISK_BLOCK, default 90), 1 ≤ StepUp ≤ Block ≤ 100.
	StepUp, Block int
	// MaxKMH is the fastest plausible travel between two sign-ins, in
	// km/h (GATEHOUSE_RISK_MAX_KMH, default 1000: an airliner).
	MaxKMH float64
	// MinTravelKM is the distance under which travel is never impossible
	// (default 300 km): geolocation of an address is often off by
	// hundreds of kilometres, or falls back to the country's centre.
	MinTravelKM float64
	// StuffingAccounts is how many distinct accounts one address must have
	// failed to sign in to within the counters' window for
	// credential_stuffing (default 10).
	StuffingAccounts int
	// AttackIPs is how many distinct addresses must have failed to sign in
	// to one account within the counters' window for account_under_attack
	// (default 5).
	AttackIPs int
	// VelocityWindow and VelocityMax: velocity fires when this sign-in
	// makes more than VelocityMax successful sign-ins of the user within
	// VelocityWindow (defaults 10 minutes and 5). VelocityMax is at most
	// MaxRecent, the sign-ins a Profile remembers.
	VelocityWindow time.Duration
	VelocityMax    int
	// UnusualMinSignIns is how many sign-ins a profile must hold before
	// unusual_time can fire (default 10), and UnusualShare the share of
	// the user's (decayed) sign-ins, in the same hour of the week or the
	// hours either side, under which the hour is unusual (default 0.02).
	UnusualMinSignIns int
	UnusualShare      float64
}

// DefaultSettings returns the default settings.
func DefaultSettings() Settings {
	return Settings{
		Weights:           DefaultWeights(),
		StepUp:            50,
		Block:             90,
		MaxKMH:            1000,
		MinTravelKM:       300,
		StuffingAccounts:  10,
		AttackIPs:         5,
		VelocityWindow:    10 * time.Minute,
		VelocityMax:       5,
		UnusualMinSignIns: 10,
		UnusualShare:      0.02,
	}
}

// Validate reports every problem with s at once.
func (s Settings) Validate() error {
	var errs []error
	for code, w := range s.Weights {
		if !slices.Contains(Codes, code) {
			errs = append(errs, fmt.Errorf("risk: unknown signal %q", code))
		}
		if w < 0 || w > 100 {
			errs = append(errs, fmt.Errorf("risk: weight of %s must be between 0 and 100, got %d", code, w))
		}
	}
	if s.StepUp < 1 || s.StepUp > s.Block || s.Block > 100 {
		errs = append(errs, fmt.Errorf("risk: thresholds must satisfy 1 <= step-up (%d) <= block (%d) <= 100", s.StepUp, s.Block))
	}
	if !(s.MaxKMH > 0) {
		errs = append(errs, fmt.Errorf("risk: max km/h must be positive, got %v", s.MaxKMH))
	}
	if !(s.MinTravelKM >= 0) {
		errs = append(errs, fmt.Errorf("risk: minimum travel distance must not be negative, got %v", s.MinTravelKM))
	}
	if s.StuffingAccounts < 1 {
		errs = append(errs, fmt.Errorf("risk: credential stuffing threshold must be at least 1, got %d", s.StuffingAccounts))
	}
	if s.AttackIPs < 1 {
		errs = append(errs, fmt.Errorf("risk: account under attack threshold must be at least 1, got %d", s.AttackIPs))
	}
	if s.VelocityWindow <= 0 {
		errs = append(errs, fmt.Errorf("risk: velocity window must be positive, got %v", s.VelocityWindow))
	}
	if s.VelocityMax < 1 || s.VelocityMax > MaxRecent {
		errs = append(errs, fmt.Errorf("risk: velocity maximum must be between 1 and %d, got %d", MaxRecent, s.VelocityMax))
	}
	if s.UnusualMinSignIns < 1 {
		errs = append(errs, fmt.Errorf("risk: unusual time minimum sign-ins must be at least 1, got %d", s.UnusualMinSignIns))
	}
	if !(s.UnusualShare >= 0 && s.UnusualShare < 1) {
		errs = append(errs, fmt.Errorf("risk: unusual time share must be in [0, 1), got %v", s.UnusualShare))
	}
	return errors.Join(errs...)
}

// Network is what network intelligence knows about the sign-in's address
// (the fields of netintel.Info, declared here so that scoring does not
// depend on how they were found).
type Network struct {
	IP                  netip.Addr
	Country, City       string // ISO 3166-1 alpha-2 country code; "" when unknown
	Latitude, Longitude float64
	HasLocation         bool // Latitude and Longitude are known
	ASN                 uint // 0 when unknown
	ASOrg               string
	Lists               []string // the IP lists the address is in
}

// InList reports whether the address is in the named list.
func (n Network) InList(name string) bool { return slices.Contains(n.Lists, name) }

// Failures are the failure counters read for this sign-in (Counters.Read).
type Failures struct {
	// AccountsFromIP is how many distinct accounts the address failed to
	// sign in to within the window.
	AccountsFromIP int
	// IPsForAccount is how many distinct addresses failed to sign in to
	// the account within the window.
	IPsForAccount int
}

// Input is everything a sign-in is scored from.
type Input struct {
	At time.Time
	// Device is the device fingerprint ("" when none: new_device is off).
	Device string
	// Network describes the address.
	Network Network
	// Profile is the user's behavioural model before this sign-in (nil or
	// empty for a user without history).
	Profile *Profile
	// Failures are the recent failure counters.
	Failures Failures
}

// Reason is one signal that fired and the points it contributed.
type Reason struct {
	Code   Code `json:"code"`
	Points int  `json:"points"`
}

// Assessment is the outcome of Score.
type Assessment struct {
	Score    int      // 0–100
	Reasons  []Reason // by decreasing points, then in the order of Codes
	Decision Decision
}

// Codes returns the reason codes of a, in order.
func (a Assessment) Codes() []string {
	codes := make([]string, len(a.Reasons))
	for i, r := range a.Reasons {
		codes[i] = string(r.Code)
	}
	return codes
}

// Engine scores sign-ins with fixed settings. It is safe for concurrent use.
type Engine struct {
	s Settings
}

// New returns an engine for s, or the problems with s.
func New(s Settings) (*Engine, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s.Weights = maps.Clone(s.Weights)
	return &Engine{s: s}, nil
}

// Settings returns the engine's settings (a copy).
func (e *Engine) Settings() Settings {
	s := e.s
	s.Weights = maps.Clone(s.Weights)
	return s
}

// Score assesses one sign-in.
func (e *Engine) Score(in Input) Assessment {
	var reasons []Reason
	for _, code := range Codes {
		w := e.s.Weights[code]
		if w > 0 && e.fires(code, in) {
			reasons = append(reasons, Reason{Code: code, Points: w})
		}
	}
	a := total(reasons)
	switch {
	case a.Score >= e.s.Block:
		a.Decision = Block
	case a.Score >= e.s.StepUp:
		a.Decision = StepUp
	}
	return a
}

// total sorts the reasons by decreasing points (stable: ties stay in the
// order of Codes) and sums them, capped at 100, with the decision allow.
func total(reasons []Reason) Assessment {
	slices.SortStableFunc(reasons, func(a, b Reason) int { return cmp.Compare(b.Points, a.Points) })
	sum := 0
	for _, r := range reasons {
		sum += r.Points
	}
	return Assessment{Score: min(sum, 100), Reasons: reasons, Decision: Allow}
}

// fires reports whether the signal code fires for in.
func (e *Engine) fires(code Code, in Input) bool {
	p := in.Profile
	if p == nil {
		p = &Profile{}
	}
	n := in.Network
	allowed := n.InList(ListAllowlist)
	switch code {
	case NewDevice:
		return in.Device != "" && len(p.Devices) > 0 && !knows(p.Devices, in.Device)
	case NewCountry:
		return n.Country != "" && len(p.Countries) > 0 && !knows(p.Countries, n.Country)
	case NewASN:
		return n.ASN != 0 && len(p.ASNs) > 0 && !knows(p.ASNs, asnKey(n.ASN))
	case ImpossibleTravel:
		return e.impossibleTravel(p, in)
	case TorExit:
		return !allowed && n.InList(ListTor)
	case DatacenterIP:
		return !allowed && n.InList(ListDatacenter)
	case BlocklistedIP:
		return !allowed && n.InList(ListBlocklist)
	case CredentialStuffing:
		return !allowed && in.Failures.AccountsFromIP >= e.s.StuffingAccounts
	case AccountUnderAttack:
		return in.Failures.IPsForAccount >= e.s.AttackIPs
	case UnusualTime:
		return p.SignIns >= e.s.UnusualMinSignIns && p.HourShare(in.At) < e.s.UnusualShare
	case Velocity:
		return p.RecentSince(in.At.Add(-e.s.VelocityWindow))+1 > e.s.VelocityMax
	}
	return false
}

// impossibleTravel: the distance from the last located sign-in, over the
// time elapsed since, is above MaxKMH (a sign-in at the same instant or
// before it counts as infinitely fast).
func (e *Engine) impossibleTravel(p *Profile, in Input) bool {
	return p.Located != nil && e.tooFast(p.Located, in.Network, in.At)
}

// tooFast reports whether going from last to n, located, at time at is
// faster than MaxKMH over MinTravelKM or more (at the same instant as
// last, or before it, counts as infinitely fast).
func (e *Engine) tooFast(last *Place, n Network, at time.Time) bool {
	if !n.HasLocation {
		return false
	}
	km := Haversine(last.Latitude, last.Longitude, n.Latitude, n.Longitude)
	if km < e.s.MinTravelKM {
		return false
	}
	hours := at.Sub(last.At).Hours()
	if hours <= 0 {
		return true
	}
	return km/hours > e.s.MaxKMH
}

// earthRadiusKM is the mean radius of the Earth.
const earthRadiusKM = 6371.0088

// Haversine returns the great-circle distance in kilometres between two
// points given in degrees.
func Haversine(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKM * math.Asin(math.Min(1, math.Sqrt(a)))
}
