// Package netinteltest writes small MaxMind-format databases for tests
// (GeoLite2 City and ASN layouts), with maxmind/mmdbwriter.
package netinteltest

import (
	"net"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Place is a City database record: a network and where it is. A Place
// without City has a country and no coordinates.
type Place struct {
	Network  string
	Country  string // ISO 3166-1 alpha-2
	City     string
	Lat, Lon float64
}

// Network is an ASN database record.
type Network struct {
	CIDR string
	ASN  uint32
	Org  string
}

// Documentation ranges, placed.
var (
	Paris  = Place{"192.0.2.0/24", "FR", "Paris", 48.85, 2.35}
	Sydney = Place{"198.51.100.0/24", "AU", "Sydney", -33.87, 151.21}
	Berlin = Place{"2001:db8:be::/48", "DE", "Berlin", 52.52, 13.40}

	Orange  = Network{"192.0.2.0/24", 3215, "Orange"}
	Telstra = Network{"198.51.100.0/24", 1221, "Telstra"}
	Hoster  = Network{"2001:db8::/32", 64500, "Example Hosting"}
)

// WriteMMDB builds a MaxMind DB of the given type with one record per
// network and writes it atomically (rename) to path.
func WriteMMDB(t testing.TB, path, dbType string, records map[string]mmdbtype.Map) {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "Gatehouse test " + dbType},
		IncludeReservedNetworks: true, // the documentation ranges are reserved
		RecordSize:              24,
	})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range records {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Insert(n, rec); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// WriteCityDB writes a GeoLite2-City database of places to path.
func WriteCityDB(t testing.TB, path string, places ...Place) {
	t.Helper()
	recs := map[string]mmdbtype.Map{}
	for _, p := range places {
		rec := mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(p.Country)}}
		if p.City != "" {
			rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(p.City)}}
			rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(p.Lat), "longitude": mmdbtype.Float64(p.Lon)}
		}
		recs[p.Network] = rec
	}
	WriteMMDB(t, path, "GeoLite2-City", recs)
}

// WriteASNDB writes a GeoLite2-ASN database of networks to path.
func WriteASNDB(t testing.TB, path string, networks ...Network) {
	t.Helper()
	recs := map[string]mmdbtype.Map{}
	for _, n := range networks {
		recs[n.CIDR] = mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(n.ASN),
			"autonomous_system_organization": mmdbtype.String(n.Org),
		}
	}
	WriteMMDB(t, path, "GeoLite2-ASN", recs)
}
