package risk

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// t0 is a Tuesday, 09:30 UTC.
var t0 = time.Date(2031, 3, 4, 9, 30, 0, 0, time.UTC)

var (
	paris = Network{
		IP: netip.MustParseAddr("192.0.2.10"), Country: "FR", City: "Paris",
		Latitude: 48.8566, Longitude: 2.3522, HasLocation: true, ASN: 3215, ASOrg: "Orange",
	}
	lyon = Network{
		IP: netip.MustParseAddr("192.0.2.20"), Country: "FR", City: "Lyon",
		Latitude: 45.764, Longitude: 4.8357, HasLocation: true, ASN: 3215, ASOrg: "Orange",
	}
	versailles = Network{
		IP: netip.MustParseAddr("192.0.2.30"), Country: "FR", City: "Versailles",
		Latitude: 48.8049, Longitude: 2.1204, HasLocation: true, ASN: 3215, ASOrg: "Orange",
	}
	sydney = Network{
		IP: netip.MustParseAddr("198.51.100.7"), Country: "AU", City: "Sydney",
		Latitude: -33.8688, Longitude: 151.2093, HasLocation: true, ASN: 1221, ASOrg: "Telstra",
	}
)

func engine(t testing.TB, change func(*Settings)) *Engine {
	t.Helper()
	s := DefaultSettings()
	if change != nil {
		change(&s)
	}
	e, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// habitual is a profile of 20 sign-ins from Paris on the laptop, on
// weekday mornings (09:00–10:00 UTC), the latest a day before t0.
func habitual() *Profile {
	p := &Profile{}
	for i := range 20 {
		p.Observe(SignIn{At: t0.Add(-time.Duration(20-i) * 24 * time.Hour).Add(-30 * time.Minute), Device: "laptop", Network: paris})
	}
	return p
}

func with(n Network, lists ...string) Network {
	n.Lists = lists
	return n
}

func TestSignals(t *testing.T) {
	e := engine(t, nil)
	w := DefaultWeights()
	tests := []struct {
		name string
		in   Input
		want []Code
	}{
		{"habit", Input{At: t0, Device: "laptop", Network: paris, Profile: habitual()}, nil},
		{"same country, same network, nearby", Input{At: t0, Device: "laptop", Network: lyon, Profile: habitual()}, nil},
		{"new device", Input{At: t0, Device: "phone", Network: paris, Profile: habitual()}, []Code{NewDevice}},
		{"no device fingerprint", Input{At: t0, Network: paris, Profile: habitual()}, nil},
		{"new country", Input{At: t0, Device: "laptop", Network: Network{Country: "BE", ASN: 3215}, Profile: habitual()}, []Code{NewCountry}},
		{"new asn", Input{At: t0, Device: "laptop", Network: Network{Country: "FR", ASN: 12322}, Profile: habitual()}, []Code{NewASN}},
		{"unknown country and asn", Input{At: t0, Device: "laptop", Network: Network{}, Profile: habitual()}, nil},
		{"tor", Input{At: t0, Device: "laptop", Network: with(paris, ListTor), Profile: habitual()}, []Code{TorExit}},
		{"datacenter", Input{At: t0, Device: "laptop", Network: with(paris, ListDatacenter), Profile: habitual()}, []Code{DatacenterIP}},
		{"blocklist", Input{At: t0, Device: "laptop", Network: with(paris, ListBlocklist, "office"), Profile: habitual()}, []Code{BlocklistedIP}},
		{"other list is a label", Input{At: t0, Device: "laptop", Network: with(paris, "office"), Profile: habitual()}, nil},
		{"credential stuffing", Input{At: t0, Device: "laptop", Network: paris, Profile: habitual(), Failures: Failures{AccountsFromIP: 10}}, []Code{CredentialStuffing}},
		{"below credential stuffing", Input{At: t0, Device: "laptop", Network: paris, Profile: habitual(), Failures: Failures{AccountsFromIP: 9}}, nil},
		{"account under attack", Input{At: t0, Device: "laptop", Network: paris, Profile: habitual(), Failures: Failures{IPsForAccount: 5}}, []Code{AccountUnderAttack}},
		{"below account under attack", Input{At: t0, Device: "laptop", Network: paris, Profile: habitual(), Failures: Failures{IPsForAccount: 4}}, nil},
		{"unusual time", Input{At: t0.Add(12 * time.Hour), Device: "laptop", Network: paris, Profile: habitual()}, []Code{UnusualTime}},
		{"neighbouring hour is usual", Input{At: t0.Add(time.Hour), Device: "laptop", Network: paris, Profile: habitual()}, nil},
		{
			"allowlist suppresses network signals",
			Input{At: t0, Device: "laptop", Network: with(paris, ListAllowlist, ListTor, ListDatacenter, ListBlocklist), Profile: habitual(), Failures: Failures{AccountsFromIP: 50}},
			nil,
		},
		{
			"allowlist keeps the others",
			Input{At: t0, Device: "phone", Network: with(paris, ListAllowlist), Profile: habitual(), Failures: Failures{IPsForAccount: 5}},
			[]Code{AccountUnderAttack, NewDevice},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.Score(tt.in)
			var got []Code
			sum := 0
			for _, r := range a.Reasons {
				got = append(got, r.Code)
				if r.Points != w[r.Code] {
					t.Errorf("%s contributed %d points, want its weight %d", r.Code, r.Points, w[r.Code])
				}
				sum += r.Points
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
			if a.Score != min(sum, 100) {
				t.Errorf("score %d, want the capped sum %d", a.Score, min(sum, 100))
			}
		})
	}
}

func TestFirstSignInIsNotPenalised(t *testing.T) {
	e := engine(t, nil)
	for _, p := range []*Profile{nil, {}} {
		a := e.Score(Input{At: t0.Add(3 * time.Hour), Device: "phone", Network: sydney, Profile: p})
		if a.Score != 0 || a.Decision != Allow || len(a.Reasons) != 0 {
			t.Errorf("first sign-in (profile %v) = %+v, want 0, allow, no reasons", p, a)
		}
	}
	// A first sign-in is still scored for its network.
	a := e.Score(Input{At: t0, Device: "phone", Network: with(sydney, ListTor)})
	if diff := cmp.Diff([]Reason{{TorExit, 50}}, a.Reasons); diff != "" || a.Decision != StepUp {
		t.Errorf("first sign-in over tor = %+v (-want +got reasons %s), want step_up", a, diff)
	}
	// History of one kind does not make another kind "new": a profile
	// from before geolocation was turned on has devices but no countries.
	p := &Profile{}
	p.Observe(SignIn{At: t0.Add(-time.Hour), Device: "laptop"})
	a = e.Score(Input{At: t0, Device: "laptop", Network: sydney, Profile: p})
	if len(a.Reasons) != 0 {
		t.Errorf("first located sign-in = %+v, want no reasons", a.Reasons)
	}
}

func TestImpossibleTravel(t *testing.T) {
	e := engine(t, nil)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// Two sign-ins from Paris, then Sydney ten minutes later.
	p := &Profile{}
	p.Observe(SignIn{At: at(-20 * time.Minute), Device: "laptop", Network: paris})
	if a := e.Score(Input{At: at(-10 * time.Minute), Device: "laptop", Network: paris, Profile: p}); a.Score != 0 || a.Decision != Allow {
		t.Fatalf("second sign-in from Paris = %+v, want 0 and allow", a)
	}
	p.Observe(SignIn{At: at(-10 * time.Minute), Device: "laptop", Network: paris})
	a := e.Score(Input{At: at(0), Device: "laptop", Network: sydney, Profile: p})
	want := Assessment{
		Score:    70,
		Reasons:  []Reason{{ImpossibleTravel, 50}, {NewCountry, 15}, {NewASN, 5}},
		Decision: StepUp,
	}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Fatalf("Paris then Sydney 10 minutes later (-want +got):\n%s", diff)
	}
	// From a new device as well, it still steps up.
	if a := e.Score(Input{At: at(0), Device: "phone", Network: sydney, Profile: p}); a.Score != 85 || a.Decision != StepUp {
		t.Errorf("Paris then Sydney on a new device = %d, %s; want 85, step_up", a.Score, a.Decision)
	}

	tests := []struct {
		name    string
		last    Network
		elapsed time.Duration
		now     Network
		want    bool
	}{
		{"Paris to Sydney in a day", paris, 24 * time.Hour, sydney, false},
		{"Paris to Sydney in 16 hours", paris, 16 * time.Hour, sydney, true}, // 16,960 km: 1,060 km/h
		{"Paris to Sydney in 17 hours", paris, 17 * time.Hour, sydney, false},
		{"Paris to Versailles in a minute (under the minimum distance)", paris, time.Minute, versailles, false},
		{"Paris to Lyon in a minute", paris, time.Minute, lyon, true},
		{"same instant, far", paris, 0, sydney, true},
		{"no location now", paris, time.Minute, Network{Country: "FR", ASN: 3215}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Profile{}
			p.Observe(SignIn{At: t0, Network: tt.last})
			a := e.Score(Input{At: t0.Add(tt.elapsed), Network: tt.now, Profile: p})
			got := false
			for _, r := range a.Reasons {
				got = got || r.Code == ImpossibleTravel
			}
			if got != tt.want {
				t.Errorf("impossible_travel = %v, want %v (reasons %v)", got, tt.want, a.Reasons)
			}
		})
	}
	// MaxKMH is a setting.
	slow := engine(t, func(s *Settings) { s.MaxKMH = 300 })
	p = &Profile{}
	p.Observe(SignIn{At: t0, Network: paris})
	if a := slow.Score(Input{At: t0.Add(24 * time.Hour), Network: sydney, Profile: p}); a.Reasons[0].Code != ImpossibleTravel {
		t.Errorf("Paris to Sydney in a day at 300 km/h max = %v, want impossible_travel", a.Reasons)
	}
}

