package ratelimit

import (
	"context"
	"fmt"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	rediskv "github.com/gatehouse/gatehouse/internal/kv/redis"
)

// redisLimiter keeps the limiter state in Redis, through redis_rate, whose
// Lua script reads and updates a key's TAT in one atomic step, on Redis's
// clock, so every node shares the limits.
type redisLimiter struct {
	limiter *redis_rate.Limiter
	prefix  string
}

// NewRedis returns a Limiter on Redis. Its keys are "rate:" (which
// redis_rate adds) followed by prefix and the caller's key, and expire when
// they are back to a full burst.
func NewRedis(client redis.UniversalClient, prefix string) Limiter {
	return &redisLimiter{limiter: redis_rate.NewLimiter(client), prefix: prefix}
}

// AllowN implements Limiter.
func (r *redisLimiter) AllowN(ctx context.Context, key string, limit Limit, n int) (Result, error) {
	if _, err := limit.interval(n); err != nil {
		return Result{}, err
	}
	l := redis_rate.Limit{Rate: limit.Rate, Burst: limit.Burst, Period: limit.Period}
	res, err := r.limiter.AllowN(ctx, r.prefix+key, l, n)
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: %w", rediskv.MapUnavailable(err))
	}
	return Result{
		Allowed:    res.Allowed,
		Remaining:  res.Remaining,
		RetryAfter: res.RetryAfter,
		ResetAfter: res.ResetAfter,
	}, nil
}

// Reset implements Limiter.
func (r *redisLimiter) Reset(ctx context.Context, key string) error {
	if err := r.limiter.Reset(ctx, r.prefix+key); err != nil {
		return fmt.Errorf("ratelimit: %w", rediskv.MapUnavailable(err))
	}
	return nil
}
