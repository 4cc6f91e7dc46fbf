// Package netintel tells what Gatehouse knows about a client's network
// address: where it is (country, city, coordinates, from a MaxMind-format
// City database), which network it belongs to (autonomous system, from an
// ASN database) and which of the operator's IP lists hold it (tor,
// datacenter, blocklist, allowlist and labels of their own).
//
// Every source is optional and read into memory, so Lookup does no I/O.
// Run watches the files and reloads one when it changes; a bad new file
// is logged and the data in force stays.
package netintel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"
)

// DefaultInterval is how often Run looks at the files when Config gives
// no interval.
const DefaultInterval = 5 * time.Second

// Info is what is known about one address. Fields whose source is off or
// has no record of the address are zero.
type Info struct {
	IP          netip.Addr
	Country     string // ISO 3166-1 alpha-2 code, e.g. "FR"
	City        string // English name
	Latitude    float64
	Longitude   float64
	HasLocation bool // Latitude and Longitude are known
	ASN         uint
	ASOrg       string
	Lists       []string // names of the IP lists that hold IP, sorted; nil if none
}

// Config is what New needs. Every source is optional.
type Config struct {
	CityDB string            // GeoLite2/GeoIP2 City database (GATEHOUSE_GEOIP_CITY_DB)
	ASNDB  string            // GeoLite2 ASN database (GATEHOUSE_GEOIP_ASN_DB)
	Lists  map[string]string // list name → file (GATEHOUSE_IP_LISTS)

	Interval time.Duration    // how often Run looks at the files; DefaultInterval when not positive
	Log      *slog.Logger     // may be nil
	Now      func() time.Time // time.Now when nil
}

// Intel answers lookups from the sources in force. Safe for concurrent
// use.
type Intel struct {
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration
	current  atomic.Pointer[snapshot]

	mu      sync.Mutex // one reload at a time; guards the fields below
	sources []*source
	closed  bool
}

// snapshot is the data in force; a reload builds a new one and swaps it
// in whole, so a lookup sees either the old data or the new.
type snapshot struct {
	city, asn *geoip2.Reader
	lists     []*ipList // sorted by name
}

// kind is what a source file holds.
type kind int

const (
	kindCity kind = iota
	kindASN
	kindList
)

// source is one file and what was last loaded from it.
type source struct {
	kind kind
	name string // list name, or "city" / "asn"
	path string

	seen     os.FileInfo // the file as last read (or refused), to notice a change
	loadedAt time.Time
	readErr  string // the last error reading the file, logged once

	city, asn *geoip2.Reader
	list      *ipList
}

// New loads every configured source now: a missing or bad file is an
// error, naming the file (and the line, for lists).
func New(c Config) (*Intel, error) {
	in := &Intel{log: c.Log, now: c.Now, interval: c.Interval}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.now == nil {
		in.now = time.Now
	}
	if in.interval <= 0 {
		in.interval = DefaultInterval
	}
	if c.CityDB != "" {
		in.sources = append(in.sources, &source{kind: kindCity, name: "city", path: c.CityDB})
	}
	if c.ASNDB != "" {
		in.sources = append(in.sources, &source{kind: kindASN, name: "asn", path: c.ASNDB})
	}
	names := make([]string, 0, len(c.Lists))
	for name := range c.Lists {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if c.Lists[name] == "" {
			return nil, fmt.Errorf("IP list %s: no file", name)
		}
		in.sources = append(in.sources, &source{kind: kindList, name: name, path: c.Lists[name]})
	}
	var errs []error
	for _, s := range in.sources {
		if err := in.load(s); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	in.publish()
	return in, nil
}

// Lookup returns what the sources in force say about ip, from memory.
// IPv4-mapped IPv6 addresses are looked up as IPv4; Info.IP is ip as
// given.
func (in *Intel) Lookup(ip netip.Addr) Info {
	info := Info{IP: ip}
	if !ip.IsValid() {
		return info
	}
	s := in.current.Load()
	addr := ip.Unmap().WithZone("")
	if s.city != nil {
		if c, err := s.city.City(addr); err == nil {
			info.Country = c.Country.ISOCode
			info.City = c.City.Names.English
			if c.Location.Latitude != nil && c.Location.Longitude != nil {
				info.Latitude, info.Longitude = *c.Location.Latitude, *c.Location.Longitude
				info.HasLocation = true
			}
		}
	}
	if s.asn != nil {
		if a, err := s.asn.ASN(addr); err == nil {
			info.ASN = a.AutonomousSystemNumber
			info.ASOrg = a.AutonomousSystemOrganization
		}
	}
	if len(s.lists) > 0 {
		k := key(addr)
		for _, l := range s.lists {
			if l.contains(k) {
				info.Lists = append(info.Lists, l.name)
			}
		}
	}
	return info
}

// LocationEnabled reports whether a City database is in force: without
// one, Info has no country, city or coordinates, and the signals built on
// them (new country, impossible travel) are off.
func (in *Intel) LocationEnabled() bool { return in.current.Load().city != nil }

// ASNEnabled reports whether an ASN database is in force: without one,
// Info has no ASN and the signals built on it (new network) are off.
func (in *Intel) ASNEnabled() bool { return in.current.Load().asn != nil }

// ListNames returns the names of the configured IP lists, sorted.
func (in *Intel) ListNames() []string {
	s := in.current.Load()
	names := make([]string, len(s.lists))
	for i, l := range s.lists {
		names[i] = l.name
	}
	return names
}

// Source describes one file in force, for status pages and logs.
type Source struct {
	Name     string // "city", "asn" or the list name
	Path     string
	LoadedAt time.Time // when the data in force was read
	Built    time.Time // databases: the build time in the file's metadata
	Entries  int       // lists: disjoint ranges after merging
}

// Sources describes every configured file, databases first, then lists
// by name.
func (in *Intel) Sources() []Source {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]Source, 0, len(in.sources))
	for _, s := range in.sources {
		d := Source{Name: s.name, Path: s.path, LoadedAt: s.loadedAt}
		switch {
		case s.city != nil:
			d.Built = time.Unix(int64(s.city.Metadata().BuildEpoch), 0).UTC()
		case s.asn != nil:
			d.Built = time.Unix(int64(s.asn.Metadata().BuildEpoch), 0).UTC()
		case s.list != nil:
			d.Entries = s.list.size()
		}
		out = append(out, d)
	}
	return out
}

