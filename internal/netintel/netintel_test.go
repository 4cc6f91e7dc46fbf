package netintel

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse/gatehouse/internal/netintel/netinteltest"
)

type (
	place   = netinteltest.Place
	network = netinteltest.Network
)

var (
	paris  = netinteltest.Paris
	sydney = netinteltest.Sydney
	berlin = netinteltest.Berlin
	// A record with a country but no coordinates.
	nowhere = place{Network: "203.0.113.0/25", Country: "NL"}

	orange = netinteltest.Orange
	telstr = netinteltest.Telstra
	hoster = netinteltest.Hoster
)

var (
	writeMMDB   = netinteltest.WriteMMDB
	writeCityDB = netinteltest.WriteCityDB
	writeASNDB  = netinteltest.WriteASNDB
)

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// logs records what Intel logs.
type logs struct {
	mu      sync.Mutex
	records []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		s += " " + a.String()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, s)
	l.mu.Unlock()
	return nil
}

func (l *logs) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

var ip = netip.MustParseAddr

// fixture writes a City and an ASN database and the lists into a temporary
// directory and returns their paths.
func fixture(t testing.TB, lists map[string]string) Config {
	t.Helper()
	dir := t.TempDir()
	c := Config{
		CityDB: filepath.Join(dir, "city.mmdb"),
		ASNDB:  filepath.Join(dir, "asn.mmdb"),
		Lists:  map[string]string{},
	}
	writeCityDB(t, c.CityDB, paris, sydney, berlin, nowhere)
	writeASNDB(t, c.ASNDB, orange, telstr, hoster)
	for name, content := range lists {
		c.Lists[name] = filepath.Join(dir, name+".txt")
		writeFile(t, c.Lists[name], content)
	}
	return c
}

func newIntel(t testing.TB, c Config) *Intel {
	t.Helper()
	in, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	return in
}

func TestLookup(t *testing.T) {
	in := newIntel(t, fixture(t, map[string]string{
		ListTor:        "# exits\n198.51.100.7\n",
		ListDatacenter: "2001:db8::/32\n",
		"office":       "192.0.2.0/25 # first half\n198.51.100.7/32\n",
	}))
	if !in.LocationEnabled() || !in.ASNEnabled() {
		t.Fatal("LocationEnabled, ASNEnabled = false with both databases")
	}
	tests := []struct {
		ip   string
		want Info
	}{
		{"192.0.2.10", Info{Country: "FR", City: "Paris", Latitude: 48.85, Longitude: 2.35, HasLocation: true,
			ASN: 3215, ASOrg: "Orange", Lists: []string{"office"}}},
		{"192.0.2.200", Info{Country: "FR", City: "Paris", Latitude: 48.85, Longitude: 2.35, HasLocation: true,
			ASN: 3215, ASOrg: "Orange"}},
		{"198.51.100.7", Info{Country: "AU", City: "Sydney", Latitude: -33.87, Longitude: 151.21, HasLocation: true,
			ASN: 1221, ASOrg: "Telstra", Lists: []string{"office", "tor"}}},
		// IPv4-mapped IPv6 is looked up as IPv4, in the databases and lists.
		{"::ffff:198.51.100.7", Info{Country: "AU", City: "Sydney", Latitude: -33.87, Longitude: 151.21, HasLocation: true,
			ASN: 1221, ASOrg: "Telstra", Lists: []string{"office", "tor"}}},
		{"2001:db8:be::1", Info{Country: "DE", City: "Berlin", Latitude: 52.52, Longitude: 13.40, HasLocation: true,
			ASN: 64500, ASOrg: "Example Hosting", Lists: []string{"datacenter"}}},
		{"2001:db8:be::1%eth0", Info{Country: "DE", City: "Berlin", Latitude: 52.52, Longitude: 13.40, HasLocation: true,
			ASN: 64500, ASOrg: "Example Hosting", Lists: []string{"datacenter"}}},
		{"2001:db8:1::1", Info{ASN: 64500, ASOrg: "Example Hosting", Lists: []string{"datacenter"}}},
		{"203.0.113.5", Info{Country: "NL"}},
		{"10.1.2.3", Info{}},
		{"2001:db9::1", Info{}},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			tt.want.IP = ip(tt.ip)
			if diff := cmp.Diff(tt.want, in.Lookup(ip(tt.ip)), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Lookup (-want +got):\n%s", diff)
			}
		})
	}
	if got := in.Lookup(netip.Addr{}); got.IP.IsValid() || got.Country != "" || got.Lists != nil {
		t.Errorf("Lookup(zero) = %+v", got)
	}
	if diff := cmp.Diff([]string{"datacenter", "office", "tor"}, in.ListNames()); diff != "" {
		t.Errorf("ListNames (-want +got):\n%s", diff)
	}
}

