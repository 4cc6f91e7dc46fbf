package admin

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Tables are the tables administration reads and writes: accounts,
// clients, organisations and their members, and the audit log every
// action lands in.
type Tables interface {
	GetUser(ctx context.Context, id string) (store.User, error)
	ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, string, error)
	SoftDeleteUser(ctx context.Context, id string, at time.Time) error
	ListClients(ctx context.Context) ([]store.Client, error)
	DeleteClient(ctx context.Context, id string) error
	SetClientRateLimits(ctx context.Context, id, tier string, exempt bool, at time.Time) (store.Client, error)
	store.OrgStore
	store.AuditLog
}

// Tx is the store inside one of administration's transactions.
type Tx interface {
	GetUserForUpdate(ctx context.Context, id string) (store.User, error)
	UpdateUser(ctx context.Context, u store.User) (store.User, error)
	store.AuditLog
}

// Store is the storage administration needs (see store.Narrow).
type Store interface {
	Tables
	InTx(ctx context.Context, fn func(Tx) error) error
}

// Sessions ends sessions: one user's, or all those before a time (the
// incident kill switch).
type Sessions interface {
	List(ctx context.Context, userID string) ([]store.Session, error)
	RevokeUserSessions(ctx context.Context, userID, except, reason string) error
	RevokeIssuedBefore(ctx context.Context, t time.Time) (int64, error)
}

// Deps are what the administration service is built from (see New).
type Deps struct {
	Store    Store
	Sessions Sessions
	Now      func() time.Time
}

// Service carries out administrators' actions, each with its audit
// event. Build it with New; it is not changed afterwards.
type Service struct{ d Deps }

// New checks d and builds the service. Now defaults to time.Now.
func New(d Deps) (*Service, error) {
	if err := require.Deps("admin", map[string]bool{"Store": d.Store != nil, "Sessions": d.Sessions != nil}); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{d: d}, nil
}

// event is the audit event of an action by the administrator of m.
func (s *Service) event(m httpapi.Meta, subject, action string, data map[string]any) store.AuditEvent {
	return store.AuditEvent{
		OccurredAt: s.d.Now().UTC(), ActorID: m.ActorID, SubjectID: subject, Action: action,
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: data,
	}
}

func (s *Service) audit(ctx context.Context, m httpapi.Meta, subject, action string, data map[string]any) error {
	return s.d.Store.AppendAuditEvent(ctx, s.event(m, subject, action, data))
}

// ListUsers returns a page of accounts.
func (s *Service) ListUsers(ctx context.Context, f store.UserFilter) ([]store.User, string, error) {
	return s.d.Store.ListUsers(ctx, f)
}

// GetUser returns an account.
func (s *Service) GetUser(ctx context.Context, id string) (store.User, error) {
	return s.d.Store.GetUser(ctx, id)
}

// SetStatus enables or disables an account, with its audit event in the
// same transaction; a disabled account's sessions end.
func (s *Service) SetStatus(ctx context.Context, m httpapi.Meta, id string, status store.UserStatus) (store.User, error) {
	var out store.User
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, id)
		if err != nil {
			return err
		}
		old := u.Status
		u.Status = status
		if out, err = tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, s.event(m, id, "admin.user_"+map[store.UserStatus]string{store.UserDisabled: "disabled", store.UserActive: "enabled"}[status],
			map[string]any{"status": map[string]any{"old": string(old), "new": string(status)}}))
	})
	if err != nil {
		return store.User{}, err
	}
	if status == store.UserDisabled {
		if err := s.d.Sessions.RevokeUserSessions(ctx, id, "", "account_disabled"); err != nil {
			return store.User{}, err
		}
	}
	return out, nil
}

// DeleteUser deletes an account (softly) and ends its sessions.
func (s *Service) DeleteUser(ctx context.Context, m httpapi.Meta, id string) error {
	if err := s.d.Store.SoftDeleteUser(ctx, id, s.d.Now().UTC()); err != nil {
		return err
	}
	if err := s.d.Sessions.RevokeUserSessions(ctx, id, "", "account_deleted"); err != nil {
		return err
	}
	return s.audit(ctx, m, id, "admin.user_deleted", nil)
}

// UserSessions lists an account's live sessions.
func (s *Service) UserSessions(ctx context.Context, id string) ([]store.Session, error) {
	if _, err := s.d.Store.GetUser(ctx, id); err != nil {
		return nil, err
	}
	return s.d.Sessions.List(ctx, id)
}

// RevokeUserSessions ends every session of an account.
func (s *Service) RevokeUserSessions(ctx context.Context, m httpapi.Meta, id string) error {
	if _, err := s.d.Store.GetUser(ctx, id); err != nil {
		return err
	}
	if err := s.d.Sessions.RevokeUserSessions(ctx, id, "", "revoked_by_admin"); err != nil {
		return err
	}
	return s.audit(ctx, m, id, "admin.sessions_revoked", nil)
}

