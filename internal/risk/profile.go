package risk

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Profile bounds: a profile never holds more than these, whatever the
// user does, so that it stays a small JSON document (a few kilobytes).
const (
	MaxCountries = 32 // countries remembered
	MaxASNs      = 64 // networks remembered
	MaxDevices   = 32 // device fingerprints remembered
	MaxRecent    = 16 // latest sign-in times kept for velocity
	// EntryMaxAge is how long a country, network or device not seen again
	// is remembered.
	EntryMaxAge = 365 * 24 * time.Hour
	// HourHalfLife is the half-life of the hour-of-week histogram: a
	// sign-in weighs half as much HourHalfLife later, so habits that
	// change are learnt again.
	HourHalfLife = 90 * 24 * time.Hour
)

// HoursPerWeek is the size of the hour-of-week histogram. Hours are in
// UTC: a user's habits are as regular in UTC as in their own zone, and a
// change of daylight saving time moves them by one hour, which the
// neighbouring hours that HourShare counts absorb.
const HoursPerWeek = 7 * 24

// Seen counts the successful sign-ins with one country, network or
// device, and when the latest was.
type Seen struct {
	Count int       `json:"n"`
	Last  time.Time `json:"last"`
}

// Place is where and when a successful sign-in with a known location was.
type Place struct {
	At        time.Time `json:"at"`
	Country   string    `json:"country,omitempty"`
	City      string    `json:"city,omitempty"`
	Latitude  float64   `json:"lat"`
	Longitude float64   `json:"lon"`
}

// Profile is a user's behavioural model: explainable statistics of their
// past successful sign-ins, updated online by Observe and stored as JSON.
// The zero value is the profile of a user without history.
type Profile struct {
	// SignIns counts every observed sign-in.
	SignIns int `json:"sign_ins"`
	// Countries (ISO codes), ASNs (decimal) and Devices (fingerprints)
	// seen, each bounded (MaxCountries …) and forgetting entries not seen
	// for EntryMaxAge; when full, the least recently seen entry goes.
	Countries map[string]Seen `json:"countries,omitempty"`
	ASNs      map[string]Seen `json:"asns,omitempty"`
	Devices   map[string]Seen `json:"devices,omitempty"`
	// Hours is the hour-of-week histogram (Sunday 00:00 UTC is 0), decayed
	// with HourHalfLife to HoursAt.
	Hours   [HoursPerWeek]float64 `json:"hours"`
	HoursAt time.Time             `json:"hours_at,omitzero"`
	// LastAt is the latest sign-in's time; Located the latest sign-in
	// with a known location (nil before the first).
	LastAt  time.Time `json:"last_at,omitzero"`
	Located *Place    `json:"located,omitempty"`
	// Recent holds the latest MaxRecent sign-in times, oldest first.
	Recent []time.Time `json:"recent,omitempty"`
}

// SignIn is a successful sign-in, as Observe learns from it.
type SignIn struct {
	At      time.Time
	Device  string
	Network Network
}

// Observe updates the profile with a successful sign-in. Failed sign-ins
// are never observed: they would teach the model the attacker's habits.
// A sign-in older than the latest one observed still counts, but does not
// move the latest time or location back.
func (p *Profile) Observe(s SignIn) {
	at := s.At.UTC()
	p.SignIns++
	p.Countries = remember(p.Countries, s.Network.Country, at, MaxCountries)
	asn := ""
	if s.Network.ASN != 0 {
		asn = asnKey(s.Network.ASN)
	}
	p.ASNs = remember(p.ASNs, asn, at, MaxASNs)
	p.Devices = remember(p.Devices, s.Device, at, MaxDevices)

	if at.After(p.HoursAt) {
		p.decayHours(at)
	}
	p.Hours[hourOfWeek(at)]++

	if !at.Before(p.LastAt) {
		p.LastAt = at
	}
	if n := s.Network; n.HasLocation && (p.Located == nil || !at.Before(p.Located.At)) {
		p.Located = &Place{At: at, Country: n.Country, City: n.City, Latitude: n.Latitude, Longitude: n.Longitude}
	}

	i, _ := slices.BinarySearchFunc(p.Recent, at, time.Time.Compare)
	p.Recent = slices.Insert(p.Recent, i, at)
	if over := len(p.Recent) - MaxRecent; over > 0 {
		p.Recent = slices.Delete(p.Recent, 0, over)
	}
}

