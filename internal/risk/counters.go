package risk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv"
)

// DefaultWindow is the default window of the failure counters
// (GATEHOUSE_RISK_FAILURE_WINDOW).
const DefaultWindow = time.Hour

// Counters keeps the failure counters behind credential_stuffing and
// account_under_attack in the ephemeral store, so they hold across nodes:
// how many distinct accounts each address failed to sign in to, and from
// how many distinct addresses each account was failed, within Window.
//
// Counts are kept per fixed bucket of Window (keys expire after two
// buckets) and read as a sliding window: the current bucket's count plus
// the previous bucket's, weighted by the share of the window that still
// overlaps it. An address and account pair counts once per bucket. IPv6
// addresses count by their /64, which one host can usually choose from
// freely. Accounts are the login names tried (existing or not), kept only
// as a hash in the keys.
//
// Read, on the sign-in path, is one round trip (kv.Store.GetMany); Failed
// costs up to three, on the failure path only. An outage of the store is
// returned as the kv error (kv.ErrUnavailable, wrapped): the caller decides
// whether to score without the counters.
type Counters struct {
	kv     kv.Store
	window time.Duration
	now    func() time.Time
}

// NewCounters returns counters over s with the given window (> 0) and clock.
func NewCounters(s kv.Store, window time.Duration, now func() time.Time) (*Counters, error) {
	if s == nil || now == nil {
		return nil, errors.New("risk: counters need a kv store and a clock")
	}
	if window <= 0 {
		return nil, fmt.Errorf("risk: failure window must be positive, got %v", window)
	}
	return &Counters{kv: s, window: window, now: now}, nil
}

// Failed records a failed sign-in to account from ip.
func (c *Counters) Failed(ctx context.Context, ip netip.Addr, account string) error {
	b := c.bucket(c.now())
	ipk, acct := ipKey(ip), accountKey(account)
	ttl := 2 * c.window
	fresh, err := c.kv.SetNX(ctx, "risk:pair:"+b+":"+ipk+":"+acct, nil, ttl)
	if err != nil {
		return fmt.Errorf("risk: record failure: %w", err)
	}
	if !fresh {
		return nil
	}
	if _, err := c.kv.Incr(ctx, "risk:ip:"+b+":"+ipk, 1, ttl); err != nil {
		return fmt.Errorf("risk: record failure: %w", err)
	}
	if _, err := c.kv.Incr(ctx, "risk:acct:"+b+":"+acct, 1, ttl); err != nil {
		return fmt.Errorf("risk: record failure: %w", err)
	}
	return nil
}

// Read returns the failure counts for a sign-in to account from ip, in
// one round trip.
func (c *Counters) Read(ctx context.Context, ip netip.Addr, account string) (Failures, error) {
	now := c.now()
	cur, prev := c.bucket(now), c.bucket(now.Add(-c.window))
	ipk, acct := ipKey(ip), accountKey(account)
	vals, err := c.kv.GetMany(ctx, "risk:ip:"+cur+":"+ipk, "risk:ip:"+prev+":"+ipk,
		"risk:acct:"+cur+":"+acct, "risk:acct:"+prev+":"+acct)
	if err != nil {
		return Failures{}, fmt.Errorf("risk: read failure counters: %w", err)
	}
	// The share of the previous bucket still inside the sliding window.
	elapsed := now.UnixNano() % int64(c.window)
	if elapsed < 0 {
		elapsed += int64(c.window)
	}
	rest := 1 - float64(elapsed)/float64(c.window)
	count := func(cur, prev []byte) int {
		return int(float64(atoi(cur)) + float64(atoi(prev))*rest)
	}
	return Failures{AccountsFromIP: count(vals[0], vals[1]), IPsForAccount: count(vals[2], vals[3])}, nil
}

// bucket names the fixed window t falls in.
func (c *Counters) bucket(t time.Time) string {
	n := t.UnixNano()
	b := n / int64(c.window)
	if n < 0 && n%int64(c.window) != 0 {
		b--
	}
	return strconv.FormatInt(b, 10)
}

func atoi(b []byte) int64 {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// ipKey is the address (IPv4, or an IPv4-mapped IPv6 address unmapped)
// or the /64 of an IPv6 address.
func ipKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		p, err := ip.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// accountKey hashes a login name, so that the keys carry no address.
func accountKey(account string) string {
	h := sha256.Sum256([]byte(account))
	return hex.EncodeToString(h[:16])
}
