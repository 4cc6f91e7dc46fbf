package kv

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Backoff bounds of Listen's resubscribing.
const (
	listenMinBackoff = 50 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

// Listen subscribes to channel and returns once subscribed; handle then
// gets every message's payload in the background until ctx ends. Delivery
// is at most once, so when the subscription ends early Listen calls lost
// (the caller drops what a missed message could have changed, typically a
// whole cache), resubscribes with backoff and calls lost again once
// subscribed (for what was published meanwhile). The per-node caches that
// other nodes invalidate (permissions, API keys) are kept this way.
func Listen(ctx context.Context, s Store, channel string, handle func(payload []byte), lost func(), log *slog.Logger) error {
	sub, err := s.Subscribe(ctx, channel)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", channel, err)
	}
	go func() {
		for {
			listenUntilClosed(ctx, sub, handle)
			_ = sub.Close()
			if ctx.Err() != nil {
				return
			}
			log.WarnContext(ctx, "a subscription ended; dropping what it kept fresh and resubscribing", "channel", channel)
			lost()
			if sub = resubscribe(ctx, s, channel, log); sub == nil {
				return
			}
			lost()
		}
	}()
	return nil
}

func listenUntilClosed(ctx context.Context, sub Subscription, handle func([]byte)) {
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-sub.C():
			if !ok {
				return
			}
			handle(msg.Payload)
		}
	}
}

// resubscribe tries until it succeeds or ctx ends (nil).
func resubscribe(ctx context.Context, s Store, channel string, log *slog.Logger) Subscription {
	wait := listenMinBackoff
	for {
		sub, err := s.Subscribe(ctx, channel)
		if err == nil {
			return sub
		}
		if ctx.Err() != nil {
			return nil
		}
		log.WarnContext(ctx, "resubscribing failed", "channel", channel, "error", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, listenMaxBackoff)
	}
}