// decayHours brings the histogram forward to at.
func (p *Profile) decayHours(at time.Time) {
	if !p.HoursAt.IsZero() {
		f := math.Exp2(-float64(at.Sub(p.HoursAt)) / float64(HourHalfLife))
		for i := range p.Hours {
			p.Hours[i] *= f
		}
	}
	p.HoursAt = at
}

// HourShare returns the share of the user's (decayed) sign-ins that fell
// in at's hour of the week or the hour either side; 1 without history.
func (p *Profile) HourShare(at time.Time) float64 {
	total := 0.0
	for _, v := range p.Hours {
		total += v
	}
	if total <= 0 {
		return 1
	}
	h := hourOfWeek(at.UTC())
	near := p.Hours[(h+HoursPerWeek-1)%HoursPerWeek] + p.Hours[h] + p.Hours[(h+1)%HoursPerWeek]
	return near / total
}

// RecentSince returns how many of the remembered sign-ins were at or
// after t.
func (p *Profile) RecentSince(t time.Time) int {
	i, _ := slices.BinarySearchFunc(p.Recent, t, time.Time.Compare)
	return len(p.Recent) - i
}

// Encode returns the profile as JSON, the form the store keeps.
func (p *Profile) Encode() ([]byte, error) { return json.Marshal(p) }

// DecodeProfile reads a profile written by Encode. It applies the bounds
// again, so a profile written with larger bounds (an older release, a
// hand-edited row) is brought within them.
func DecodeProfile(data []byte) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("risk: decode profile: %w", err)
	}
	if p.SignIns < 0 {
		return nil, fmt.Errorf("risk: decode profile: negative sign-in count %d", p.SignIns)
	}
	for _, v := range p.Hours {
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("risk: decode profile: invalid hour weight %v", v)
		}
	}
	p.Countries = trim(p.Countries, MaxCountries)
	p.ASNs = trim(p.ASNs, MaxASNs)
	p.Devices = trim(p.Devices, MaxDevices)
	slices.SortFunc(p.Recent, time.Time.Compare)
	if over := len(p.Recent) - MaxRecent; over > 0 {
		p.Recent = slices.Delete(p.Recent, 0, over)
	}
	return &p, nil
}

// remember counts key (unless "") as seen at at, forgets the entries not
// seen for EntryMaxAge, and evicts the least recently seen entries beyond
// limit.
func remember(m map[string]Seen, key string, at time.Time, limit int) map[string]Seen {
	for k, s := range m {
		if at.Sub(s.Last) > EntryMaxAge {
			delete(m, k)
		}
	}
	if key == "" {
		return m
	}
	if m == nil {
		m = map[string]Seen{}
	}
	s := m[key]
	s.Count++
	if at.After(s.Last) {
		s.Last = at
	}
	m[key] = s
	return trim(m, limit)
}

// trim evicts the least recently seen entries (then the least seen, then
// by key, so the choice is deterministic) until m holds at most limit.
func trim(m map[string]Seen, limit int) map[string]Seen {
	if len(m) <= limit {
		return m
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(m[a].Last.Compare(m[b].Last), cmp.Compare(m[a].Count, m[b].Count), cmp.Compare(a, b))
	})
	for _, k := range keys[:len(m)-limit] {
		delete(m, k)
	}
	return m
}

func knows(m map[string]Seen, key string) bool {
	_, ok := m[key]
	return ok
}

func asnKey(asn uint) string { return strconv.FormatUint(uint64(asn), 10) }

func hourOfWeek(t time.Time) int { return int(t.Weekday())*24 + t.Hour() }
