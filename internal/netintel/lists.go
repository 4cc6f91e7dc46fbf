package netintel

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Names of IP lists with a built-in meaning (GATEHOUSE_IP_LISTS); a list
// of any other name is a label that rules can match on and carries no
// meaning of its own.
const (
	// ListTor holds Tor exit nodes: a sign-in from one raises the risk
	// score (signal tor_exit).
	ListTor = "tor"
	// ListDatacenter holds hosting and cloud provider networks, where
	// people rarely sign in from but bots do (signal datacenter_ip).
	ListDatacenter = "datacenter"
	// ListBlocklist holds addresses known to be hostile (signal
	// blocklisted_ip): enough, alone, to step a sign-in up.
	ListBlocklist = "blocklist"
	// ListAllowlist holds trusted networks (offices, VPN egress): sign-ins
	// from them are never stepped up or blocked for network reasons.
	ListAllowlist = "allowlist"
)

// ipRange is an inclusive range of addresses as 128-bit numbers (IPv4 in
// the low 32 bits).
type ipRange struct{ lo, hi u128 }

type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// addrKey is an address as a number and its family: an IPv4-mapped IPv6
// address is its IPv4 address, and a zone is ignored.
type addrKey struct {
	n   u128
	is4 bool
}

func key(ip netip.Addr) addrKey {
	ip = ip.Unmap()
	if ip.Is4() {
		b := ip.As4()
		return addrKey{u128{0, uint64(binary.BigEndian.Uint32(b[:]))}, true}
	}
	b := ip.As16()
	return addrKey{u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, false}
}

// rangeOf is the first and last address of p, in key form.
func rangeOf(p netip.Prefix) ipRange {
	p = p.Masked()
	lo := key(p.Addr()).n
	bits := p.Bits() + 128 - p.Addr().BitLen()
	hi := lo
	switch host := 128 - bits; {
	case host >= 64:
		hi.lo = ^uint64(0)
		if host > 64 {
			hi.hi |= ^uint64(0) >> (128 - host)
		}
	case host > 0:
		hi.lo |= ^uint64(0) >> (64 - host)
	}
	return ipRange{lo, hi}
}

// ipList is one named list: disjoint, sorted ranges per address family,
// found by binary search. IPv6 prefixes that span IPv4-mapped addresses
// (::/0, ::ffff:0:0/95) do not hold IPv4 addresses, as in net/netip.
type ipList struct {
	name   string
	v4, v6 []ipRange
}

// contains reports whether the address k is in the list.
func (l *ipList) contains(k addrKey) bool {
	ranges := l.v6
	if k.is4 {
		ranges = l.v4
	}
	// The first range starting after k; the one before it is the only
	// one that can hold k.
	i, _ := slices.BinarySearchFunc(ranges, k.n, func(r ipRange, n u128) int {
		if r.lo.cmp(n) <= 0 {
			return -1
		}
		return 1
	})
	return i > 0 && k.n.cmp(ranges[i-1].hi) <= 0
}

// size is the number of disjoint ranges.
func (l *ipList) size() int { return len(l.v4) + len(l.v6) }

// parseList reads a list file: one IP address or CIDR a line; blank lines
// and what follows a # are ignored. A bad line is an error naming the file
// and the line.
func parseList(name, path string, data []byte) (*ipList, error) {
	var v4, v6 []ipRange
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, err := parseIPOrCIDR(line)
		if err != nil {
			return nil, fmt.Errorf("IP list %s: %s:%d: %q is not an IP address or CIDR", name, path, n, line)
		}
		if p.Addr().Is4() {
			v4 = append(v4, rangeOf(p))
		} else {
			v6 = append(v6, rangeOf(p))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("IP list %s: %s: %w", name, path, err)
	}
	return &ipList{name: name, v4: merge(v4), v6: merge(v6)}, nil
}

func parseIPOrCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p, nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("zone in %q", s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// merge sorts ranges and joins those that overlap or touch.
func merge(ranges []ipRange) []ipRange {
	slices.SortFunc(ranges, func(a, b ipRange) int { return a.lo.cmp(b.lo) })
	out := ranges[:0]
	for _, r := range ranges {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if next, ok := last.hi.next(); !ok || r.lo.cmp(next) <= 0 {
				if r.hi.cmp(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// next is a+1, false if a is the last address.
func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}