// RevokeIssuedBefore is the incident kill switch (see
// session.Service.RevokeIssuedBefore); it returns the number of sessions
// it ended.
func (s *Service) RevokeIssuedBefore(ctx context.Context, m httpapi.Meta, t time.Time) (int64, error) {
	n, err := s.d.Sessions.RevokeIssuedBefore(ctx, t)
	if err != nil {
		return 0, err
	}
	if err := s.audit(ctx, m, "", "admin.tokens_revoked_before", map[string]any{"before": t.Format(time.RFC3339Nano), "sessions_revoked": n}); err != nil {
		return 0, err
	}
	return n, nil
}

// ListClients lists the registered OAuth clients.
func (s *Service) ListClients(ctx context.Context) ([]store.Client, error) {
	return s.d.Store.ListClients(ctx)
}

// DeleteClient removes an OAuth client.
func (s *Service) DeleteClient(ctx context.Context, m httpapi.Meta, id string) error {
	if err := s.d.Store.DeleteClient(ctx, id); err != nil {
		return err
	}
	return s.audit(ctx, m, id, "admin.client_deleted", nil)
}

// SetClientRateLimits puts a client in a rate-limit tier ("": none) and
// exempts it from rate limits or not (the caller checks the tier).
func (s *Service) SetClientRateLimits(ctx context.Context, m httpapi.Meta, id, tier string, exempt bool) (store.Client, error) {
	c, err := s.d.Store.SetClientRateLimits(ctx, id, tier, exempt, s.d.Now().UTC())
	if err != nil {
		return store.Client{}, err
	}
	return c, s.audit(ctx, m, id, "admin.client_rate_limits_changed", map[string]any{"rate_limit_tier": tier, "rate_limit_exempt": exempt})
}

// ListOrganizations lists every organisation.
func (s *Service) ListOrganizations(ctx context.Context) ([]store.Organization, error) {
	return s.d.Store.ListOrganizations(ctx)
}

// CreateOrganization creates an organisation (its policy checked by the
// caller).
func (s *Service) CreateOrganization(ctx context.Context, m httpapi.Meta, o store.Organization) (store.Organization, error) {
	o, err := s.d.Store.CreateOrganization(ctx, o)
	if err != nil {
		return store.Organization{}, err
	}
	if err := s.audit(ctx, m, o.ID, "admin.organization_created", map[string]any{"slug": o.Slug, "policy": o.Policy}); err != nil {
		return store.Organization{}, err
	}
	return o, nil
}

// GetOrganization returns an organisation and its members.
func (s *Service) GetOrganization(ctx context.Context, id string) (store.Organization, []store.OrgMembership, error) {
	o, err := s.d.Store.GetOrganization(ctx, id)
	if err != nil {
		return store.Organization{}, nil, err
	}
	members, err := s.d.Store.ListMembers(ctx, o.ID)
	if err != nil {
		return store.Organization{}, nil, err
	}
	return o, members, nil
}

// SetOrganizationPolicy replaces an organisation's MFA policy (checked by
// the caller).
func (s *Service) SetOrganizationPolicy(ctx context.Context, m httpapi.Meta, id string, policy map[string]any) (store.Organization, error) {
	o, err := s.d.Store.GetOrganization(ctx, id)
	if err != nil {
		return store.Organization{}, err
	}
	old := o.Policy
	o.Policy = policy
	if o, err = s.d.Store.UpdateOrganization(ctx, o); err != nil {
		return store.Organization{}, err
	}
	if err := s.audit(ctx, m, o.ID, "admin.organization_policy_changed", map[string]any{"policy": map[string]any{"old": old, "new": policy}}); err != nil {
		return store.Organization{}, err
	}
	return o, nil
}

// DeleteOrganization deletes an organisation.
func (s *Service) DeleteOrganization(ctx context.Context, m httpapi.Meta, id string) error {
	if _, err := s.d.Store.GetOrganization(ctx, id); err != nil {
		return err
	}
	if err := s.d.Store.DeleteOrganization(ctx, id); err != nil {
		return err
	}
	return s.audit(ctx, m, id, "admin.organization_deleted", nil)
}

// SetMember makes an account a member of an organisation with a role.
func (s *Service) SetMember(ctx context.Context, m httpapi.Meta, orgID, userID, role string) error {
	if _, err := s.d.Store.GetOrganization(ctx, orgID); err != nil {
		return err
	}
	if _, err := s.d.Store.GetUser(ctx, userID); err != nil {
		return err
	}
	if err := s.d.Store.SetMembership(ctx, store.OrgMembership{OrgID: orgID, UserID: userID, Role: role}); err != nil {
		return err
	}
	return s.audit(ctx, m, userID, "admin.organization_member_set", map[string]any{"organization_id": orgID, "role": role})
}

// RemoveMember takes an account out of an organisation.
func (s *Service) RemoveMember(ctx context.Context, m httpapi.Meta, orgID, userID string) error {
	if err := s.d.Store.RemoveMembership(ctx, orgID, userID); err != nil {
		return err
	}
	return s.audit(ctx, m, userID, "admin.organization_member_removed", map[string]any{"organization_id": orgID})
}
