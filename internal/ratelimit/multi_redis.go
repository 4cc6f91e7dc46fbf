package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
)

// checkAllScript applies every check of a CheckAll call atomically, on
// Redis's clock. It is GCRA as in redis_rate's script, but on integer
// microseconds (TIME's resolution), which a double holds exactly until
// 2255, so that Remaining never suffers from rounding; plus penalties, and
// all-or-nothing counting over several keys.
//
// For check i (from 1), KEYS[2i-1] holds its TAT (microseconds since the
// Unix epoch) and KEYS[2i] its penalty state ("level blocked_until
// refused_until last_refusal", microseconds); ARGV[7i-6 .. 7i] are its
// emission interval, burst, penalty base, max and decay (base 0: no
// penalty), durations in microseconds, the events it wants counted, and 1
// for a block-only check (which counts nothing and refuses only while its
// key is blocked).
// The reply has eight integers per check: allowed (0 or 1), remaining,
// retry_after (µs, -1 when allowed), reset_after (µs), penalised (0 or 1),
// level, granted, blocked_for (µs).
//
// It mirrors memoryMulti.CheckAll step for step.
var checkAllScript = redis.NewScript(`
-- TIME before writes needs effects replication, the default since Redis 5
-- (where replicate_commands is a no-op, and gone in a later version).
if redis.replicate_commands then redis.replicate_commands() end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- floor(a / b) for integers below 2^53, exactly.
local function floordiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end

local pens = {}   -- penalty key -> state read or changed by this call

-- penalty returns the penalty state of pk as this call sees it, its
-- level decayed to 0 a decay after its last refusal.
local function penalty(pk, decay)
  local p = pens[pk]
  if p == nil then
    p = {level = 0, blocked = 0, refused = 0, last = 0}
    local v = redis.call('GET', pk)
    if v then
      local l, b, r, last = string.match(v, '^(%d+) (%d+) (%d+) (%d+)$')
      if l then
        p = {level = tonumber(l), blocked = tonumber(b), refused = tonumber(r), last = tonumber(last)}
      end
    end
    pens[pk] = p
  end
  if p.level > 0 and now - p.last >= decay then p.level = 0 end
  return p
end

local n = #KEYS / 2
local out = {}
local stored = {} -- TAT key -> stored TAT, or now when absent
local tats = {}   -- TAT key -> TAT with the checks so far counted
local dirty = {}  -- penalty key -> decay, for refused keys with a penalty
local refused = false

for i = 1, n do
  local tk, pk = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 7 * (i - 1)
  local e = tonumber(ARGV[a + 1])
  local burst_offset = e * tonumber(ARGV[a + 2])
  local base = tonumber(ARGV[a + 3])
  local cap = tonumber(ARGV[a + 4])
  local decay = tonumber(ARGV[a + 5])
  local want = tonumber(ARGV[a + 6])
  local blockonly = ARGV[a + 7] == '1'

  if blockonly then
    local p = penalty(pk, decay)
    if now < p.blocked then
      refused = true
      p.last = now
      dirty[pk] = decay
      out[i] = {0, 0, p.blocked - now, 0, 1, p.level, 0, p.blocked - now, 0, 0, 1}
    else
      out[i] = {1, 0, -1, 0, 0, p.level, 1, 0, 0, 0, 1}
    end
  else

  if stored[tk] == nil then
    stored[tk] = tonumber(redis.call('GET', tk)) or now
  end
  local tat = math.max(tats[tk] or stored[tk], now)
  local new_tat = tat + e
  local diff = now - (new_tat - burst_offset)
  local allowed = diff >= 0
  local retry = 0
  if not allowed then retry = -diff end

  local penalised, level, blocked_for = 0, 0, 0
  if base > 0 then
    local p = penalty(pk, decay)
    if now < p.blocked then
      allowed = false
      penalised = 1
      retry = math.max(retry, p.blocked - now)
    elseif not allowed and now < p.refused then
      p.level = p.level + 1
      local block = base
      for _ = 2, p.level do
        if block >= cap then break end
        block = block * 2
      end
      block = math.min(block, cap)
      p.blocked = now + block
      penalised = 1
      retry = math.max(retry, block)
    end
    if not allowed then
      p.last = now
      p.refused = math.max(p.refused, now + retry)
      dirty[pk] = decay
    end
    if now < p.blocked then blocked_for = p.blocked - now end
    level = p.level
  end

  if allowed then
    -- Up to want events, as many as are available (diff >= 0: one is).
    local granted = math.min(want, floordiv(diff, e) + 1)
    new_tat = tat + granted * e
    diff = now - (new_tat - burst_offset)
    tats[tk] = new_tat
    out[i] = {1, floordiv(diff, e), -1, new_tat - now, 0, level, granted, 0, e, burst_offset, 0}
  else
    refused = true
    out[i] = {0, 0, retry, tat - now, penalised, level, 0, blocked_for, e, burst_offset, 0}
  end
  end
end

if refused then
  -- Nothing is counted: the checks that allowed report their key as it
  -- stands, and the refused ones with a penalty record it.
  for i = 1, n do
    local o = out[i]
    if o[1] == 1 and o[11] == 1 then
      o[7] = 0
    elseif o[1] == 1 then
      local tat = math.max(stored[KEYS[2 * i - 1]], now)
      o[2] = floordiv(now - tat + o[10], o[9])
      o[4] = tat - now
      o[7] = 0
    end
  end
  for pk, decay in pairs(dirty) do
    local p = pens[pk]
    local expires = math.max(p.last + decay, p.blocked, p.refused)
    redis.call('SET', pk, string.format('%.0f %.0f %.0f %.0f', p.level, p.blocked, p.refused, p.last),
      'PX', math.ceil((expires - now) / 1000))
  end
else
  for tk, tat in pairs(tats) do
    redis.call('SET', tk, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  end
end

local reply = {}
for i = 1, n do
  for j = 1, 8 do reply[#reply + 1] = out[i][j] end
end
return reply
`)

