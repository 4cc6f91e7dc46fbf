package risk

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	firefox = "Firefox\x00Linux"
	safari  = "Safari\x00iOS"
)

// refreshFrom is a refresh at t0 from n with the user agent ua, of a
// session signed in from Paris on Firefox and last seen in Paris ten
// minutes before.
func refreshFrom(n Network, ua string) RefreshInput {
	return RefreshInput{
		At: t0, Network: n, UserAgent: ua,
		Previous: paris, PreviousAt: t0.Add(-10 * time.Minute),
		SignInUserAgent: firefox, SignInCountry: "FR", SignInASN: 3215,
	}
}

func TestScoreRefreshSignals(t *testing.T) {
	e := engine(t, nil)
	w := DefaultWeights()
	free := Network{IP: paris.IP, Country: "FR", City: "Paris", Latitude: paris.Latitude, Longitude: paris.Longitude, HasLocation: true, ASN: 12322}
	brussels := Network{Country: "BE", ASN: 3215} // no coordinates
	tests := []struct {
		name    string
		in      RefreshInput
		want    []Code
		anomaly bool
	}{
		{"same network and user agent", refreshFrom(paris, firefox), nil, false},
		{"same place, another address", refreshFrom(versailles, firefox), nil, false},
		{"another user agent", refreshFrom(paris, safari), []Code{NewDevice}, false},
		{"no user agent", refreshFrom(paris, ""), []Code{NewDevice}, false},
		{"another network", refreshFrom(free, firefox), []Code{NewASN}, false},
		{"another network and user agent", refreshFrom(free, safari), []Code{NewDevice, NewASN}, true},
		{"another country", refreshFrom(brussels, firefox), []Code{NewCountry}, false},
		{"another country and user agent", refreshFrom(brussels, safari), []Code{NewDevice, NewCountry}, true},
		{"unknown network", refreshFrom(Network{}, safari), []Code{NewDevice}, false},
		{"Paris to Sydney in ten minutes", refreshFrom(sydney, firefox), []Code{ImpossibleTravel, NewCountry, NewASN}, true},
		{"Paris to Lyon in ten minutes", refreshFrom(lyon, firefox), []Code{ImpossibleTravel}, true},
		{"tor", refreshFrom(with(paris, ListTor), firefox), []Code{TorExit}, false},
		{"datacenter", refreshFrom(with(paris, ListDatacenter), firefox), []Code{DatacenterIP}, false},
		{"blocklist", refreshFrom(with(paris, ListBlocklist, "office"), firefox), []Code{BlocklistedIP}, false},
		{"other list is a label", refreshFrom(with(paris, "office"), firefox), nil, false},
		{"allowlist suppresses network signals", refreshFrom(with(paris, ListAllowlist, ListTor, ListDatacenter, ListBlocklist), firefox), nil, false},
		{
			"allowlist keeps the others", refreshFrom(with(sydney, ListAllowlist, ListTor), safari),
			[]Code{ImpossibleTravel, NewDevice, NewCountry, NewASN}, true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.ScoreRefresh(tt.in)
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
			if a.Anomaly != tt.anomaly {
				t.Errorf("anomaly = %v, want %v", a.Anomaly, tt.anomaly)
			}
		})
	}
}

// TestScoreRefreshComparesWithTheLastSeen: the comparison is with where
// the session was last seen, not where it signed in; the sign-in's country
// and network stand in only when the last address is not placed.
func TestScoreRefreshComparesWithTheLastSeen(t *testing.T) {
	e := engine(t, nil)
	// Signed in from Paris, last seen in Sydney a day ago: Sydney again is
	// nothing new, Paris is another country and network.
	in := refreshFrom(sydney, firefox)
	in.Previous, in.PreviousAt = sydney, t0.Add(-24*time.Hour)
	if a := e.ScoreRefresh(in); a.Score != 0 || a.Anomaly {
		t.Errorf("Sydney after Sydney = %+v, want 0", a)
	}
	in.Network = paris
	if a := e.ScoreRefresh(in); !cmp.Equal(a.Codes(), []string{"new_country", "new_asn"}) || a.Anomaly {
		t.Errorf("Paris a day after Sydney = %v (anomaly %v), want new_country and new_asn", a.Codes(), a.Anomaly)
	}

	// The last address unknown to the databases: the sign-in's country and
	// network, but no travel.
	in = refreshFrom(sydney, safari)
	in.Previous = Network{}
	a := e.ScoreRefresh(in)
	if !cmp.Equal(a.Codes(), []string{"new_device", "new_country", "new_asn"}) || !a.Anomaly {
		t.Errorf("Sydney after an unplaced address = %v (anomaly %v), want the sign-in's country and network compared", a.Codes(), a.Anomaly)
	}
	in.SignInCountry, in.SignInASN = "", 0
	if a := e.ScoreRefresh(in); !cmp.Equal(a.Codes(), []string{"new_device"}) || a.Anomaly {
		t.Errorf("nothing known of the session = %v (anomaly %v), want new_device only", a.Codes(), a.Anomaly)
	}
}

