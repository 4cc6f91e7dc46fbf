package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// ErrDestinationRefused is wrapped by every error of Destinations.Check
// and of a dial the client refused: the URL is not one webhooks may be
// sent to. The admin API answers it with 422 and the DestinationError's
// Reason.
var ErrDestinationRefused = errors.New("webhook destination refused")

// DestinationError says why a destination was refused.
type DestinationError struct {
	// Reason is a sentence an administrator can act on ("the host
	// resolves to a private address"). It names the URL's host at most,
	// never a resolved address nor the URL's path or query.
	Reason string
	// Err is the underlying cause (a DNS failure, say), or nil.
	Err error
}

func (e *DestinationError) Error() string {
	return "webhook destination refused: " + e.Reason
}

// Unwrap returns ErrDestinationRefused and the cause.
func (e *DestinationError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrDestinationRefused}
	}
	return []error{ErrDestinationRefused, e.Err}
}

func refused(format string, args ...any) *DestinationError {
	return &DestinationError{Reason: fmt.Sprintf(format, args...)}
}

// Resolver looks up the addresses of a host name, as *net.Resolver does.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Destinations decides which URLs webhooks may be sent to, against
// server-side request forgery: a webhook URL is chosen by an
// administrator of an application, and Gatehouse must not become a way
// into its own network. The zero value refuses private destinations,
// allows http and resolves with net.DefaultResolver.
type Destinations struct {
	// AllowPrivate lets URLs reach loopback, private, link-local and the
	// other internal ranges (GATEHOUSE_WEBHOOK_ALLOW_PRIVATE, for
	// development and tests). Cloud metadata addresses stay refused.
	AllowPrivate bool
	// RequireHTTPS refuses http URLs (production).
	RequireHTTPS bool
	// Resolver resolves host names in Check; nil is net.DefaultResolver.
	// The client's dials resolve with the system resolver and check the
	// address connected to again.
	Resolver Resolver
}

// Check reports whether webhooks may be sent to rawURL: an absolute http
// or https URL (https only when RequireHTTPS), without user information,
// whose host is an address, or resolves to addresses, that are all
// allowed. Unless AllowPrivate is set, loopback, private (RFC 1918, RFC
// 4193), link-local, multicast, unspecified, shared (100.64.0.0/10),
// "this network" (0.0.0.0/8), reserved and broadcast addresses are
// refused, with their IPv4-mapped, IPv4-compatible, NAT64 and 6to4
// forms; cloud metadata addresses are refused always. Every error is a
// *DestinationError wrapping ErrDestinationRefused.
//
// Check is run when an endpoint is created or changed and before each
// delivery; the client (Client) checks the address it connects to once
// more, as a name may resolve differently the second time (DNS
// rebinding).
func (d Destinations) Check(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return refused("the URL does not parse")
	}
	switch {
	case !u.IsAbs() || u.Opaque != "":
		return refused("the URL must be absolute, http or https")
	case u.Scheme != "https" && u.Scheme != "http":
		return refused("the URL's scheme must be https or http, not %q", u.Scheme)
	case u.Scheme == "http" && d.RequireHTTPS:
		return refused("the URL must use https")
	case u.User != nil:
		return refused("the URL must not carry a user name or password")
	case u.Hostname() == "":
		return refused("the URL has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return refused("the URL's port is not valid")
		}
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := d.refusal(ip); why != "" {
			return refused("the host is %s", why)
		}
		return nil
	}
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return &DestinationError{Reason: fmt.Sprintf("the host %s does not resolve", host), Err: err}
	}
	if len(addrs) == 0 {
		return refused("the host %s does not resolve", host)
	}
	for _, ip := range addrs {
		if why := d.refusal(ip); why != "" {
			return refused("the host %s resolves to %s", host, why)
		}
	}
	return nil
}

// Client returns the HTTP client deliveries are sent with: each request
// times out after timeout; a dial connects only to an address Check would
// allow (checked on the address actually connected to, after
// resolution); no proxy is taken from the environment; redirects are not
// followed (the 3xx response is returned); TLS certificates are verified,
// TLS 1.2 at least.
func (d Destinations) Client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		Control:   d.control,
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// control runs before each connection is made, with the address resolved.
func (d Destinations) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refused("the address connected to does not parse")
	}
	if why := d.refusal(ap.Addr()); why != "" {
		return refused("the host connected to is %s", why)
	}
	return nil
}

// refusal returns why ip may not be sent to ("a private address"), or ""
// when it may.
func (d Destinations) refusal(ip netip.Addr) string {
	ip = ip.WithZone("")
	if metadata[ip] {
		return "a cloud metadata address"
	}
	if v4, ok := embeddedIPv4(ip); ok {
		if metadata[v4] {
			return "a cloud metadata address"
		}
		ip = v4
	}
	if d.AllowPrivate {
		return ""
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(ip) {
			return r.why
		}
	}
	return ""
}

// metadata are the instance metadata services of the clouds: AWS, GCP,
// Azure, OpenStack and others on 169.254.169.254, AWS over IPv6 on
// fd00:ec2::254, Alibaba on 100.100.100.200. They hand out credentials,
// so they are refused even when private destinations are allowed.
var metadata = map[netip.Addr]bool{
	netip.MustParseAddr("169.254.169.254"): true,
	netip.MustParseAddr("fd00:ec2::254"):   true,
	netip.MustParseAddr("100.100.100.200"): true,
}

type refusedRange struct {
	prefix netip.Prefix
	why    string
}

// refusedRanges are the destinations refused unless AllowPrivate. IPv4
// embedded in IPv6 is unwrapped before this list is read.
var refusedRanges = func() []refusedRange {
	var rs []refusedRange
	add := func(why string, prefixes ...string) {
		for _, p := range prefixes {
			rs = append(rs, refusedRange{netip.MustParsePrefix(p), why})
		}
	}
	add("a broadcast address", "255.255.255.255/32")
	add("an unspecified address", "0.0.0.0/32", "::/128")
	add(`a "this network" address`, "0.0.0.0/8")
	add("a loopback address", "127.0.0.0/8", "::1/128")
	add("a private address", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")
	add("a shared (carrier-grade NAT) address", "100.64.0.0/10")
	add("a link-local address", "169.254.0.0/16", "fe80::/10")
	add("a multicast address", "224.0.0.0/4", "ff00::/8")
	add("a reserved address", "240.0.0.0/4", "192.0.0.0/24")
	return rs
}()

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
	compat = netip.MustParsePrefix("::/96") // IPv4-compatible (deprecated)
)

// embeddedIPv4 returns the IPv4 address an IPv6 address carries in its
// IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64
// (64:ff9b::a.b.c.d) or 6to4 (2002:aabb:ccdd::) form; these reach the
// IPv4 host, so they are judged as it.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	switch {
	case ip.Is4():
		return ip, true
	case ip.Is4In6():
		return ip.Unmap(), true
	case nat64.Contains(ip), compat.Contains(ip) && ip != netip.IPv6Unspecified() && ip != netip.IPv6Loopback():
		b := ip.As16()
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixTo4.Contains(ip):
		b := ip.As16()
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return ip, false
}
