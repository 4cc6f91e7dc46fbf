package admin

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/internal/event"
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
	SoftDeleteUser(ctx context.Context, id string, at time.Time) error
	GetOrganization(ctx context.Context, id string) (store.Organization, error)
	DeleteOrganization(ctx context.Context, id string) error
	UserOrganizations(ctx context.Context, userID string) ([]store.Organization, error)
	SetMembership(ctx context.Context, m store.OrgMembership) error
	RemoveMembership(ctx context.Context, orgID, userID string) error
	store.AuditLog
	// Publish runs the subscribers of e in this transaction (see
	// package event); an error must roll the transaction back.
	Publish(ctx context.Context, e event.Event) error
}

// Store is the storage administration needs (see event.Narrow).
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

// Lock is a lock on an account's sign-in that an administrator can lift:
// the sign-in's lock after wrong passwords, MFA's after wrong codes.
type Lock interface {
	// Unlock lifts u's lock, if any, and forgets its failures; it reports
	// whether u was locked.
	Unlock(ctx context.Context, u store.User) (bool, error)
}

// Deps are what the administration service is built from (see New).
type Deps struct {
	Store    Store
	Sessions Sessions
	// Locks are the locks POST /v1/admin/users/{id}/unlock lifts, by the
	// name the answer and the events give them (event.LockSignIn,
	// event.LockMFA).
	Locks map[string]Lock
	Now   func() time.Time
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

// SetStatus enables or disables an account, with its audit event and, if
// the status changed, its event.UserStatusChanged in the same
// transaction; a disabled account's sessions end.
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
		if err := tx.AppendAuditEvent(ctx, s.event(m, id, "admin.user_"+map[store.UserStatus]string{store.UserDisabled: "disabled", store.UserActive: "enabled"}[status],
			map[string]any{"status": map[string]any{"old": string(old), "new": string(status)}})); err != nil {
			return err
		}
		if out.Status == old {
			return nil
		}
		return tx.Publish(ctx, event.UserStatusChanged{UserID: id, Status: out.Status, Previous: old, Meta: m})
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

// DeleteUser deletes an account (softly), with its audit event and its
// event.UserDeleted in the same transaction, then ends its sessions.
func (s *Service) DeleteUser(ctx context.Context, m httpapi.Meta, id string) error {
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.SoftDeleteUser(ctx, id, s.d.Now().UTC()); err != nil {
			return err
		}
		if err := tx.AppendAuditEvent(ctx, s.event(m, id, "admin.user_deleted", nil)); err != nil {
			return err
		}
		return tx.Publish(ctx, event.UserDeleted{UserID: id, Email: u.Email, Meta: m})
	})
	if err != nil {
		return err
	}
	return s.d.Sessions.RevokeUserSessions(ctx, id, "", "account_deleted")
}

// Unlock lifts the locks in force on an account's sign-in (Deps.Locks:
// wrong passwords, wrong second-factor codes) and forgets their failures,
// with its audit event and, when a lock was lifted, its
// event.UserUnlocked in the same transaction. It returns the names of the
// locks it lifted (none when the account was not locked). The locks live
// in the ephemeral store: they are lifted inside the transaction, before
// it commits, so an error leaves no record of an unlock that did not
// happen (an unlock whose record then failed to commit leaves the account
// unlocked, unrecorded).
func (s *Service) Unlock(ctx context.Context, m httpapi.Meta, id string) ([]string, error) {
	var lifted []string
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		u, err := tx.GetUserForUpdate(ctx, id)
		if err != nil {
			return err
		}
		lifted = []string{}
		for _, name := range slices.Sorted(maps.Keys(s.d.Locks)) {
			locked, err := s.d.Locks[name].Unlock(ctx, u)
			if err != nil {
				return err
			}
			if locked {
				lifted = append(lifted, name)
			}
		}
		if err := tx.AppendAuditEvent(ctx, s.event(m, id, "admin.user_unlocked", map[string]any{"locks_lifted": lifted})); err != nil {
			return err
		}
		if len(lifted) == 0 {
			return nil
		}
		return tx.Publish(ctx, event.UserUnlocked{UserID: id, Locks: lifted, Meta: m})
	})
	if err != nil {
		return nil, err
	}
	return lifted, nil
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

// DeleteOrganization deletes an organisation, with its audit event and
// its event.OrganizationDeleted in the same transaction.
func (s *Service) DeleteOrganization(ctx context.Context, m httpapi.Meta, id string) error {
	return s.d.Store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.GetOrganization(ctx, id); err != nil {
			return err
		}
		if err := tx.DeleteOrganization(ctx, id); err != nil {
			return err
		}
		if err := tx.AppendAuditEvent(ctx, s.event(m, id, "admin.organization_deleted", nil)); err != nil {
			return err
		}
		return tx.Publish(ctx, event.OrganizationDeleted{OrganizationID: id, Meta: m})
	})
}

// SetMember makes an account a member of an organisation with a role, or
// changes the role of a member. A new member is published
// (event.OrganizationMemberAdded) in the change's transaction.
func (s *Service) SetMember(ctx context.Context, m httpapi.Meta, orgID, userID, role string) error {
	return s.d.Store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.GetOrganization(ctx, orgID); err != nil {
			return err
		}
		if _, err := tx.GetUserForUpdate(ctx, userID); err != nil {
			return err
		}
		orgs, err := tx.UserOrganizations(ctx, userID)
		if err != nil {
			return err
		}
		member := slices.ContainsFunc(orgs, func(o store.Organization) bool { return o.ID == orgID })
		if err := tx.SetMembership(ctx, store.OrgMembership{OrgID: orgID, UserID: userID, Role: role}); err != nil {
			return err
		}
		if err := tx.AppendAuditEvent(ctx, s.event(m, userID, "admin.organization_member_set", map[string]any{"organization_id": orgID, "role": role})); err != nil {
			return err
		}
		if member {
			return nil // a new role, not a new member
		}
		return tx.Publish(ctx, event.OrganizationMemberAdded{OrganizationID: orgID, UserID: userID, Role: role, Meta: m})
	})
}

// RemoveMember takes an account out of an organisation, and publishes it
// (event.OrganizationMemberRemoved) in the change's transaction.
func (s *Service) RemoveMember(ctx context.Context, m httpapi.Meta, orgID, userID string) error {
	return s.d.Store.InTx(ctx, func(tx Tx) error {
		if err := tx.RemoveMembership(ctx, orgID, userID); err != nil {
			return err
		}
		if err := tx.AppendAuditEvent(ctx, s.event(m, userID, "admin.organization_member_removed", map[string]any{"organization_id": orgID})); err != nil {
			return err
		}
		return tx.Publish(ctx, event.OrganizationMemberRemoved{OrganizationID: orgID, UserID: userID, Meta: m})
	})
}
