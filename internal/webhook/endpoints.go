package webhook

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/webhook/catalog"
	"github.com/gatehouse/gatehouse/internal/webhook/delivery"
)

// Limits of an endpoint's fields.
const (
	MaxURLLength         = 2048
	MaxDescriptionLength = 500 // characters
	MaxEvents            = 100 // types and patterns
)

// EndpointInput is what an endpoint is created with.
type EndpointInput struct {
	URL string
	// Events are event types of the catalogue ("user.created"), patterns
	// "prefix.*" whose prefix has catalogue types ("user.*"), or "*".
	Events      []string
	Description string
	// OrganizationID, when set, scopes the endpoint to the events about
	// that organisation's members. It cannot change afterwards.
	OrganizationID string
	// Enabled is true when nil.
	Enabled *bool
}

// EndpointPatch is a change of an endpoint; nil members keep their value.
type EndpointPatch struct {
	URL         *string
	Events      *[]string
	Description *string
	// Enabled true enables a disabled endpoint (clearing why it was
	// disabled and since when it fails); false disables an enabled one
	// (reason "admin"), and leaves a disabled one as it is.
	Enabled *bool
}

// CreateEndpoint registers an endpoint and returns it with its signing
// secret, which is never shown again (it is stored sealed). Bad input is
// a validation problem naming each field; a URL CheckDestination refuses
// is one whose message says why.
func (s *Service) CreateEndpoint(ctx context.Context, m httpapi.Meta, in EndpointInput) (store.WebhookEndpoint, string, error) {
	var fe []httpapi.FieldError
	in.URL, fe = s.checkURL(ctx, in.URL, fe)
	if err := ctx.Err(); err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	in.Events, fe = checkEvents(in.Events, fe)
	in.Description, fe = checkDescription(in.Description, fe)
	if in.OrganizationID != "" && !httpapi.ValidText(in.OrganizationID) {
		fe = append(fe, httpapi.FieldError{Field: "organization_id", Rule: "exists", Message: "No organisation has this ID."})
	}
	if len(fe) > 0 {
		return store.WebhookEndpoint{}, "", httpapi.Validation(fe...)
	}
	id, err := s.d.NewID(endpointPrefix)
	if err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	plain, err := s.d.NewSecret()
	if err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	sealed, err := delivery.SealSecret(s.d.Keyring, id, plain)
	if err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	e := store.WebhookEndpoint{
		ID: id, URL: in.URL, Events: in.Events, Description: in.Description, OrganizationID: in.OrganizationID,
		Enabled: in.Enabled == nil || *in.Enabled, Secret: sealed, CreatedAt: s.now(),
	}
	if !e.Enabled {
		e.DisabledReason = store.EndpointDisabledByAdmin
	}
	err = s.d.Store.InTx(ctx, func(tx Tx) error {
		var err error
		e, err = tx.CreateWebhookEndpoint(ctx, e)
		if errors.Is(err, store.ErrNotFound) {
			// The one reference an endpoint holds.
			return httpapi.Validation(httpapi.FieldError{Field: "organization_id", Rule: "exists", Message: "No organisation has this ID."})
		} else if err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, s.auditEvent(m, e.ID, "webhook.endpoint_created", map[string]any{
			"url": redactURL(e.URL), "events": e.Events, "description": e.Description,
			"organization_id": e.OrganizationID, "enabled": e.Enabled,
		}))
	})
	if err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	return e, plain, nil
}

// GetEndpoint returns endpoint id.
func (s *Service) GetEndpoint(ctx context.Context, id string) (store.WebhookEndpoint, error) {
	e, err := s.d.Store.GetWebhookEndpoint(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.WebhookEndpoint{}, ErrEndpointNotFound
	}
	return e, err
}

// ListEndpoints returns every endpoint, oldest first.
func (s *Service) ListEndpoints(ctx context.Context) ([]store.WebhookEndpoint, error) {
	return s.d.Store.ListWebhookEndpoints(ctx)
}

// getEndpoint reads endpoint id in tx and locks it until tx ends: the
// change made from it cannot undo a concurrent one (the delivery worker
// disabling the endpoint).
func getEndpoint(ctx context.Context, tx Tx, id string) (store.WebhookEndpoint, error) {
	e, err := tx.GetWebhookEndpointForUpdate(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.WebhookEndpoint{}, ErrEndpointNotFound
	}
	return e, err
}

