// Package rbac is the administration of role-based access control:
// permissions, roles (with their hierarchy and conditions), grants of roles
// to users, bulk changes, the built-in roles of Gatehouse's own
// administration API, and the access reports (a user's effective
// permissions, who holds a permission). Every change is written in one
// transaction with its audit event; decisions themselves are package
// authz's.
package rbac

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Tx is the store inside one of this package's transactions: the RBAC
// tables, the audit log, and the reads of accounts and organisations the
// checks need.
type Tx interface {
	store.AuthzStore
	store.AuditLog
	GetUser(ctx context.Context, id string) (store.User, error)
	GetOrganization(ctx context.Context, id string) (store.Organization, error)
	ListMembers(ctx context.Context, orgID string) ([]store.OrgMembership, error)
	UserOrganizations(ctx context.Context, userID string) ([]store.Organization, error)
}

// Store is the storage the service uses (see store.Narrow): reads outside
// a transaction, and transactions.
type Store interface {
	Tx
	InTx(ctx context.Context, fn func(Tx) error) error
}

// Change tells what a committed change may have changed in users'
// effective permissions: the grants of Users, or, with All, anyone's (a
// role or permission changed).
type Change struct {
	Users []string
	All   bool
}

// Deps are what the service is built from (see New).
type Deps struct {
	Store    Store
	Compiler *authz.Compiler
	Engine   *authz.Engine
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log is the logger (discarding when nil).
	Log *slog.Logger
	// Changed, when not nil, is called after each change commits (to
	// invalidate cached permissions).
	Changed func(ctx context.Context, c Change)
}

// Service administers permissions, roles and grants. Build it with New;
// it is not changed afterwards.
type Service struct{ d Deps }

// New checks d and builds the service.
func New(d Deps) (*Service, error) {
	if err := require.Deps("rbac", map[string]bool{"Store": d.Store != nil, "Compiler": d.Compiler != nil, "Engine": d.Engine != nil}); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{d: d}, nil
}

// Limits of the input.
const (
	// MaxNameLength bounds a role's name (characters).
	MaxNameLength = 100
	// MaxDescriptionLength bounds a description (characters).
	MaxDescriptionLength = 1000
	// MaxRules bounds the allow rules, the deny rules and the parents of
	// one role (each list).
	MaxRules = 500
	// MaxBulkItems bounds the grants and revocations of one bulk change,
	// together.
	MaxBulkItems = 1000
)

func (s *Service) changed(ctx context.Context, c Change) {
	if s.d.Changed != nil {
		s.d.Changed(ctx, c)
	}
}

// event is the audit event of a change by the caller of m.
func (s *Service) event(m httpapi.Meta, subject, action string, before, after any, extra map[string]any) store.AuditEvent {
	data := map[string]any{"before": jsonValue(before), "after": jsonValue(after)}
	for k, v := range extra {
		data[k] = jsonValue(v)
	}
	return store.AuditEvent{
		OccurredAt: s.d.Now().UTC(), ActorID: m.ActorID, SubjectID: subject, Action: action,
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: data,
	}
}

// jsonValue turns a view into plain JSON values (maps, slices, strings),
// so that the audit log stores what the API shows; nil stays nil.
func jsonValue(v any) any {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// ---- Views ----

// PermissionView is a permission as the API shows it.
type PermissionView struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
}

func permissionView(p store.Permission) PermissionView {
	return PermissionView{Name: p.Name, Description: p.Description, CreatedAt: p.CreatedAt}
}

// Rule is a permission a role allows or denies, with an optional CEL
// condition. In a request it is either a string ("invoices:read") or an
// object ({"permission": "invoices:read", "condition": "request.mfa"}).
type Rule struct {
	Permission string `json:"permission"`
	Condition  string `json:"condition,omitempty"`
}

// UnmarshalJSON takes a string or an object.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*r = Rule{Permission: s}
		return nil
	}
	type plain Rule
	var p plain
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return errors.New("a permission is a string or an object {permission, condition}")
	}
	*r = Rule(p)
	return nil
}

