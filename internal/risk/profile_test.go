package risk

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestObserve(t *testing.T) {
	p := &Profile{}
	p.Observe(SignIn{At: t0, Device: "laptop", Network: paris})
	p.Observe(SignIn{At: t0.Add(time.Hour), Device: "phone", Network: Network{Country: "FR", ASN: 12322}})
	want := &Profile{
		SignIns:   2,
		Countries: map[string]Seen{"FR": {2, t0.Add(time.Hour)}},
		ASNs:      map[string]Seen{"3215": {1, t0}, "12322": {1, t0.Add(time.Hour)}},
		Devices:   map[string]Seen{"laptop": {1, t0}, "phone": {1, t0.Add(time.Hour)}},
		HoursAt:   t0.Add(time.Hour),
		LastAt:    t0.Add(time.Hour),
		// The second sign-in had no location: the last located one stays.
		Located: &Place{At: t0, Country: "FR", City: "Paris", Latitude: paris.Latitude, Longitude: paris.Longitude},
		Recent:  []time.Time{t0, t0.Add(time.Hour)},
	}
	h := hourOfWeek(t0) // Tuesday 09:00
	if h != 2*24+9 {
		t.Fatalf("hourOfWeek(%v) = %d, want %d", t0, h, 2*24+9)
	}
	decay := math.Exp2(-float64(time.Hour) / float64(HourHalfLife))
	want.Hours[h] = decay
	want.Hours[h+1] = 1
	if diff := cmp.Diff(want, p); diff != "" {
		t.Fatalf("profile (-want +got):\n%s", diff)
	}

	// An older sign-in (observed late) counts, but moves nothing back.
	p.Observe(SignIn{At: t0.Add(-time.Hour), Device: "laptop", Network: sydney})
	if !p.LastAt.Equal(t0.Add(time.Hour)) || p.Located.City != "Paris" || !p.HoursAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("late sign-in moved the latest: last %v, located %+v, hours at %v", p.LastAt, p.Located, p.HoursAt)
	}
	if diff := cmp.Diff([]time.Time{t0.Add(-time.Hour), t0, t0.Add(time.Hour)}, p.Recent); diff != "" {
		t.Errorf("recent (-want +got):\n%s", diff)
	}
	if p.Countries["AU"].Count != 1 || p.Devices["laptop"].Count != 2 || !p.Devices["laptop"].Last.Equal(t0) {
		t.Errorf("late sign-in not counted: countries %v, devices %v", p.Countries, p.Devices)
	}
}

func TestHourDecay(t *testing.T) {
	p := &Profile{}
	p.Observe(SignIn{At: t0})
	p.Observe(SignIn{At: t0.Add(HourHalfLife)})
	// 90 days is not a whole number of weeks, so the two hours differ.
	if hourOfWeek(t0) == hourOfWeek(t0.Add(HourHalfLife)) {
		t.Fatal("test assumes different hours of the week")
	}
	if got := p.Hours[hourOfWeek(t0)]; math.Abs(got-0.5) > 1e-9 {
		t.Errorf("weight of a sign-in one half-life old = %v, want 0.5", got)
	}
	if got := p.HourShare(t0); math.Abs(got-0.5/1.5) > 1e-9 {
		t.Errorf("HourShare = %v, want 1/3", got)
	}
	if got := (&Profile{}).HourShare(t0); got != 1 {
		t.Errorf("HourShare without history = %v, want 1", got)
	}
	// The week wraps: Saturday 23:00 is next to Sunday 00:00.
	p = &Profile{}
	sat := time.Date(2031, 3, 8, 23, 10, 0, 0, time.UTC)
	p.Observe(SignIn{At: sat})
	if got := p.HourShare(sat.Add(time.Hour)); got != 1 {
		t.Errorf("HourShare across the week's end = %v, want 1", got)
	}
}

