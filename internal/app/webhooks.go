package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/mail"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

// webhookDestinations is where webhooks may go: public addresses only
// unless GATEHOUSE_WEBHOOK_ALLOW_PRIVATE, https only in production.
func webhookDestinations(cfg *config.Config) delivery.Destinations {
	return delivery.Destinations{AllowPrivate: cfg.Webhooks.AllowPrivate, RequireHTTPS: cfg.Env == config.EnvProduction}
}

// newWebhookService builds the webhook endpoints, outbox and admin use
// cases.
func newWebhookService(d *deps) (*webhook.Service, error) {
	return webhook.New(webhook.Deps{
		Store:            store.Narrow(d.db.store, func(tx store.Store) webhook.Tx { return tx }),
		Jobs:             d.queue,
		Keyring:          d.keys,
		NewSecret:        delivery.NewSecret,
		CheckDestination: webhookDestinations(d.cfg).Check,
		SecretOverlap:    d.cfg.Webhooks.SecretOverlap,
		Now:              d.now,
		Log:              d.log,
	})
}

// addWebhookWorkers adds the delivery worker (one attempt per job, the
// next one scheduled in the transaction that records it) and the
// retention job's worker. They join the bundle after the queue was made
// (the worker enqueues through it), before it starts.
func addWebhookWorkers(workers *river.Workers, d *deps) error {
	schedule, err := delivery.ParseSchedule(d.cfg.Webhooks.RetrySchedule)
	if err != nil {
		return fmt.Errorf("GATEHOUSE_WEBHOOK_RETRY_SCHEDULE: %w", err)
	}
	w, err := delivery.NewWorker(delivery.Deps{
		Store:        store.Narrow(d.db.store, func(tx store.Store) delivery.Tx { return tx }),
		Jobs:         d.queue,
		Secrets:      d.keys,
		Destinations: webhookDestinations(d.cfg),
		Schedule:     schedule,
		Timeout:      d.cfg.Webhooks.Timeout,
		DisableAfter: d.cfg.Webhooks.DisableAfter,
		Notify:       notifyAdmins(d.db.store, d.queue, d.keys, d.log),
		Metrics:      delivery.NewMetrics(d.reg, d.db.store, d.now, d.log),
		Now:          d.now,
		Log:          d.log,
	})
	if err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, w); err != nil {
		return err
	}
	purge, err := delivery.NewPurgeWorker(delivery.PurgeDeps{Store: d.db.store, Retention: d.cfg.Webhooks.Retention, Now: d.now, Log: d.log})
	if err != nil {
		return err
	}
	return river.AddWorkerSafely(workers, purge)
}

// mailQueue is what notifyAdmins enqueues with.
type mailQueue interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// notifyAdmins emails every active administrator that a webhook endpoint
// was disabled, as durable mail jobs.
func notifyAdmins(st store.UserStore, q mailQueue, keys *secret.Keyring, log *slog.Logger) func(context.Context, store.WebhookEndpoint) error {
	return func(ctx context.Context, ep store.WebhookEndpoint) error {
		why := map[string]string{
			store.EndpointGone:    "it answered 410 Gone",
			store.EndpointFailing: "every delivery to it has failed for too long",
		}[ep.DisabledReason]
		if why == "" {
			why = "reason: " + ep.DisabledReason
		}
		data := mail.Data{Event: fmt.Sprintf("The webhook endpoint %s (%s) was disabled: %s.", ep.ID, redactURL(ep.URL), why), Time: ep.UpdatedAt}
		sent, err := store.ForEachActiveAdmin(ctx, st, func(a store.User) error {
			d := data
			d.RecipientName = a.Name
			args, err := mail.NewSendArgs(keys, mail.WebhookDisabled, a.Email, d, "")
			if err != nil {
				return err
			}
			_, err = q.Insert(ctx, args, nil)
			return err
		})
		if err != nil {
			return err
		}
		if sent == 0 {
			log.WarnContext(ctx, "webhook endpoint disabled, and no active administrator to tell", "endpoint_id", ep.ID, "reason", ep.DisabledReason)
		}
		return nil
	}
}

// redactURL is an endpoint's URL without its query string, which may carry
// a receiver's token.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}