// RoleView is a role as the API shows it.
type RoleView struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Description    string    `json:"description"`
	OrganizationID string    `json:"organization_id,omitempty"`
	Permissions    []Rule    `json:"permissions"`
	Deny           []Rule    `json:"deny"`
	Parents        []string  `json:"parents"`
	BuiltIn        bool      `json:"built_in"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func ruleViews(rs []store.RolePermission) []Rule {
	out := make([]Rule, len(rs))
	for i, r := range rs {
		out[i] = Rule{Permission: r.Permission, Condition: r.Condition}
	}
	return out
}

// ViewRole is r as the API shows it.
func ViewRole(r store.Role) RoleView {
	parents := r.Parents
	if parents == nil {
		parents = []string{}
	}
	return RoleView{
		ID: r.ID, Name: r.Name, Description: r.Description, OrganizationID: r.OrganizationID,
		Permissions: ruleViews(r.Allow), Deny: ruleViews(r.Deny), Parents: parents,
		BuiltIn: IsBuiltinRole(r.ID), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// GrantView is a grant as the API shows it, with its role's name.
type GrantView struct {
	ID             string     `json:"id"`
	UserID         string     `json:"user_id"`
	RoleID         string     `json:"role_id"`
	Role           string     `json:"role"`
	OrganizationID string     `json:"organization_id,omitempty"`
	ValidFrom      *time.Time `json:"valid_from,omitempty"`
	ValidUntil     *time.Time `json:"valid_until,omitempty"`
	Condition      string     `json:"condition,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	CreatedBy      string     `json:"created_by,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func grantView(g store.RoleGrant, roleName string) GrantView {
	return GrantView{
		ID: g.ID, UserID: g.UserID, RoleID: g.RoleID, Role: roleName, OrganizationID: g.OrganizationID,
		ValidFrom: optTime(g.ValidFrom), ValidUntil: optTime(g.ValidUntil), Condition: g.Condition,
		CreatedAt: g.CreatedAt, CreatedBy: g.CreatedBy,
	}
}

// ---- Permissions ----

// CreatePermission registers a permission.
func (s *Service) CreatePermission(ctx context.Context, m httpapi.Meta, name, description string) (PermissionView, error) {
	var errs []httpapi.FieldError
	if !authz.ValidPermission(name) {
		errs = append(errs, httpapi.FieldError{Field: "name", Rule: "permission", Message: "name must be resource:action (lowercase letters, digits, _, - and .), resource:* or *."})
	}
	if utf8.RuneCountInString(description) > MaxDescriptionLength {
		errs = append(errs, httpapi.FieldError{Field: "description", Rule: "max_length", Message: fmt.Sprintf("description must be at most %d characters.", MaxDescriptionLength)})
	}
	if len(errs) > 0 {
		return PermissionView{}, httpapi.Validation(errs...)
	}
	var out store.Permission
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.GetPermission(ctx, name); err == nil {
			return ErrPermissionExists
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var err error
		if out, err = tx.CreatePermission(ctx, store.Permission{Name: name, Description: description, CreatedAt: s.d.Now().UTC()}); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return ErrPermissionExists
			}
			return err
		}
		return tx.AppendAuditEvent(ctx, s.event(m, name, "rbac.permission_created", nil, permissionView(out), nil))
	})
	if err != nil {
		return PermissionView{}, err
	}
	return permissionView(out), nil
}

// ListPermissions lists every permission by name.
func (s *Service) ListPermissions(ctx context.Context) ([]PermissionView, error) {
	ps, err := s.d.Store.ListPermissions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PermissionView, len(ps))
	for i, p := range ps {
		out[i] = permissionView(p)
	}
	return out, nil
}

// GetPermission returns a permission.
func (s *Service) GetPermission(ctx context.Context, name string) (PermissionView, error) {
	p, err := s.d.Store.GetPermission(ctx, name)
	if err != nil {
		return PermissionView{}, err
	}
	return permissionView(p), nil
}

// DeletePermission removes a permission no role uses (ErrPermissionInUse
// otherwise).
func (s *Service) DeletePermission(ctx context.Context, m httpapi.Meta, name string) error {
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		p, err := tx.GetPermission(ctx, name)
		if err != nil {
			return err
		}
		if err := tx.DeletePermission(ctx, name); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return ErrPermissionInUse
			}
			return err
		}
		return tx.AppendAuditEvent(ctx, s.event(m, name, "rbac.permission_deleted", permissionView(p), nil, nil))
	})
	if err != nil {
		return err
	}
	s.changed(ctx, Change{All: true})
	return nil
}