// UpdateEndpoint applies p to endpoint id and returns it as updated; a
// patch that changes nothing writes nothing. The URL is checked as at
// creation.
func (s *Service) UpdateEndpoint(ctx context.Context, m httpapi.Meta, id string, p EndpointPatch) (store.WebhookEndpoint, error) {
	var fe []httpapi.FieldError
	if p.URL != nil {
		var u string
		u, fe = s.checkURL(ctx, *p.URL, fe)
		p.URL = &u
		if err := ctx.Err(); err != nil {
			return store.WebhookEndpoint{}, err
		}
	}
	if p.Events != nil {
		var ev []string
		ev, fe = checkEvents(*p.Events, fe)
		p.Events = &ev
	}
	if p.Description != nil {
		var d string
		d, fe = checkDescription(*p.Description, fe)
		p.Description = &d
	}
	if len(fe) > 0 {
		return store.WebhookEndpoint{}, httpapi.Validation(fe...)
	}
	var out store.WebhookEndpoint
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		cur, err := getEndpoint(ctx, tx, id)
		if err != nil {
			return err
		}
		next := cur
		changes := map[string]any{}
		change := func(field string, old, new any) { changes[field] = map[string]any{"old": old, "new": new} }
		if p.URL != nil && *p.URL != cur.URL {
			next.URL = *p.URL
			change("url", redactURL(cur.URL), redactURL(next.URL))
		}
		if p.Events != nil && !slices.Equal(*p.Events, cur.Events) {
			next.Events = *p.Events
			change("events", cur.Events, next.Events)
		}
		if p.Description != nil && *p.Description != cur.Description {
			next.Description = *p.Description
			change("description", cur.Description, next.Description)
		}
		if p.Enabled != nil && *p.Enabled != cur.Enabled {
			next.Enabled = *p.Enabled
			if next.Enabled {
				next.DisabledReason, next.FailingSince = "", time.Time{}
			} else {
				next.DisabledReason = store.EndpointDisabledByAdmin
			}
			change("enabled", cur.Enabled, next.Enabled)
			if cur.DisabledReason != "" {
				changes["disabled_reason"] = cur.DisabledReason
			}
		}
		if len(changes) == 0 {
			out = cur
			return nil
		}
		next.UpdatedAt = s.now()
		if out, err = tx.UpdateWebhookEndpoint(ctx, next); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, s.auditEvent(m, id, "webhook.endpoint_updated", changes))
	})
	return out, err
}

// DeleteEndpoint removes endpoint id with its deliveries (pending ones
// are not sent).
func (s *Service) DeleteEndpoint(ctx context.Context, m httpapi.Meta, id string) error {
	return s.d.Store.InTx(ctx, func(tx Tx) error {
		e, err := getEndpoint(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := tx.DeleteWebhookEndpoint(ctx, id); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, s.auditEvent(m, id, "webhook.endpoint_deleted", map[string]any{
			"url": redactURL(e.URL), "events": e.Events, "organization_id": e.OrganizationID,
		}))
	})
}

// RotateSecret gives endpoint id a new signing secret and returns it (it
// is never shown again). The old one keeps signing alongside it for
// SecretOverlap; a previous secret still in its overlap (a second
// rotation within it) stops at once.
func (s *Service) RotateSecret(ctx context.Context, m httpapi.Meta, id string) (string, error) {
	plain, err := s.d.NewSecret()
	if err != nil {
		return "", err
	}
	sealed, err := delivery.SealSecret(s.d.Keyring, id, plain)
	if err != nil {
		return "", err
	}
	now := s.now()
	err = s.d.Store.InTx(ctx, func(tx Tx) error {
		e, err := getEndpoint(ctx, tx, id)
		if err != nil {
			return err
		}
		e.PreviousSecret, e.PreviousSecretExpiresAt = "", time.Time{}
		if s.d.SecretOverlap > 0 {
			e.PreviousSecret, e.PreviousSecretExpiresAt = e.Secret, now.Add(s.d.SecretOverlap)
		}
		e.Secret, e.UpdatedAt = sealed, now
		if _, err := tx.UpdateWebhookEndpoint(ctx, e); err != nil {
			return err
		}
		data := map[string]any{"previous_secret_expires_at": nil}
		if !e.PreviousSecretExpiresAt.IsZero() {
			data["previous_secret_expires_at"] = e.PreviousSecretExpiresAt.Format(time.RFC3339Nano)
		}
		return tx.AppendAuditEvent(ctx, s.auditEvent(m, id, "webhook.secret_rotated", data))
	})
	if err != nil {
		return "", err
	}
	return plain, nil
}