// Reload reads every file again and puts the good ones in force, whether
// they changed or not; each bad file is logged, keeps its data in force,
// and is part of the returned error.
func (in *Intel) Reload() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return errors.New("network intelligence is closed")
	}
	var errs []error
	for _, s := range in.sources {
		if err := in.load(s); err != nil {
			in.log.Error("network intelligence source not reloaded; the data in force stays",
				"source", s.name, "path", s.path, "error", err.Error())
			errs = append(errs, err)
		}
	}
	in.publish()
	return errors.Join(errs...)
}

// poll reloads the files that changed (size, modification time, or
// another file renamed into place). A file that cannot be read or is bad
// is logged once, until it changes again.
func (in *Intel) poll() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return
	}
	reloaded := false
	for _, s := range in.sources {
		fi, err := os.Stat(s.path)
		if err != nil {
			if err.Error() != s.readErr {
				s.readErr = err.Error()
				in.log.Error("network intelligence file cannot be read; the data in force stays",
					"source", s.name, "path", s.path, "error", err.Error())
			}
			continue
		}
		s.readErr = ""
		if !changed(s.seen, fi) {
			continue
		}
		if err := in.load(s); err != nil {
			in.log.Error("network intelligence file is invalid; the data in force stays",
				"source", s.name, "path", s.path, "error", err.Error())
			continue
		}
		reloaded = true
	}
	if reloaded {
		in.publish()
	}
}

// load reads s's file and, if it is good, makes it s's data (not yet in
// force: publish does that). A bad file is remembered as seen, so that
// poll reads it again only once it changes. The caller holds in.mu, or is
// New.
func (in *Intel) load(s *source) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.seen, s.readErr = fi, ""
	switch s.kind {
	case kindCity, kindASN:
		r, err := openDB(s.kind, data)
		if err != nil {
			return fmt.Errorf("GeoIP %s database %s: %w", s.name, s.path, err)
		}
		if s.kind == kindCity {
			s.city = r
		} else {
			s.asn = r
		}
		in.log.Info("GeoIP database loaded", "source", s.name, "path", s.path,
			"type", r.Metadata().DatabaseType, "built", time.Unix(int64(r.Metadata().BuildEpoch), 0).UTC().Format(time.RFC3339))
	case kindList:
		l, err := parseList(s.name, s.path, data)
		if err != nil {
			return err
		}
		s.list = l
		in.log.Info("IP list loaded", "list", s.name, "path", s.path, "ranges", l.size())
	}
	s.loadedAt = in.now()
	return nil
}

// changed reports whether the file now is another than the one seen
// before: another size or modification time, or another file renamed into
// place.
func changed(before, now os.FileInfo) bool {
	return before == nil || before.Size() != now.Size() || !before.ModTime().Equal(now.ModTime()) ||
		!os.SameFile(before, now)
}

// probe is an address every City or ASN database can be asked about,
// found or not: asking tells whether the database is of the right kind.
var probe = netip.MustParseAddr("192.0.2.1")

// openDB opens a database held in memory (so that a file rewritten in
// place cannot fault a lookup, as a memory map could) and checks that it
// is whole and of the right kind.
func openDB(k kind, data []byte) (*geoip2.Reader, error) {
	m, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, err
	}
	if err := m.Verify(); err != nil {
		return nil, err
	}
	r, err := geoip2.OpenBytes(data)
	if err != nil {
		return nil, err
	}
	if k == kindCity {
		_, err = r.City(probe)
	} else {
		_, err = r.ASN(probe)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// publish puts the sources' data in force. The previous snapshot is
// dropped: its readers hold only memory, freed once the last lookup using
// them returns, so nothing is closed under a lookup.
func (in *Intel) publish() {
	s := &snapshot{}
	for _, src := range in.sources {
		switch {
		case src.city != nil:
			s.city = src.city
		case src.asn != nil:
			s.asn = src.asn
		case src.list != nil:
			s.lists = append(s.lists, src.list)
		}
	}
	in.current.Store(s)
}

// Run keeps the data current until ctx ends: every interval it looks at
// each file (os.Stat, no read) and reloads those that changed.
func (in *Intel) Run(ctx context.Context) {
	if len(in.sources) == 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(in.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			in.poll()
		}
	}
}

// Close drops the data and stops reloads: later lookups find nothing but
// the address.
func (in *Intel) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closed = true
	for _, s := range in.sources {
		s.city, s.asn, s.list = nil, nil, nil
	}
	in.publish()
	return nil
}