func TestHaversine(t *testing.T) {
	if d := Haversine(paris.Latitude, paris.Longitude, sydney.Latitude, sydney.Longitude); math.Abs(d-16960) > 20 {
		t.Errorf("Paris–Sydney = %.0f km, want about 16,960", d)
	}
	if d := Haversine(10, 20, 10, 20); d != 0 {
		t.Errorf("same point = %v, want 0", d)
	}
	if d := Haversine(0, 0, 0, 180); math.Abs(d-math.Pi*earthRadiusKM) > 1e-6 {
		t.Errorf("antipodes = %v, want half the circumference", d)
	}
}

func TestVelocity(t *testing.T) {
	e := engine(t, nil)
	p := &Profile{}
	for i := range 4 {
		p.Observe(SignIn{At: t0.Add(time.Duration(i) * time.Minute), Device: "laptop", Network: paris})
	}
	// The fifth in ten minutes is allowed, the sixth is not.
	if a := e.Score(Input{At: t0.Add(5 * time.Minute), Device: "laptop", Network: paris, Profile: p}); len(a.Reasons) != 0 {
		t.Fatalf("5th sign-in in 10 minutes: reasons %v, want none", a.Reasons)
	}
	p.Observe(SignIn{At: t0.Add(5 * time.Minute), Device: "laptop", Network: paris})
	a := e.Score(Input{At: t0.Add(6 * time.Minute), Device: "laptop", Network: paris, Profile: p})
	if diff := cmp.Diff([]Reason{{Velocity, 25}}, a.Reasons); diff != "" {
		t.Fatalf("6th sign-in in 10 minutes (-want +got):\n%s", diff)
	}
	// Ten minutes after the first, it has left the window.
	if a := e.Score(Input{At: t0.Add(10*time.Minute + time.Second), Device: "laptop", Network: paris, Profile: p}); len(a.Reasons) != 0 {
		t.Errorf("after the window: reasons %v, want none", a.Reasons)
	}
}

