package delivery

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a table; unknown names do not resolve.
type fakeResolver map[string][]string

func (r fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip" {
		return nil, errors.New("unexpected network " + network)
	}
	addrs, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestCheckRefusesInternalAddresses(t *testing.T) {
	cases := []struct{ host, why string }{
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"[::1]", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"[fc00::1]", "private"},
		{"[fd12:3456::1]", "private"},
		{"[fec0::1]", "private"},
		{"169.254.1.1", "link-local"},
		{"[fe80::1]", "link-local"},
		{"[fe80::1%25eth0]", "link-local"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"[ff02::1]", "multicast"},
		{"0.0.0.0", "unspecified"},
		{"[::]", "unspecified"},
		{"0.1.2.3", "this network"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"192.0.0.8", "reserved"},
		{"169.254.169.254", "metadata"},
		{"[fd00:ec2::254]", "metadata"},
		{"100.100.100.200", "metadata"},
		// IPv4 inside IPv6 is judged as the IPv4 address.
		{"[::ffff:127.0.0.1]", "loopback"},
		{"[::ffff:10.0.0.1]", "private"},
		{"[::ffff:169.254.169.254]", "metadata"},
		{"[::ffff:100.100.100.200]", "metadata"},
		{"[::ffff:0.0.0.0]", "unspecified"},
		{"[::127.0.0.1]", "loopback"},
		{"[64:ff9b::a00:1]", "private"},
		{"[64:ff9b::a9fe:a9fe]", "metadata"},
		{"[2002:c0a8:101::1]", "private"},
	}
	d := Destinations{}
	for _, tc := range cases {
		err := d.Check(t.Context(), "https://"+tc.host+"/hook")
		var de *DestinationError
		if !errors.Is(err, ErrDestinationRefused) || !errors.As(err, &de) {
			t.Errorf("%s: Check = %v, want refused", tc.host, err)
			continue
		}
		if !strings.Contains(de.Reason, tc.why) {
			t.Errorf("%s: reason %q, want it to say %q", tc.host, de.Reason, tc.why)
		}
	}
}

