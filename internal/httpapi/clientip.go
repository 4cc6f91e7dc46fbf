package httpapi

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIPResolver finds the client's address. X-Forwarded-For is believed
// only as far as it was written by trusted proxies: the list is read from
// the right and the first address that is not a trusted proxy wins.
type ClientIPResolver struct {
	trusted []netip.Prefix
}

// NewClientIPResolver parses CIDRs or single IPs of trusted proxies.
func NewClientIPResolver(trusted []string) (*ClientIPResolver, error) {
	res := &ClientIPResolver{}
	for _, s := range trusted {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "/") {
			addr, err := netip.ParseAddr(s)
			if err != nil {
				return nil, err
			}
			res.trusted = append(res.trusted, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		res.trusted = append(res.trusted, p.Masked())
	}
	return res, nil
}

func (c *ClientIPResolver) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client IP of r as a string.
func (c *ClientIPResolver) Resolve(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if c == nil || !c.isTrusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = a.Unmap()
		if !c.isTrusted(client) {
			break
		}
	}
	return client.String()
}

type clientIPKey struct{}

func withClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

// ClientIP returns the client IP resolved for the request, or "".
func ClientIP(ctx context.Context) string {
	ip, _ := ctx.Value(clientIPKey{}).(string)
	return ip
}

// LimitKey is the form of a client IP that per-IP limits count under. An
// IPv4 address (also written IPv4-mapped, ::ffff:a.b.c.d) is kept whole;
// an IPv6 address is cut to its /64 prefix, written "2001:db8:1:2::/64":
// a single client is routinely handed a whole /64 and can pick a new
// address from it for every request, so counting whole IPv6 addresses
// would give it 2^64 allowances. A value that is not an IP address (or "")
// is returned unchanged.
func LimitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