func TestScoreRefreshTravel(t *testing.T) {
	e := engine(t, nil)
	tests := []struct {
		name    string
		elapsed time.Duration
		now     Network
		want    bool
	}{
		{"Paris to Sydney in 16 hours", 16 * time.Hour, sydney, true},
		{"Paris to Sydney in 17 hours", 17 * time.Hour, sydney, false},
		{"Paris to Versailles in a minute (under the minimum distance)", time.Minute, versailles, false},
		{"Paris to Lyon in a minute", time.Minute, lyon, true},
		{"same instant, far", 0, sydney, true},
		{"no location now", time.Minute, Network{Country: "FR", ASN: 3215}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := refreshFrom(tt.now, firefox)
			in.PreviousAt = t0.Add(-tt.elapsed)
			a := e.ScoreRefresh(in)
			got := false
			for _, r := range a.Reasons {
				got = got || r.Code == ImpossibleTravel
			}
			if got != tt.want || a.Anomaly != tt.want {
				t.Errorf("impossible_travel = %v, anomaly %v; want %v (reasons %v)", got, a.Anomaly, tt.want, a.Reasons)
			}
		})
	}
	// The previous address without coordinates: no travel.
	in := refreshFrom(sydney, firefox)
	in.Previous = Network{Country: "FR", ASN: 3215}
	if a := e.ScoreRefresh(in); a.Anomaly {
		t.Errorf("from an address without coordinates: %v, want no anomaly", a.Reasons)
	}
}

// TestScoreRefreshSessionSharing: one session used from Paris and Sydney
// in turn, with one user agent, every few minutes: each refresh travels
// impossibly from the one before.
func TestScoreRefreshSessionSharing(t *testing.T) {
	e := engine(t, nil)
	prev, at := paris, t0
	for i, n := range []Network{sydney, paris, sydney, paris} {
		at = at.Add(3 * time.Minute)
		a := e.ScoreRefresh(RefreshInput{
			At: at, Network: n, UserAgent: firefox, Previous: prev, PreviousAt: at.Add(-3 * time.Minute),
			SignInUserAgent: firefox, SignInCountry: "FR", SignInASN: 3215,
		})
		if !a.Anomaly || a.Reasons[0].Code != ImpossibleTravel || a.Decision != Allow {
			t.Errorf("refresh %d from %s: %+v, want an anomaly (impossible_travel), allowed", i+1, n.City, a)
		}
		prev = n
	}
}

func TestScoreRefreshDecision(t *testing.T) {
	e := engine(t, nil)
	// Sydney, ten minutes after Paris, on another device: 85, below the
	// default block threshold: an anomaly, allowed.
	got := e.ScoreRefresh(refreshFrom(sydney, safari))
	want := RefreshAssessment{
		Assessment: Assessment{
			Score:    85,
			Reasons:  []Reason{{ImpossibleTravel, 50}, {NewDevice, 15}, {NewCountry, 15}, {NewASN, 5}},
			Decision: Allow,
		},
		Anomaly: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Sydney on another device (-want +got):\n%s", diff)
	}
	// Over tor as well: capped at 100, blocked.
	if a := e.ScoreRefresh(refreshFrom(with(sydney, ListTor), safari)); a.Score != 100 || a.Decision != Block || !a.Anomaly {
		t.Errorf("over tor = %+v, want 100, block, anomaly", a)
	}
	// A blocklisted address blocks without being an anomaly.
	if a := e.ScoreRefresh(refreshFrom(with(paris, ListBlocklist), firefox)); a.Score != 90 || a.Decision != Block || a.Anomaly {
		t.Errorf("blocklisted = %+v, want 90, block, no anomaly", a)
	}
	// The block threshold is inclusive; a refresh never steps up.
	low := engine(t, func(s *Settings) { s.StepUp, s.Block = 10, 85 })
	if a := low.ScoreRefresh(refreshFrom(sydney, safari)); a.Decision != Block {
		t.Errorf("85 with block 85 = %s, want block", a.Decision)
	}
	if a := low.ScoreRefresh(refreshFrom(sydney, firefox)); a.Score != 70 || a.Decision != Allow {
		t.Errorf("70 with step-up 10 and block 85 = %d, %s; want allow", a.Score, a.Decision)
	}
	// A signal with weight 0 is off, for the anomaly too.
	noTravel := engine(t, func(s *Settings) { s.Weights[ImpossibleTravel] = 0 })
	if a := noTravel.ScoreRefresh(refreshFrom(sydney, firefox)); a.Anomaly {
		t.Errorf("impossible_travel off: %v is an anomaly", a.Reasons)
	}
	noDevice := engine(t, func(s *Settings) { s.Weights[NewDevice] = 0 })
	brussels := Network{Country: "BE", ASN: 6848}
	if a := noDevice.ScoreRefresh(refreshFrom(brussels, safari)); a.Anomaly {
		t.Errorf("new_device off: %v is an anomaly", a.Reasons)
	}
}
