package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook/catalog"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

// Record is the transactional outbox: subscribed to every event of the
// bus (event.SubscribeAll), it writes the webhook messages of e
// (catalog.Messages) in tx, the transaction of the change e describes,
// so that a rollback loses them with the change and a commit keeps both.
//
// Each message goes to the enabled endpoints that subscribe to its type
// and, for an organisation-scoped endpoint, whose organisation is one the
// message names or one its user belongs to (their memberships are read
// once per user, and only when such an endpoint subscribes). A message
// some endpoint takes is one webhook event (its data the message's data
// as JSON, its time now) with one pending delivery per endpoint, and one
// delivery job each, all in tx. When no endpoint takes any message,
// nothing is written: the cost is the one query listing the enabled
// endpoints, and none for an event without messages.
func (s *Service) Record(ctx context.Context, tx Tx, e event.Event) error {
	msgs := catalog.Messages(e)
	if len(msgs) == 0 {
		return nil
	}
	endpoints, err := tx.ListEnabledWebhookEndpoints(ctx)
	if err != nil || len(endpoints) == 0 {
		return err
	}
	now := s.now()
	var (
		events      []store.WebhookEvent
		deliveries  []store.WebhookDelivery
		memberships map[string][]string // user ID → organisation IDs
	)
	for _, msg := range msgs {
		var targets []store.WebhookEndpoint
		scoped := false
		for _, ep := range endpoints {
			if Subscribes(ep.Events, msg.Type) {
				targets = append(targets, ep)
				scoped = scoped || ep.OrganizationID != ""
			}
		}
		if len(targets) == 0 {
			continue
		}
		orgs := slices.Clone(msg.OrganizationIDs)
		if scoped && msg.UserID != "" {
			ids, ok := memberships[msg.UserID]
			if !ok {
				list, err := tx.UserOrganizations(ctx, msg.UserID)
				if err != nil {
					return fmt.Errorf("webhook: organisations of the event's user: %w", err)
				}
				for _, o := range list {
					ids = append(ids, o.ID)
				}
				if memberships == nil {
					memberships = map[string][]string{}
				}
				memberships[msg.UserID] = ids
			}
			for _, id := range ids {
				if !containsFold(orgs, id) {
					orgs = append(orgs, id)
				}
			}
		}
		targets = slices.DeleteFunc(targets, func(ep store.WebhookEndpoint) bool {
			return ep.OrganizationID != "" && !containsFold(orgs, ep.OrganizationID)
		})
		if len(targets) == 0 {
			continue
		}
		ev, err := s.newEvent(msg, orgs, now)
		if err != nil {
			return err
		}
		events = append(events, ev)
		for _, ep := range targets {
			d, err := s.newDelivery(ep.ID, ev.ID, now)
			if err != nil {
				return err
			}
			deliveries = append(deliveries, d)
		}
	}
	if len(events) == 0 {
		return nil
	}
	for _, ev := range events {
		if err := tx.CreateWebhookEvent(ctx, ev); err != nil {
			return err
		}
	}
	if err := tx.CreateWebhookDeliveries(ctx, deliveries); err != nil {
		return err
	}
	if err := s.enqueue(ctx, tx, deliveries); err != nil {
		return err
	}
	s.d.Log.DebugContext(ctx, "webhook events recorded", "event", e.EventName(), "messages", len(events), "deliveries", len(deliveries))
	return nil
}

// newEvent is the webhook event of msg, which happened at now.
func (s *Service) newEvent(msg catalog.Message, orgs []string, now time.Time) (store.WebhookEvent, error) {
	data, err := json.Marshal(msg.Data)
	if err != nil {
		return store.WebhookEvent{}, fmt.Errorf("webhook: data of %s: %w", msg.Type, err)
	}
	id, err := s.d.NewID(eventPrefix)
	if err != nil {
		return store.WebhookEvent{}, err
	}
	return store.WebhookEvent{
		ID: id, Type: msg.Type, OccurredAt: now, Data: data, UserID: msg.UserID, OrganizationIDs: orgs, CreatedAt: now,
	}, nil
}

// newDelivery is a pending delivery of event eventID to endpoint
// endpointID, created and due at now.
func (s *Service) newDelivery(endpointID, eventID string, now time.Time) (store.WebhookDelivery, error) {
	id, err := s.d.NewID(deliveryPrefix)
	if err != nil {
		return store.WebhookDelivery{}, err
	}
	return store.WebhookDelivery{
		ID: id, EndpointID: endpointID, EventID: eventID, Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now,
	}, nil
}

// enqueue inserts the delivery job of each of ds in tx, in one statement.
func (s *Service) enqueue(ctx context.Context, tx Tx, ds []store.WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(ds))
	for i, d := range ds {
		params[i] = river.InsertManyParams{Args: delivery.DeliverArgs{DeliveryID: d.ID}, InsertOpts: delivery.InsertOpts()}
	}
	_, err := s.d.Jobs.InsertManyTx(ctx, tx.DriverTx(), params)
	return err
}

// containsFold reports whether ids holds id, ignoring case (organisation
// IDs are UUIDs, which the store gives in lower case, and a caller may
// not).
func containsFold(ids []string, id string) bool {
	return slices.ContainsFunc(ids, func(x string) bool { return strings.EqualFold(x, id) })
}

// SendTest sends a webhook.test event to endpoint id, and to it only
// (whatever it subscribes to): one event, one delivery and its job. It
// returns the delivery, pending.
func (s *Service) SendTest(ctx context.Context, m httpapi.Meta, id string) (store.WebhookDelivery, error) {
	var out store.WebhookDelivery
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		ep, err := getEndpoint(ctx, tx, id)
		if err != nil {
			return err
		}
		if !ep.Enabled {
			return ErrEndpointDisabled
		}
		now := s.now()
		ev, err := s.newEvent(catalog.Test(id), nil, now)
		if err != nil {
			return err
		}
		d, err := s.newDelivery(id, ev.ID, now)
		if err != nil {
			return err
		}
		if err := tx.CreateWebhookEvent(ctx, ev); err != nil {
			return err
		}
		if err := tx.CreateWebhookDeliveries(ctx, []store.WebhookDelivery{d}); err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, []store.WebhookDelivery{d}); err != nil {
			return err
		}
		if out, err = tx.GetWebhookDelivery(ctx, d.ID); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, s.auditEvent(m, id, "webhook.test_sent", map[string]any{
			"event_id": ev.ID, "delivery_id": d.ID,
		}))
	})
	return out, err
}