func TestCheckAllowsPublicAddresses(t *testing.T) {
	d := Destinations{RequireHTTPS: true}
	for _, host := range []string{
		"93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "192.0.2.10",
		"[2606:4700::1111]", "[::ffff:93.184.216.34]", "[64:ff9b::808:808]", "[2002:808:808::1]",
	} {
		if err := d.Check(t.Context(), "https://"+host+":8443/hook?x=1"); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
}

func TestCheckAllowPrivate(t *testing.T) {
	d := Destinations{AllowPrivate: true}
	for _, host := range []string{"127.0.0.1", "[::1]", "10.0.0.1", "192.168.1.1", "169.254.1.1", "100.64.0.1", "[fd12::1]"} {
		if err := d.Check(t.Context(), "http://"+host+":8080/"); err != nil {
			t.Errorf("%s with private allowed: %v", host, err)
		}
	}
	// Metadata services hand out credentials: never.
	for _, host := range []string{"169.254.169.254", "[fd00:ec2::254]", "100.100.100.200", "[::ffff:169.254.169.254]"} {
		if err := d.Check(t.Context(), "http://"+host+"/"); !errors.Is(err, ErrDestinationRefused) {
			t.Errorf("%s with private allowed: %v, want refused", host, err)
		}
	}
}

func TestCheckURLShape(t *testing.T) {
	cases := map[string]struct {
		url   string
		https bool
		why   string
	}{
		"relative":      {"/hook", false, "absolute"},
		"no scheme":     {"example.com/hook", false, "absolute"},
		"ftp":           {"ftp://example.com/", false, "scheme"},
		"javascript":    {"javascript:alert(1)", false, "absolute"},
		"http in prod":  {"http://93.184.216.34/", true, "https"},
		"userinfo":      {"https://user:pw@93.184.216.34/", false, "user name"},
		"user only":     {"https://user@93.184.216.34/", false, "user name"},
		"no host":       {"https:///hook", false, "no host"},
		"port too big":  {"https://93.184.216.34:99999/", false, "port"},
		"port zero":     {"https://93.184.216.34:0/", false, "port"},
		"bad port":      {"https://93.184.216.34:x/", false, "parse"},
		"control chars": {"https://exa\x00mple.com/", false, "parse"},
	}
	for name, tc := range cases {
		err := Destinations{RequireHTTPS: tc.https}.Check(t.Context(), tc.url)
		var de *DestinationError
		if !errors.As(err, &de) || !errors.Is(err, ErrDestinationRefused) {
			t.Errorf("%s: %v, want refused", name, err)
			continue
		}
		if !strings.Contains(de.Reason, tc.why) {
			t.Errorf("%s: reason %q, want it to say %q", name, de.Reason, tc.why)
		}
	}
}

func TestCheckResolvesEveryAddress(t *testing.T) {
	r := fakeResolver{
		"public.example":   {"93.184.216.34", "2606:2800:220:1::1"},
		"internal.example": {"93.184.216.34", "10.0.0.7"},
		"local.example":    {"127.0.0.1"},
		"meta.example":     {"169.254.169.254"},
		"empty.example":    {},
	}
	d := Destinations{Resolver: r, RequireHTTPS: true}
	if err := d.Check(t.Context(), "https://public.example/hook"); err != nil {
		t.Errorf("public name: %v", err)
	}
	for host, why := range map[string]string{
		"internal.example": "private", "local.example": "loopback", "meta.example": "metadata",
		"empty.example": "does not resolve", "nxdomain.example": "does not resolve",
	} {
		err := d.Check(t.Context(), "https://"+host+"/hook")
		var de *DestinationError
		if !errors.As(err, &de) || !errors.Is(err, ErrDestinationRefused) {
			t.Errorf("%s: %v, want refused", host, err)
			continue
		}
		if !strings.Contains(de.Reason, why) || !strings.Contains(de.Reason, host) {
			t.Errorf("%s: reason %q, want the host and %q", host, de.Reason, why)
		}
		// The reason names the host, not what it resolved to.
		for _, a := range r[host] {
			if strings.Contains(de.Reason, a) {
				t.Errorf("%s: reason %q lists the resolved address %s", host, de.Reason, a)
			}
		}
	}
	var dnsErr *net.DNSError
	if err := d.Check(t.Context(), "https://nxdomain.example/"); !errors.As(err, &dnsErr) {
		t.Errorf("a failed lookup does not carry its cause: %v", err)
	}
	// Private allowed: the name resolving to a private address is fine.
	d.AllowPrivate = true
	if err := d.Check(t.Context(), "https://internal.example/hook"); err != nil {
		t.Errorf("private allowed: %v", err)
	}
}

// countingServer counts the requests it gets.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	target, targetHits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	redirector, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	c := Destinations{AllowPrivate: true}.Client(5 * time.Second)
	resp, err := c.Post(redirector.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status %d, want the 307 itself", resp.StatusCode)
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("the redirect was followed (%d requests to its target)", n)
	}
}

func TestClientChecksTheAddressItDials(t *testing.T) {
	srv, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	c := Destinations{}.Client(5 * time.Second)
	// Check is bypassed here, as a name that resolved to a public address
	// for Check and to loopback for the dial (DNS rebinding) would: the
	// dial itself refuses.
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, u := range []string{srv.URL, "http://localhost" + port} {
		_, err := c.Post(u, "application/json", strings.NewReader("{}"))
		var de *DestinationError
		if !errors.Is(err, ErrDestinationRefused) || !errors.As(err, &de) || !strings.Contains(de.Reason, "loopback") {
			t.Errorf("%s: %v, want refused at dial as loopback", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached the loopback server", n)
	}
	// Allowed, the same dial goes through.
	resp, err := Destinations{AllowPrivate: true}.Client(5*time.Second).Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Error("the allowed request did not arrive")
	}
}

func TestClientVerifiesTLSAndIgnoresProxyEnv(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := Destinations{AllowPrivate: true}.Client(5 * time.Second)
	if _, err := c.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("self-signed server: %v, want a certificate error", err)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport is %T", c.Transport)
	}
	if tr.Proxy != nil {
		t.Error("the client takes a proxy (from the environment)")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("TLS verification is off")
	}
	if c.Timeout != 5*time.Second {
		t.Errorf("timeout %s", c.Timeout)
	}
}

func TestClientTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := Destinations{AllowPrivate: true}.Client(100 * time.Millisecond)
	start := time.Now()
	_, err := c.Get(srv.URL)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("slow server: %v, want a timeout", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("timeout took %s", time.Since(start))
	}
}