func TestNoDatabases(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "block.txt")
	writeFile(t, path, "192.0.2.0/24\n")
	in := newIntel(t, Config{Lists: map[string]string{ListBlocklist: path}})
	if in.LocationEnabled() || in.ASNEnabled() {
		t.Error("LocationEnabled or ASNEnabled without databases")
	}
	want := Info{IP: ip("192.0.2.1"), Lists: []string{"blocklist"}}
	if diff := cmp.Diff(want, in.Lookup(ip("192.0.2.1")), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Lookup (-want +got):\n%s", diff)
	}

	// Nothing at all configured: only the address.
	empty := newIntel(t, Config{})
	if got := empty.Lookup(ip("192.0.2.1")); got.IP != ip("192.0.2.1") || got.Lists != nil || got.Country != "" {
		t.Errorf("Lookup = %+v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { empty.Run(ctx); close(done) }()
	cancel()
	<-done
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	good := fixture(t, nil)
	garbage := filepath.Join(dir, "garbage.mmdb")
	writeFile(t, garbage, "not a database")
	badList := filepath.Join(dir, "bad.txt")
	writeFile(t, badList, "# fine\n192.0.2.1\n\n192.0.2.0/33\n")
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"missing city", Config{CityDB: filepath.Join(dir, "none.mmdb")}, "none.mmdb: no such file"},
		{"garbage asn", Config{ASNDB: garbage}, "GeoIP asn database " + garbage},
		{"asn as city", Config{CityDB: good.ASNDB}, "GeoIP city database " + good.ASNDB},
		{"city as asn", Config{ASNDB: good.CityDB}, "GeoIP asn database " + good.CityDB},
		{"bad list line", Config{Lists: map[string]string{"x": badList}}, "IP list x: " + badList + `:4: "192.0.2.0/33" is not an IP address or CIDR`},
		{"missing list", Config{Lists: map[string]string{"x": filepath.Join(dir, "none.txt")}}, "none.txt: no such file"},
		{"empty path", Config{Lists: map[string]string{"x": ""}}, "IP list x: no file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestListParsing(t *testing.T) {
	tests := []struct {
		name    string
		content string
		in, out []string
	}{
		{"comments and blanks", "# header\n\n   \n192.0.2.1   # one host\n\t198.51.100.0/24\t\n",
			[]string{"192.0.2.1", "198.51.100.0", "198.51.100.255", "::ffff:192.0.2.1"},
			[]string{"192.0.2.0", "192.0.2.2", "198.51.101.0", "198.51.99.255"}},
		{"ipv6", "2001:db8::/48\n2001:db8:ff::1\n",
			[]string{"2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", "2001:db8:ff::1"},
			[]string{"2001:db8:1::", "2001:db8:ff::2", "192.0.2.1"}},
		{"ipv4-mapped entries", "::ffff:192.0.2.1\n::ffff:198.51.100.0/120\n",
			[]string{"192.0.2.1", "198.51.100.9", "::ffff:198.51.100.9"},
			[]string{"192.0.2.2", "::192.0.2.1"}},
		{"overlapping and adjacent", "10.0.0.0/8\n10.1.0.0/16\n11.0.0.0/8\n12.0.0.1\n",
			[]string{"10.0.0.0", "10.255.255.255", "11.0.0.0", "11.255.255.255", "12.0.0.1"},
			[]string{"9.255.255.255", "12.0.0.0", "12.0.0.2"}},
		{"host bits set", "192.0.2.77/24\n",
			[]string{"192.0.2.0", "192.0.2.255"}, []string{"192.0.3.0"}},
		{"everything", "0.0.0.0/0\n::/0\n",
			[]string{"0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, nil},
		{"ipv6 spans hold no ipv4", "::/0\n::ffff:0:0/95\n",
			[]string{"2001:db8::1", "::", "::fffe:ffff:ffff"},
			[]string{"192.0.2.1", "::ffff:192.0.2.1", "0.0.0.0"}},
		{"no trailing newline", "192.0.2.1", []string{"192.0.2.1"}, nil},
		{"empty", "# nothing yet\n", nil, []string{"192.0.2.1", "::"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := parseList("x", "x.txt", []byte(tt.content))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.in {
				if !l.contains(key(ip(s))) {
					t.Errorf("%s not in the list", s)
				}
			}
			for _, s := range tt.out {
				if l.contains(key(ip(s))) {
					t.Errorf("%s in the list", s)
				}
			}
		})
	}
	if l, _ := parseList("x", "x.txt", []byte("10.0.0.0/8\n10.1.0.0/16\n11.0.0.0/8\n")); l.size() != 1 {
		t.Errorf("ranges = %d, want overlapping and adjacent ones merged into 1", l.size())
	}

	for _, line := range []string{"192.0.2", "192.0.2.1/33", "2001:db8::/129", "fe80::1%eth0", "host.example", "192.0.2.1 192.0.2.2", "-"} {
		content := "192.0.2.1\n# c\n" + line + "\n"
		_, err := parseList("mine", "/etc/mine.txt", []byte(content))
		want := `IP list mine: /etc/mine.txt:3: "` + line + `" is not an IP address or CIDR`
		if err == nil || err.Error() != want {
			t.Errorf("line %q: error = %v, want %s", line, err, want)
		}
	}
}

func TestReload(t *testing.T) {
	l := &logs{}
	c := fixture(t, map[string]string{ListBlocklist: "192.0.2.1\n"})
	c.Log = slog.New(l)
	now := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	c.Now = func() time.Time { return now }
	in := newIntel(t, c)

	// The Paris network moves to Lyon, Orange becomes another AS, and the
	// blocklist changes.
	now = now.Add(time.Minute)
	writeCityDB(t, c.CityDB, place{Network: "192.0.2.0/24", Country: "FR", City: "Lyon", Lat: 45.76, Lon: 4.84}, sydney)
	writeASNDB(t, c.ASNDB, network{CIDR: "192.0.2.0/24", ASN: 64511, Org: "Other"})
	writeFile(t, c.Lists[ListBlocklist], "192.0.2.2\n")
	if err := in.Reload(); err != nil {
		t.Fatal(err)
	}
	got := in.Lookup(ip("192.0.2.1"))
	if got.City != "Lyon" || got.Latitude != 45.76 || got.ASN != 64511 || got.ASOrg != "Other" || got.Lists != nil {
		t.Errorf("after reload: %+v", got)
	}
	if got := in.Lookup(ip("192.0.2.2")); !cmp.Equal(got.Lists, []string{"blocklist"}) {
		t.Errorf("192.0.2.2 lists = %v", got.Lists)
	}
	for _, s := range in.Sources() {
		if !s.LoadedAt.Equal(now) {
			t.Errorf("source %s loaded at %v, want %v", s.Name, s.LoadedAt, now)
		}
	}

	// Bad replacements: each is reported and logged, and the data in force
	// stays.
	writeFile(t, c.CityDB, "truncated")
	writeCityDB(t, c.ASNDB, paris) // a database of the wrong kind
	writeFile(t, c.Lists[ListBlocklist], "192.0.2.3\nnot-an-ip\n")
	err := in.Reload()
	for _, want := range []string{"GeoIP city database", "GeoIP asn database", `blocklist.txt:2: "not-an-ip"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Reload error = %v, want it to contain %q", err, want)
		}
	}
	if n := l.count("ERROR network intelligence source not reloaded"); n != 3 {
		t.Errorf("%d errors logged, want 3:\n%s", n, strings.Join(l.records, "\n"))
	}
	got = in.Lookup(ip("192.0.2.2"))
	if got.City != "Lyon" || got.ASN != 64511 || !cmp.Equal(got.Lists, []string{"blocklist"}) {
		t.Errorf("after bad reload: %+v, want the data in force to stay", got)
	}

	// A deleted file too.
	if err := os.Remove(c.Lists[ListBlocklist]); err != nil {
		t.Fatal(err)
	}
	if err := in.Reload(); err == nil {
		t.Error("Reload with a deleted list: no error")
	}
	if got := in.Lookup(ip("192.0.2.2")); !cmp.Equal(got.Lists, []string{"blocklist"}) {
		t.Errorf("after the list was deleted: lists = %v, want the list in force to stay", got.Lists)
	}
}

func TestRunReloadsChangedFiles(t *testing.T) {
	l := &logs{}
	c := fixture(t, map[string]string{"partners": "192.0.2.1\n"})
	c.Log = slog.New(l)
	c.Interval = 10 * time.Millisecond
	in := newIntel(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen within 10s; logs:\n%s", what, strings.Join(l.records, "\n"))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	writeCityDB(t, c.CityDB, place{Network: "192.0.2.0/24", Country: "FR", City: "Lyon", Lat: 45.76, Lon: 4.84})
	waitFor("city reloaded", func() bool { return in.Lookup(ip("192.0.2.1")).City == "Lyon" })
	writeFile(t, c.Lists["partners"], "192.0.2.1\n198.51.100.0/24\n")
	waitFor("list reloaded", func() bool { return in.Lookup(ip("198.51.100.4")).Lists != nil })

	// Another file of the same size and modification time renamed into
	// place is noticed too.
	old, err := os.Stat(c.Lists["partners"])
	if err != nil {
		t.Fatal(err)
	}
	other := c.Lists["partners"] + ".new"
	if err := os.WriteFile(other, []byte("192.0.2.22\n203.0.113.0/24\n"), 0o600); err != nil { // same size
		t.Fatal(err)
	}
	if err := os.Chtimes(other, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, c.Lists["partners"]); err != nil {
		t.Fatal(err)
	}
	waitFor("renamed list reloaded", func() bool { return in.Lookup(ip("203.0.113.4")).Lists != nil })

	// A bad file is logged once and the data in force stays; a good one
	// after it is taken.
	writeFile(t, c.ASNDB, strings.Repeat("x", 100))
	waitFor("bad database logged", func() bool { return l.count("ERROR network intelligence file is invalid") == 1 })
	time.Sleep(50 * time.Millisecond) // several more polls
	if n := l.count("ERROR network intelligence file is invalid"); n != 1 {
		t.Errorf("bad file logged %d times, want once", n)
	}
	if got := in.Lookup(ip("192.0.2.1")); got.ASN != uint(orange.ASN) {
		t.Errorf("ASN = %d after a bad file, want %d", got.ASN, orange.ASN)
	}
	writeASNDB(t, c.ASNDB, network{CIDR: "192.0.2.0/24", ASN: 64511, Org: "Other"})
	waitFor("asn reloaded", func() bool { return in.Lookup(ip("192.0.2.1")).ASN == 64511 })

	// A file that disappears is logged once; its data stays.
	if err := os.Remove(c.Lists["partners"]); err != nil {
		t.Fatal(err)
	}
	waitFor("missing file logged", func() bool { return l.count("ERROR network intelligence file cannot be read") == 1 })
	if got := in.Lookup(ip("203.0.113.4")); !cmp.Equal(got.Lists, []string{"partners"}) {
		t.Errorf("lists = %v after the file disappeared, want the list in force", got.Lists)
	}

	// Once closed, lookups find only the address and changes are not read.
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if got := in.Lookup(ip("192.0.2.1")); got.Country != "" || got.ASN != 0 || got.Lists != nil {
		t.Errorf("after Close: %+v", got)
	}
	writeFile(t, c.Lists["partners"], "192.0.2.1\n")
	time.Sleep(50 * time.Millisecond) // several polls
	if got := in.Lookup(ip("192.0.2.1")); got.Lists != nil || in.Reload() == nil {
		t.Errorf("after Close, a changed file was read: %+v", got)
	}
}

// TestLookupDuringReload looks up from many goroutines while the files are
// replaced and reloaded (run with -race).
func TestLookupDuringReload(t *testing.T) {
	c := fixture(t, map[string]string{ListTor: "198.51.100.7\n"})
	in := newIntel(t, c)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got := in.Lookup(ip("192.0.2.1")); got.Country != "FR" {
					t.Errorf("country = %q during reloads", got.Country)
					return
				}
			}
		})
	}
	for i := range 20 {
		writeCityDB(t, c.CityDB, paris, place{Network: "198.51.100.0/24", Country: "AU", City: "Sydney", Lat: float64(i), Lon: 1})
		writeFile(t, c.Lists[ListTor], "198.51.100.7\n198.51.100.8\n")
		if err := in.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkLookup(b *testing.B) {
	// A list of 10,000 scattered /24s and IPv6 /48s, as a datacenter list
	// is, beside the databases.
	var list strings.Builder
	for i := range 10000 {
		list.WriteString(netip.AddrFrom4([4]byte{byte(20 + i%200), byte(i / 200), byte(i), 0}).String() + "/24\n")
		list.WriteString(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb9, byte(i >> 8), byte(i)}).String() + "/48\n")
	}
	c := fixture(b, map[string]string{ListDatacenter: list.String(), ListTor: "198.51.100.7\n", ListBlocklist: "203.0.113.0/24\n"})
	in := newIntel(b, c)
	addrs := []netip.Addr{ip("192.0.2.10"), ip("198.51.100.7"), ip("2001:db8:be::1"), ip("10.1.2.3"), ip("::ffff:198.51.100.9")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		in.Lookup(addrs[i%len(addrs)])
	}
}

func BenchmarkLookupListsOnly(b *testing.B) {
	dir := b.TempDir()
	var list strings.Builder
	for i := range 100000 {
		list.WriteString(netip.AddrFrom4([4]byte{byte(20 + i%200), byte(i / 200), byte(i), byte(i * 7)}).String() + "\n")
	}
	path := filepath.Join(dir, "tor.txt")
	writeFile(b, path, list.String())
	in := newIntel(b, Config{Lists: map[string]string{ListTor: path}})
	addr := ip("120.100.100.5")
	b.ReportAllocs()
	for b.Loop() {
		in.Lookup(addr)
	}
}
