package security

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Errors of the admin API.
var (
	// ErrIncidentNotFound is an incident ID that does not exist.
	ErrIncidentNotFound = errors.New("security: no such incident")
	// ErrAlreadyResolved is a resolve of an incident resolved already:
	// the first resolution (its note, who and when) stands.
	ErrAlreadyResolved = errors.New("security: incident already resolved")
)

// Errors maps this package's errors to problems.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrIncidentNotFound, http.StatusNotFound, "not_found", "No security incident has this ID."),
		httpapi.MapError(ErrAlreadyResolved, http.StatusConflict, "incident_resolved", "This incident is resolved already."),
	}
}

// AdminTx is what a resolution writes in one transaction: the incident,
// its audit event, and the event webhooks tell receivers of.
type AdminTx interface {
	store.SecurityStore
	store.AuditLog
	Publish(ctx context.Context, e event.Event) error
}

// Store is the storage the admin service uses.
type Store interface {
	store.SecurityStore
	InTx(ctx context.Context, fn func(AdminTx) error) error
}

// Deps are what a Service is built from.
type Deps struct {
	Store Store
	Now   func() time.Time
}

// Service serves the security events and incidents to administrators.
type Service struct {
	d Deps
}

// New returns a Service.
func New(d Deps) (*Service, error) {
	if err := require.Deps("security", map[string]bool{"Store": d.Store != nil}); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{d: d}, nil
}

// Events lists security events, newest first.
func (s *Service) Events(ctx context.Context, f store.SecurityEventFilter) ([]store.SecurityEvent, string, error) {
	return s.d.Store.ListSecurityEvents(ctx, f)
}

// Incidents lists security incidents, newest first.
func (s *Service) Incidents(ctx context.Context, f store.SecurityIncidentFilter) ([]store.SecurityIncident, string, error) {
	return s.d.Store.ListSecurityIncidents(ctx, f)
}

// Incident returns an incident and a page of its events (newest first,
// from cursor), or ErrIncidentNotFound.
func (s *Service) Incident(ctx context.Context, id, cursor string) (store.SecurityIncident, []store.SecurityEvent, string, error) {
	inc, err := s.d.Store.GetSecurityIncident(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.SecurityIncident{}, nil, "", ErrIncidentNotFound
	} else if err != nil {
		return store.SecurityIncident{}, nil, "", err
	}
	events, next, err := s.d.Store.ListSecurityEvents(ctx, store.SecurityEventFilter{IncidentID: id, Cursor: cursor, Limit: store.MaxSecurityLimit})
	if err != nil {
		return store.SecurityIncident{}, nil, "", err
	}
	return inc, events, next, nil
}

// Resolve marks incident id resolved by the administrator m describes,
// with a note, and audits it (security.incident_resolved) in the same
// transaction. An incident resolved already is ErrAlreadyResolved; one
// that does not exist ErrIncidentNotFound.
func (s *Service) Resolve(ctx context.Context, id, note string, m httpapi.Meta) (store.SecurityIncident, error) {
	now := s.d.Now().UTC()
	var inc store.SecurityIncident
	err := s.d.Store.InTx(ctx, func(tx AdminTx) error {
		var err error
		inc, err = tx.GetSecurityIncidentForUpdate(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrIncidentNotFound
		} else if err != nil {
			return err
		}
		if inc.Status == store.IncidentResolved {
			return ErrAlreadyResolved
		}
		inc.Status, inc.ResolvedAt, inc.ResolvedBy, inc.Note = store.IncidentResolved, now, m.ActorID, note
		if inc, err = tx.UpdateSecurityIncident(ctx, inc); err != nil {
			return err
		}
		if err := tx.AppendAuditEvent(ctx, store.AuditEvent{
			OccurredAt: now, ActorID: m.ActorID, SubjectID: inc.ID, Action: "security.incident_resolved",
			IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID,
			Data: map[string]any{"type": inc.Type, "key": inc.Key, "note": note, "event_count": inc.EventCount},
		}); err != nil {
			return err
		}
		return tx.Publish(ctx, event.SecurityIncidentResolved{Incident: inc, Meta: m})
	})
	return inc, err
}