// redisMulti is the MultiLimiter on Redis: one script call per CheckAll,
// on Redis's clock, so every node shares the counts.
//
// Redis Cluster: a script may only touch keys of one hash slot, and the
// keys of one call (an IP, an account, an email address) hash to different
// slots, so CheckAll fails with CROSSSLOT on a cluster unless the prefix
// carries a hash tag (such as "{ratelimit}:"), which puts every limiter key
// on one shard. Our deployments use a single Redis (or Sentinel), where
// any keys go.
type redisMulti struct {
	client redis.UniversalClient
	prefix string
}

// NewRedisMulti returns a MultiLimiter on Redis. A check's key is stored
// under prefix+"rl:"+key (its TAT, expiring when the key is back to a full
// burst) and prefix+"rl-penalty:"+key (its penalty state, expiring a Decay
// after its last refusal, or when its block ends if later).
func NewRedisMulti(client redis.UniversalClient, prefix string) MultiLimiter {
	return &redisMulti{client: client, prefix: prefix}
}

func (r *redisMulti) tatKey(key string) string     { return r.prefix + "rl:" + key }
func (r *redisMulti) penaltyKey(key string) string { return r.prefix + "rl-penalty:" + key }

// CheckAll implements MultiLimiter.
func (r *redisMulti) CheckAll(ctx context.Context, checks []Check) ([]CheckResult, error) {
	if len(checks) == 0 {
		return []CheckResult{}, nil
	}
	rules, err := compile(checks)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, 2*len(checks))
	args := make([]any, 0, 7*len(checks))
	for i, c := range checks {
		ru := rules[i]
		keys = append(keys, r.tatKey(c.Key), r.penaltyKey(c.Key))
		blockOnly := 0
		if ru.blockOnly {
			blockOnly = 1
		}
		args = append(args, micros(ru.emission), c.Limit.Burst, micros(ru.base), micros(ru.max), micros(ru.decay), ru.want, blockOnly)
	}
	reply, err := checkAllScript.Run(ctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %w", rediskv.MapUnavailable(err))
	}
	if len(reply) != 8*len(checks) {
		return nil, fmt.Errorf("ratelimit: script replied %d values for %d checks", len(reply), len(checks))
	}
	results := make([]CheckResult, len(checks))
	for i := range results {
		v := reply[8*i : 8*i+8]
		retry := time.Duration(-1)
		if v[2] >= 0 {
			retry = time.Duration(v[2]) * time.Microsecond
		}
		results[i] = CheckResult{
			Allowed:    v[0] == 1,
			Remaining:  int(v[1]),
			RetryAfter: retry,
			ResetAfter: time.Duration(v[3]) * time.Microsecond,
			Penalised:  v[4] == 1,
			Level:      int(v[5]),
			Granted:    int(v[6]),
			BlockedFor: time.Duration(v[7]) * time.Microsecond,
		}
	}
	return results, nil
}

// Lift implements MultiLimiter.
func (r *redisMulti) Lift(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.tatKey(key), r.penaltyKey(key)).Err(); err != nil {
		return fmt.Errorf("ratelimit: %w", rediskv.MapUnavailable(err))
	}
	return nil
}

// punishScript raises the penalty level of KEYS[1] (its state as
// checkAllScript keeps it) and blocks it; ARGV are the penalty's base, max
// and decay in microseconds. It replies the new level and the block left,
// in microseconds. It mirrors memoryMulti.Punish.
var punishScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local base, cap, decay = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local p = {level = 0, blocked = 0, refused = 0, last = 0}
local v = redis.call('GET', KEYS[1])
if v then
  local l, b, r, last = string.match(v, '^(%d+) (%d+) (%d+) (%d+)$')
  if l then
    p = {level = tonumber(l), blocked = tonumber(b), refused = tonumber(r), last = tonumber(last)}
  end
end
if p.level > 0 and now - p.last >= decay then p.level = 0 end
p.level = p.level + 1
local block = base
for _ = 2, p.level do
  if block >= cap then break end
  block = block * 2
end
block = math.min(block, cap)
p.blocked = math.max(p.blocked, now + block)
p.last = now
p.refused = math.max(p.refused, p.blocked)
local expires = math.max(p.last + decay, p.blocked)
redis.call('SET', KEYS[1], string.format('%.0f %.0f %.0f %.0f', p.level, p.blocked, p.refused, p.last),
  'PX', math.ceil((expires - now) / 1000))
return {p.level, p.blocked - now}
`)

// Punish implements MultiLimiter.
func (r *redisMulti) Punish(ctx context.Context, key string, p Penalty) (Punishment, error) {
	ru, err := penaltyRule(p)
	if err != nil {
		return Punishment{}, err
	}
	reply, err := punishScript.Run(ctx, r.client, []string{r.penaltyKey(key)}, micros(ru.base), micros(ru.max), micros(ru.decay)).Int64Slice()
	if err != nil {
		return Punishment{}, fmt.Errorf("ratelimit: %w", rediskv.MapUnavailable(err))
	}
	if len(reply) != 2 {
		return Punishment{}, fmt.Errorf("ratelimit: punish script replied %d values", len(reply))
	}
	return Punishment{Level: int(reply[0]), BlockedFor: time.Duration(reply[1]) * time.Microsecond}, nil
}

func micros(d time.Duration) int64 { return int64(d / time.Microsecond) }
