package throttle

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/kv"
)

// Stats counts refusals per rule and per key, for the admin report
// (/v1/admin/rate-limits), across nodes: each node adds up its refusals in
// memory and adds them to the shared store (Redis, or in process on a
// single node) every few seconds, so that a flood of refusals costs the
// store nothing per request.
//
// The store holds, per rule, the refusals of each 5-minute slot (for the
// totals of the last hour and day) and, per hour, the refused keys with
// their counts (for the top keys), all expiring after a day.
type Stats struct {
	kv  kv.Store
	now func() time.Time
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]*ruleCounts // by rule
}

type ruleCounts struct {
	total int64
	keys  map[string]int64
}

const (
	slot         = 5 * time.Minute
	statsTTL     = 25 * time.Hour
	maxKeysLocal = 1000 // distinct keys kept per rule between flushes
	flushKeys    = 100  // keys written per rule per flush (the most refused)
)

// NewStats returns an empty Stats on store.
func NewStats(store kv.Store, now func() time.Time, log *slog.Logger) *Stats {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stats{kv: store, now: now, log: log, pending: map[string]*ruleCounts{}}
}

// Refused counts a refusal of key by rule. A nil *Stats counts nothing.
func (s *Stats) Refused(rule, key string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.pending[rule]
	if c == nil {
		c = &ruleCounts{keys: map[string]int64{}}
		s.pending[rule] = c
	}
	c.total++
	if _, ok := c.keys[key]; ok || len(c.keys) < maxKeysLocal {
		c.keys[key]++
	}
}

// Run flushes every interval until ctx ends, then once more.
func (s *Stats) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = s.Flush(flushCtx)
			cancel()
			return
		case <-t.C:
			if err := s.Flush(ctx); err != nil {
				s.log.WarnContext(ctx, "rate-limit statistics could not be written", "error", err)
			}
		}
	}
}

func slotKey(rule string, at time.Time) string {
	return "ratelimit:stats:" + rule + ":slot:" + strconv.FormatInt(at.Unix()/int64(slot/time.Second), 10)
}

func hourKey(rule string, at time.Time) string {
	return "ratelimit:stats:" + rule + ":hour:" + strconv.FormatInt(at.Unix()/3600, 10)
}

// Flush adds the refusals counted since the last flush to the store. What
// cannot be written is counted again next time.
func (s *Stats) Flush(ctx context.Context) error {
	s.mu.Lock()
	pending := s.pending
	s.pending = map[string]*ruleCounts{}
	s.mu.Unlock()
	now := s.now()
	for rule, c := range pending {
		if err := s.write(ctx, rule, c, now); err != nil {
			s.mu.Lock()
			for k, n := range c.keys {
				s.pendingLocked(rule).keys[k] += n
			}
			s.pendingLocked(rule).total += c.total
			s.mu.Unlock()
			return err
		}
	}
	return nil
}

func (s *Stats) pendingLocked(rule string) *ruleCounts {
	c := s.pending[rule]
	if c == nil {
		c = &ruleCounts{keys: map[string]int64{}}
		s.pending[rule] = c
	}
	return c
}

func (s *Stats) write(ctx context.Context, rule string, c *ruleCounts, now time.Time) error {
	if _, err := s.kv.Incr(ctx, slotKey(rule, now), c.total, statsTTL); err != nil {
		return err
	}
	type kc struct {
		key string
		n   int64
	}
	var keys []kc
	for k, n := range c.keys {
		keys = append(keys, kc{k, n})
	}
	slices.SortFunc(keys, func(a, b kc) int { return cmp.Compare(b.n, a.n) })
	if len(keys) > flushKeys {
		keys = keys[:flushKeys]
	}
	hk := hourKey(rule, now)
	members := make([]string, len(keys))
	for i, k := range keys {
		members[i] = k.key
		if _, err := s.kv.Incr(ctx, hk+":key:"+k.key, k.n, statsTTL); err != nil {
			return err
		}
	}
	if len(members) > 0 {
		if _, err := s.kv.SAdd(ctx, hk+":keys", members...); err != nil {
			return err
		}
		if _, err := s.kv.Expire(ctx, hk+":keys", statsTTL); err != nil {
			return err
		}
	}
	return nil
}

// KeyCount is a key and how often it was refused.
type KeyCount struct {
	Key      string `json:"key"`
	Refusals int64  `json:"refusals"`
}

// RuleStats are a rule's refusals in the last hour and day and its most
// refused keys of the last day.
type RuleStats struct {
	Refusals1h  int64
	Refusals24h int64
	TopKeys     []KeyCount
}

// Report reads the statistics of rule from the store (what every node has
// flushed), with at most top keys.
func (s *Stats) Report(ctx context.Context, rule string, top int) (RuleStats, error) {
	now := s.now()
	var out RuleStats
	slots := make([]string, 0, int(24*time.Hour/slot))
	for i := range int(24 * time.Hour / slot) {
		slots = append(slots, slotKey(rule, now.Add(-time.Duration(i)*slot)))
	}
	vals, err := s.kv.GetMany(ctx, slots...)
	if err != nil {
		return RuleStats{}, err
	}
	for i, v := range vals {
		n, _ := strconv.ParseInt(string(v), 10, 64)
		out.Refusals24h += n
		if i < int(time.Hour/slot) {
			out.Refusals1h += n
		}
	}
	counts := map[string]int64{}
	for h := range 25 {
		hk := hourKey(rule, now.Add(-time.Duration(h)*time.Hour))
		members, err := s.kv.SMembers(ctx, hk+":keys")
		if err != nil {
			return RuleStats{}, err
		}
		if len(members) == 0 {
			continue
		}
		keys := make([]string, len(members))
		for i, m := range members {
			keys[i] = hk + ":key:" + m
		}
		vals, err := s.kv.GetMany(ctx, keys...)
		if err != nil {
			return RuleStats{}, err
		}
		for i, v := range vals {
			n, _ := strconv.ParseInt(string(v), 10, 64)
			counts[members[i]] += n
		}
	}
	for k, n := range counts {
		out.TopKeys = append(out.TopKeys, KeyCount{Key: k, Refusals: n})
	}
	slices.SortFunc(out.TopKeys, func(a, b KeyCount) int {
		return cmp.Or(cmp.Compare(b.Refusals, a.Refusals), cmp.Compare(a.Key, b.Key))
	})
	if len(out.TopKeys) > top {
		out.TopKeys = out.TopKeys[:top]
	}
	if out.TopKeys == nil {
		out.TopKeys = []KeyCount{}
	}
	return out, nil
}