func TestProfileBounds(t *testing.T) {
	p := &Profile{}
	at := t0
	for i := range 1000 {
		at = at.Add(time.Minute)
		p.Observe(SignIn{
			At: at, Device: "device-" + strconv.Itoa(i),
			Network: Network{Country: fmt.Sprintf("C%03d", i), ASN: uint(i + 1), HasLocation: true, Latitude: 1, Longitude: 1},
		})
	}
	if len(p.Countries) != MaxCountries || len(p.ASNs) != MaxASNs || len(p.Devices) != MaxDevices || len(p.Recent) != MaxRecent {
		t.Fatalf("sizes: %d countries, %d ASNs, %d devices, %d recent; want %d, %d, %d, %d",
			len(p.Countries), len(p.ASNs), len(p.Devices), len(p.Recent), MaxCountries, MaxASNs, MaxDevices, MaxRecent)
	}
	// The most recent are kept.
	if !knows(p.Devices, "device-999") || knows(p.Devices, "device-967") || !knows(p.Devices, "device-968") {
		t.Errorf("devices kept: %v", p.Devices)
	}
	if !p.Recent[MaxRecent-1].Equal(at) {
		t.Errorf("latest recent = %v, want %v", p.Recent[MaxRecent-1], at)
	}
	data, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 16<<10 {
		t.Errorf("a full profile is %d bytes, want at most 16 KiB", len(data))
	}

	// A device seen often is kept over one seen once, when equally recent;
	// an entry not seen for EntryMaxAge is forgotten.
	p = &Profile{}
	p.Observe(SignIn{At: t0, Device: "old"})
	p.Observe(SignIn{At: t0.Add(EntryMaxAge), Device: "new"})
	if !knows(p.Devices, "old") {
		t.Fatal("device forgotten at exactly EntryMaxAge")
	}
	p.Observe(SignIn{At: t0.Add(EntryMaxAge + time.Second), Device: "new"})
	if knows(p.Devices, "old") || p.Devices["new"].Count != 2 {
		t.Errorf("devices after EntryMaxAge: %v, want only new (2)", p.Devices)
	}
}

func TestProfileJSON(t *testing.T) {
	p := habitual()
	p.Observe(SignIn{At: t0, Device: "phone", Network: sydney})
	data, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProfile(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	// The decoded profile scores as the original.
	e := engine(t, nil)
	in := Input{At: t0.Add(time.Minute), Device: "tablet", Network: paris}
	in.Profile = p
	want := e.Score(in)
	in.Profile = got
	if diff := cmp.Diff(want, e.Score(in)); diff != "" || len(want.Reasons) == 0 {
		t.Errorf("decoded profile scores differently (-want +got):\n%s", diff)
	}

	empty, err := DecodeProfile([]byte(`{}`))
	if err != nil || empty.SignIns != 0 || empty.Located != nil {
		t.Errorf("DecodeProfile({}) = %+v, %v", empty, err)
	}

	// Oversized input is brought within the bounds.
	big := &Profile{}
	big.Devices = map[string]Seen{}
	for i := range 100 {
		big.Devices[strconv.Itoa(i)] = Seen{Count: 1, Last: t0.Add(time.Duration(i) * time.Second)}
		big.Recent = append(big.Recent, t0.Add(-time.Duration(i)*time.Second))
	}
	data, _ = big.Encode()
	got, err = DecodeProfile(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Devices) != MaxDevices || !knows(got.Devices, "99") || len(got.Recent) != MaxRecent || !got.Recent[MaxRecent-1].Equal(t0) {
		t.Errorf("oversized profile decoded to %d devices, recent %v", len(got.Devices), got.Recent)
	}

	for _, bad := range []string{`[]`, `{"sign_ins":-1}`, `{"hours":[-1]}`, `{"sign_ins":"x"}`, `not json`} {
		if _, err := DecodeProfile([]byte(bad)); err == nil {
			t.Errorf("DecodeProfile(%s) accepted", bad)
		}
	}
}

// FuzzDecodeProfile: whatever the stored document, decoding never panics
// and what it accepts is within the bounds, observes and encodes again.
func FuzzDecodeProfile(f *testing.F) {
	data, _ := habitual().Encode()
	f.Add(data)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"recent":["2031-01-01T00:00:00Z","2030-01-01T00:00:00Z"],"devices":{"a":{"n":1}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeProfile(data)
		if err != nil {
			return
		}
		if len(p.Countries) > MaxCountries || len(p.ASNs) > MaxASNs || len(p.Devices) > MaxDevices || len(p.Recent) > MaxRecent {
			t.Fatalf("decoded profile beyond the bounds: %d %d %d %d", len(p.Countries), len(p.ASNs), len(p.Devices), len(p.Recent))
		}
		engine(t, nil).Score(Input{At: t0, Device: "x", Network: paris, Profile: p})
		p.Observe(SignIn{At: t0, Device: "x", Network: paris})
		if _, err := p.Encode(); err != nil {
			t.Fatalf("Encode after Observe: %v", err)
		}
	})
}