// checkURL validates an endpoint URL: an absolute http or https URL with
// a host, without credentials or a fragment, that CheckDestination
// accepts. It returns the URL as given.
func (s *Service) checkURL(ctx context.Context, raw string, fe []httpapi.FieldError) (string, []httpapi.FieldError) {
	bad := func(rule, msg string) (string, []httpapi.FieldError) {
		return raw, append(fe, httpapi.FieldError{Field: "url", Rule: rule, Message: msg})
	}
	if raw == "" {
		return bad("required", "A URL is required.")
	}
	if len(raw) > MaxURLLength || !httpapi.ValidText(raw) ||
		strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad("url", "The URL must be at most 2048 bytes, without spaces or control characters.")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "" {
		return bad("url", "The URL must be an absolute http or https URL with a host, such as https://hooks.example.com/gatehouse.")
	}
	if u.User != nil {
		return bad("url", "The URL must not carry credentials (user:password@).")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return bad("url", "The URL must not have a fragment (#).")
	}
	if err := s.d.CheckDestination(ctx, raw); err != nil {
		if ctx.Err() != nil {
			return raw, fe // the caller returns ctx.Err()
		}
		why := err.Error()
		var de *delivery.DestinationError
		if errors.As(err, &de) {
			why = de.Reason
		}
		return bad("destination", "Webhooks cannot be sent to this URL: "+why+".")
	}
	return raw, fe
}

// redactURL is an endpoint URL as the audit log keeps it: without its
// query string, which may carry a receiver's token ("?token=…" is a common
// way to authenticate webhooks).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "", false
		return u.String() + "?…"
	}
	return u.String()
}

// checkEvents validates subscriptions and returns them without repeats,
// in the order given.
func checkEvents(events []string, fe []httpapi.FieldError) ([]string, []httpapi.FieldError) {
	if len(events) == 0 {
		return nil, append(fe, httpapi.FieldError{Field: "events", Rule: "required",
			Message: "Subscribe to at least one event type, a pattern such as user.* or *."})
	}
	var out []string
	for _, e := range events {
		if !validSubscription(e) {
			return nil, append(fe, httpapi.FieldError{Field: "events", Rule: "event_type",
				Message: "Unknown event type or pattern " + quote(e) + " (see GET /v1/webhooks/event-types)."})
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	if len(out) > MaxEvents {
		return nil, append(fe, httpapi.FieldError{Field: "events", Rule: "max", Message: "An endpoint subscribes to at most 100 types or patterns."})
	}
	return out, fe
}

// quote quotes s for a message, cut to 100 bytes.
func quote(s string) string {
	return `"` + httpapi.CleanText(s, 100) + `"`
}

// validSubscription reports whether s is "*", a catalogue type, or a
// pattern "prefix.*" with catalogue types under prefix.
func validSubscription(s string) bool {
	if s == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(s, ".*"); ok {
		if prefix == "" || strings.Contains(prefix, "*") {
			return false
		}
		for _, t := range catalog.Types() {
			if strings.HasPrefix(t.Name, prefix+".") {
				return true
			}
		}
		return false
	}
	_, ok := catalog.Lookup(s)
	return ok
}

// Subscribes reports whether subscriptions (an endpoint's Events) take
// events of type eventType: one of them is "*", the type itself, or a
// pattern "prefix.*" with eventType under prefix.
func Subscribes(subscriptions []string, eventType string) bool {
	for _, s := range subscriptions {
		if s == "*" || s == eventType {
			return true
		}
		if prefix, ok := strings.CutSuffix(s, "*"); ok && strings.HasSuffix(prefix, ".") && strings.HasPrefix(eventType, prefix) {
			return true
		}
	}
	return false
}

// checkDescription trims a description and checks its length.
func checkDescription(d string, fe []httpapi.FieldError) (string, []httpapi.FieldError) {
	d = strings.TrimSpace(d)
	if !httpapi.ValidText(d) || utf8.RuneCountInString(d) > MaxDescriptionLength {
		return d, append(fe, httpapi.FieldError{Field: "description", Rule: "max", Message: "The description is at most 500 characters."})
	}
	return d, fe
}