func TestScoreAndDecision(t *testing.T) {
	tests := []struct {
		name    string
		lists   []string
		failed  Failures
		weights map[Code]int
		score   int
		reasons []Reason
		want    Decision
	}{
		{"nothing", nil, Failures{}, nil, 0, nil, Allow},
		{"datacenter alone", []string{ListDatacenter}, Failures{}, nil, 20, []Reason{{DatacenterIP, 20}}, Allow},
		{"tor steps up", []string{ListTor}, Failures{}, nil, 50, []Reason{{TorExit, 50}}, StepUp},
		{"blocklist blocks", []string{ListBlocklist}, Failures{}, nil, 90, []Reason{{BlocklistedIP, 90}}, Block},
		{
			"tor and stuffing block", []string{ListTor}, Failures{AccountsFromIP: 30}, nil,
			90, []Reason{{TorExit, 50}, {CredentialStuffing, 40}}, Block,
		},
		{
			"capped at 100, reasons keep their points", []string{ListTor, ListBlocklist, ListDatacenter}, Failures{}, nil,
			100, []Reason{{BlocklistedIP, 90}, {TorExit, 50}, {DatacenterIP, 20}}, Block,
		},
		{"weight 0 disables", []string{ListBlocklist}, Failures{}, map[Code]int{BlocklistedIP: 0}, 0, nil, Allow},
		{"weight changed", []string{ListDatacenter}, Failures{}, map[Code]int{DatacenterIP: 60}, 60, []Reason{{DatacenterIP, 60}}, StepUp},
		{"ties in the order of Codes", []string{ListDatacenter}, Failures{}, map[Code]int{DatacenterIP: 40, TorExit: 40}, 40, []Reason{{DatacenterIP, 40}}, Allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engine(t, func(s *Settings) {
				for c, w := range tt.weights {
					s.Weights[c] = w
				}
			})
			a := e.Score(Input{At: t0, Network: with(paris, tt.lists...), Failures: tt.failed})
			want := Assessment{Score: tt.score, Reasons: tt.reasons, Decision: tt.want}
			if diff := cmp.Diff(want, a); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Thresholds are settings, and inclusive.
	e := engine(t, func(s *Settings) { s.StepUp, s.Block = 20, 50 })
	if a := e.Score(Input{At: t0, Network: with(paris, ListDatacenter)}); a.Decision != StepUp {
		t.Errorf("20 with step-up 20 = %s, want step_up", a.Decision)
	}
	if a := e.Score(Input{At: t0, Network: with(paris, ListTor)}); a.Decision != Block {
		t.Errorf("50 with block 50 = %s, want block", a.Decision)
	}
	a := e.Score(Input{At: t0, Network: with(paris, ListTor, ListDatacenter)})
	if diff := cmp.Diff([]string{"tor_exit", "datacenter_ip"}, a.Codes()); diff != "" {
		t.Errorf("Codes (-want +got):\n%s", diff)
	}
}

func TestSettingsValidate(t *testing.T) {
	if err := DefaultSettings().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	s := DefaultSettings()
	s.Weights["nope"] = 10
	s.Weights[TorExit] = 101
	s.StepUp, s.Block = 95, 90
	s.MaxKMH = 0
	s.VelocityMax = MaxRecent + 1
	s.UnusualShare = 1
	err := s.Validate()
	if err == nil {
		t.Fatal("invalid settings accepted")
	}
	for _, part := range []string{`unknown signal "nope"`, "weight of tor_exit", "thresholds", "km/h", "velocity maximum", "unusual time share"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
	if _, err := New(s); err == nil {
		t.Error("New accepted invalid settings")
	}
	// The engine keeps its own copy of the weights.
	s = DefaultSettings()
	e, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Weights[TorExit] = 0
	if a := e.Score(Input{At: t0, Network: with(paris, ListTor)}); a.Score != 50 {
		t.Errorf("changing the caller's map changed the engine: score %d", a.Score)
	}
}
