package netintel

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// checkAgainstPrefixes builds a list from prefixes and checks, for each
// address, that the list holds it exactly when one of the prefixes does.
func checkAgainstPrefixes(t *testing.T, prefixes []netip.Prefix, addrs []netip.Addr) {
	t.Helper()
	var b strings.Builder
	for _, p := range prefixes {
		b.WriteString(p.String() + "\n")
	}
	l, err := parseList("x", "x.txt", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		want := false
		for _, p := range prefixes {
			if p.Contains(a.Unmap()) {
				want = true
				break
			}
		}
		if got := l.contains(key(a)); got != want {
			t.Fatalf("contains(%s) = %t, want %t; prefixes:\n%s", a, got, want, b.String())
		}
	}
}

// randomAddr returns an address near base: the same first bytes, then
// random ones, so that it falls in and around the prefixes.
func randomAddr(r *rand.Rand, base netip.Addr) netip.Addr {
	b := base.AsSlice()
	for i := r.IntN(len(b) + 1); i < len(b); i++ {
		b[i] = byte(r.UintN(256))
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestListMatchesPrefixes compares the merged, binary-searched list with
// checking every prefix, over many random lists of nested, overlapping
// and adjacent IPv4 and IPv6 prefixes.
func TestListMatchesPrefixes(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 1))
	bases := []netip.Addr{netip.MustParseAddr("10.20.0.0"), netip.MustParseAddr("2001:db8:17::")}
	for range 300 {
		var prefixes []netip.Prefix
		for range 1 + r.IntN(20) {
			a := randomAddr(r, bases[r.IntN(2)])
			p, _ := a.Prefix(r.IntN(a.BitLen() + 1))
			prefixes = append(prefixes, p)
		}
		var addrs []netip.Addr
		for range 200 {
			a := randomAddr(r, bases[r.IntN(2)])
			if a.Is4() && r.IntN(4) == 0 {
				a = netip.AddrFrom16(a.As16()) // IPv4-mapped
			}
			addrs = append(addrs, a)
		}
		for _, p := range prefixes { // the edges of each prefix
			addrs = append(addrs, p.Addr(), lastAddr(p))
			if n := lastAddr(p).Next(); n.IsValid() {
				addrs = append(addrs, n)
			}
			if n := p.Addr().Prev(); n.IsValid() {
				addrs = append(addrs, n)
			}
		}
		checkAgainstPrefixes(t, prefixes, addrs)
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// FuzzParseList checks that any file either is refused or gives a list
// that holds every address written in it.
func FuzzParseList(f *testing.F) {
	f.Add("192.0.2.1\n# c\n2001:db8::/32 # x\n\n")
	f.Add("::ffff:192.0.2.0/120\n0.0.0.0/0\n")
	f.Fuzz(func(t *testing.T, content string) {
		l, err := parseList("x", "x.txt", []byte(content))
		if err != nil {
			return
		}
		for line := range strings.SplitSeq(content, "\n") {
			line, _, _ = strings.Cut(line, "#")
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			p, err := parseIPOrCIDR(line)
			if err != nil {
				t.Fatalf("%q accepted in the file but not alone", line)
			}
			// The first and last address of the prefix, unless IPv4-mapped
			// (then IPv4, outside an IPv6 prefix, as in net/netip).
			for _, a := range []netip.Addr{p.Masked().Addr(), lastAddr(p.Masked())} {
				if p.Contains(a.Unmap()) && !l.contains(key(a)) {
					t.Fatalf("list does not hold %s of %s", a, p)
				}
			}
		}
	})
}
