package apikey

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"

	"github.com/gatehouse/gatehouse/internal/authz"
	"github.com/gatehouse/gatehouse/internal/authzcheck"
	"github.com/gatehouse/gatehouse/internal/event"
	"github.com/gatehouse/gatehouse/internal/httpapi"
	"github.com/gatehouse/gatehouse/internal/require"
	"github.com/gatehouse/gatehouse/internal/secret"
	"github.com/gatehouse/gatehouse/internal/store"
)

// Limits of the input.
const (
	DefaultMaxTTL  = 365 * 24 * time.Hour
	DefaultOverlap = 24 * time.Hour
	MaxOverlap     = 30 * 24 * time.Hour
	maxNameLen     = 100
	maxPermissions = 100
	maxCIDRs       = 50
	usageDays      = 90
	reasonRevoked  = "revoked"
	reasonRotated  = "rotated"
	reasonLeaked   = "leaked"
	auditCreated   = "api_key.created"
	auditRotated   = "api_key.rotated"
	auditRevoked   = "api_key.revoked"
	auditLeaked    = "api_key.leaked"
	auditSACreated = "service_account.created"
)

// Errors of the service; see Errors for how they answer.
var (
	// ErrKeyCaller is a caller authenticated with an API key trying to
	// create or rotate keys: keys are made by people (or administrators).
	ErrKeyCaller = errors.New("apikey: an API key cannot create or rotate API keys")
	// ErrNotLive is a rotation of a key that is revoked or expired.
	ErrNotLive = errors.New("apikey: the key is revoked or expired")
)

// Errors is how this package's errors answer, a list for
// httpapi.NewErrorTable.
func Errors() []httpapi.ErrorMapping {
	return []httpapi.ErrorMapping{
		httpapi.MapError(ErrKeyCaller, 403, "api_key_not_allowed", "Sign in (not with an API key) to create or rotate API keys."),
		httpapi.MapError(ErrNotLive, 409, "api_key_not_live", "The API key is revoked or expired and cannot be rotated."),
		httpapi.MapError(ErrBadSignature, 401, "invalid_signature", "The report must be signed: X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>."),
		httpapi.MapError(ErrLeakDisabled, 404, "not_found", "Leak reports are not enabled on this server."),
	}
}

// Checker decides permission checks (authzcheck.Checker).
type Checker interface {
	Check(ctx context.Context, q authzcheck.Query) (authz.Decision, error)
}

// Invalidator drops cached keys on every node (the Authenticator).
type Invalidator interface {
	Invalidate(ctx context.Context, keyIDs ...string) error
}

// JobInserter enqueues jobs in a transaction (jobs.Client).
type JobInserter interface {
	InsertTx(ctx context.Context, tx any, args river.JobArgs, opts *river.InsertOpts) (int64, error)
}

// Tables are what the service reads and writes.
type Tables interface {
	store.APIKeyStore
	store.AuditLog
	GetUser(ctx context.Context, id string) (store.User, error)
	GetRole(ctx context.Context, id string) (store.Role, error)
	GetRoleByName(ctx context.Context, name, orgID string) (store.Role, error)
	CreateGrant(ctx context.Context, g store.RoleGrant) (store.RoleGrant, error)
}

// Tx is the store inside one of the service's transactions.
type Tx interface {
	Tables
	// DriverTx is the driver's transaction, for enqueueing mail with it.
	DriverTx() any
	// Publish tells the other domains (event.APIKeyLeaked: the security
	// event, its incident and alerts) in this transaction.
	Publish(ctx context.Context, e event.Event) error
}

// Store is the storage the service needs (see store.Narrow).
type Store interface {
	Tables
	InTx(ctx context.Context, fn func(Tx) error) error
}

// Deps are what the service is built from (see New).
type Deps struct {
	Store   Store
	Checker Checker
	// Authn drops keys from every node's cache after a revocation or
	// rotation.
	Authn Invalidator
	// Keyring hashes keys (DerivedKeys(HashPurpose)) and seals mail.
	Keyring *secret.Keyring
	Jobs    JobInserter
	// MaxTTL is the longest lifetime of a key (GATEHOUSE_API_KEY_MAX_TTL;
	// DefaultMaxTTL when zero).
	MaxTTL time.Duration
	// Tiers are the rate-limit tiers a service key may name; nil accepts
	// any well-formed name.
	Tiers []string
	// LeakSecret is GATEHOUSE_LEAK_REPORT_SECRET; empty disables the leak
	// report endpoint (404).
	LeakSecret []byte
	Now        func() time.Time
	Log        *slog.Logger
}

// Service manages API keys and service accounts. Build it with New.
type Service struct {
	d    Deps
	keys [][]byte
}

// New checks d and builds the service.
func New(d Deps) (*Service, error) {
	if err := require.Deps("apikey", map[string]bool{
		"Store": d.Store != nil, "Checker": d.Checker != nil, "Authn": d.Authn != nil,
		"Keyring": d.Keyring != nil, "Jobs": d.Jobs != nil,
	}); err != nil {
		return nil, err
	}
	if d.MaxTTL < 0 {
		return nil, errors.New("apikey: MaxTTL must not be negative")
	}
	if d.MaxTTL == 0 {
		d.MaxTTL = DefaultMaxTTL
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	keys := d.Keyring.DerivedKeys(HashPurpose)
	if len(keys) == 0 {
		return nil, errors.New("apikey: the keyring has no keys")
	}
	return &Service{d: d, keys: keys}, nil
}

func (s *Service) now() time.Time { return s.d.Now().UTC().Truncate(time.Microsecond) }

// KeyInput is a request for a key. Permissions are for personal keys
// only, RateLimitTier for service keys only.
type KeyInput struct {
	Name          string     `json:"name"`
	Permissions   []string   `json:"permissions,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	AllowedCIDRs  []string   `json:"allowed_cidrs,omitempty"`
	RateLimitTier string     `json:"rate_limit_tier,omitempty"`
}

// Created is a new key with its secret, which is shown only this once.
type Created struct {
	Key    store.APIKey
	Secret string
}

var tierRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// validate checks in for a key of kind and fills expiry; the field errors
// it returns are the request's problems.
func (s *Service) validate(in *KeyInput, kind string, now time.Time) []httpapi.FieldError {
	var errs []httpapi.FieldError
	add := func(field, rule, msg string) {
		errs = append(errs, httpapi.FieldError{Field: field, Rule: rule, Message: msg})
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || utf8.RuneCountInString(in.Name) > maxNameLen || strings.ContainsFunc(in.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		add("name", "invalid", fmt.Sprintf("Give a name of 1 to %d printable characters.", maxNameLen))
	}
	if kind == store.APIKeyPersonal {
		if len(in.Permissions) == 0 || len(in.Permissions) > maxPermissions {
			add("permissions", "required", fmt.Sprintf("List 1 to %d permissions.", maxPermissions))
		}
		seen := map[string]bool{}
		for i, p := range in.Permissions {
			field := fmt.Sprintf("permissions[%d]", i)
			switch {
			case !authz.ValidPermission(p):
				add(field, "invalid", "Not a permission (resource:action).")
			case strings.Contains(p, authz.Wildcard):
				add(field, "wildcard", "A personal key lists concrete permissions, not patterns.")
			case seen[p]:
				add(field, "duplicate", "This permission is listed twice.")
			}
			seen[p] = true
		}
		if in.RateLimitTier != "" {
			add("rate_limit_tier", "not_allowed", "A personal key has its owner's rate limits.")
		}
	} else {
		if len(in.Permissions) > 0 {
			add("permissions", "not_allowed", "A service account's key acts with the account's roles.")
		}
		if in.RateLimitTier != "" && (!tierRE.MatchString(in.RateLimitTier) || (s.d.Tiers != nil && !slices.Contains(s.d.Tiers, in.RateLimitTier))) {
			add("rate_limit_tier", "unknown", "Not a rate-limit tier.")
		}
	}
	if in.ExpiresAt == nil {
		exp := now.Add(s.d.MaxTTL)
		in.ExpiresAt = &exp
	} else {
		exp := in.ExpiresAt.UTC().Truncate(time.Microsecond)
		in.ExpiresAt = &exp
		switch {
		case !exp.After(now):
			add("expires_at", "past", "Choose a time in the future.")
		case exp.After(now.Add(s.d.MaxTTL)):
			add("expires_at", "too_far", fmt.Sprintf("A key lives at most %s.", s.d.MaxTTL))
		}
	}
	if len(in.AllowedCIDRs) > maxCIDRs {
		add("allowed_cidrs", "too_many", fmt.Sprintf("List at most %d networks.", maxCIDRs))
	}
	for i, c := range in.AllowedCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			add(fmt.Sprintf("allowed_cidrs[%d]", i), "invalid", "Not a network in CIDR notation (203.0.113.0/24).")
			continue
		}
		in.AllowedCIDRs[i] = p.Masked().String()
	}
	return errs
}

// held adds a field error for each permission the owner does not hold
// now.
func (s *Service) held(ctx context.Context, m httpapi.Meta, ownerID string, perms []string, now time.Time) ([]httpapi.FieldError, error) {
	var errs []httpapi.FieldError
	for i, p := range perms {
		d, err := s.d.Checker.Check(ctx, authzcheck.Query{Subject: ownerID, Permission: p, Request: authz.Request{Time: now, IP: m.IP}})
		if err != nil {
			return nil, err
		}
		if !d.Allowed {
			errs = append(errs, httpapi.FieldError{Field: fmt.Sprintf("permissions[%d]", i), Rule: "not_held", Message: "You do not hold this permission."})
		}
	}
	return errs, nil
}

// newKey makes a key row and its secret.
func (s *Service) newKey(kind, ownerID string, in KeyInput, m httpapi.Meta, now time.Time) (store.APIKey, string, error) {
	tk := KindPersonal
	if kind == store.APIKeyService {
		tk = KindService
	}
	token, err := Generate(tk)
	if err != nil {
		return store.APIKey{}, "", err
	}
	k := store.APIKey{
		OwnerID: ownerID, Kind: kind, Name: in.Name, Prefix: Prefix(token), Hash: Hashes(s.keys, token)[0],
		Permissions: in.Permissions, AllowedCIDRs: in.AllowedCIDRs, RateLimitTier: in.RateLimitTier,
		ExpiresAt: *in.ExpiresAt, CreatedAt: now, CreatedBy: m.ActorID,
	}
	if len(k.AllowedCIDRs) == 0 {
		k.AllowedCIDRs = nil
	}
	return k, token, nil
}

// keyData is what an audit event says of a key (never its secret).
func keyData(k store.APIKey) map[string]any {
	d := map[string]any{"key_id": k.ID, "prefix": k.Prefix, "name": k.Name, "kind": k.Kind, "owner_id": k.OwnerID,
		"expires_at": k.ExpiresAt}
	if k.Permissions != nil {
		d["permissions"] = k.Permissions
	}
	if k.RotatedFrom != "" {
		d["rotated_from"] = k.RotatedFrom
	}
	return d
}

func (s *Service) event(m httpapi.Meta, subject, action string, data map[string]any) store.AuditEvent {
	return store.AuditEvent{OccurredAt: s.now(), ActorID: m.ActorID, SubjectID: subject, Action: action,
		IP: m.IP, UserAgent: m.UserAgent, RequestID: m.RequestID, Data: data}
}

// CreatePersonal creates a key for user ownerID limited to permissions
// they hold now. Wildcard patterns are refused: a key lists concrete
// permissions, each checked against the owner's (and re-checked at every
// use by the authorizer, through Principal.KeyPermissions).
func (s *Service) CreatePersonal(ctx context.Context, m httpapi.Meta, ownerID string, in KeyInput) (Created, error) {
	now := s.now()
	errs := s.validate(&in, store.APIKeyPersonal, now)
	if len(errs) == 0 {
		more, err := s.held(ctx, m, ownerID, in.Permissions, now)
		if err != nil {
			return Created{}, err
		}
		errs = more
	}
	if len(errs) > 0 {
		return Created{}, httpapi.Validation(errs...)
	}
	return s.create(ctx, m, store.APIKeyPersonal, ownerID, in, "", now)
}

func (s *Service) create(ctx context.Context, m httpapi.Meta, kind, ownerID string, in KeyInput, rotatedFrom string, now time.Time) (Created, error) {
	k, token, err := s.newKey(kind, ownerID, in, m, now)
	if err != nil {
		return Created{}, err
	}
	k.RotatedFrom = rotatedFrom
	err = s.d.Store.InTx(ctx, func(tx Tx) error {
		if k, err = tx.CreateAPIKey(ctx, k); err != nil {
			return err
		}
		return tx.AppendAuditEvent(ctx, s.event(m, ownerID, auditCreated, keyData(k)))
	})
	if err != nil {
		return Created{}, err
	}
	return Created{Key: k, Secret: token}, nil
}

// List returns the keys of ownerID, newest first.
func (s *Service) List(ctx context.Context, ownerID string) ([]store.APIKey, error) {
	return s.d.Store.ListAPIKeys(ctx, ownerID)
}

// owned returns key id if ownerID owns it; store.ErrNotFound otherwise.
func owned(ctx context.Context, t interface {
	GetAPIKey(context.Context, string) (store.APIKey, error)
}, ownerID, id string) (store.APIKey, error) {
	k, err := t.GetAPIKey(ctx, id)
	if err != nil {
		return store.APIKey{}, err
	}
	if k.OwnerID != ownerID {
		return store.APIKey{}, store.ErrNotFound
	}
	return k, nil
}

// Revoke revokes key id of ownerID (idempotent) and drops it from every
// node's cache.
func (s *Service) Revoke(ctx context.Context, m httpapi.Meta, ownerID, id string) error {
	now := s.now()
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		if _, err := owned(ctx, tx, ownerID, id); err != nil {
			return err
		}
		k, changed, err := tx.RevokeAPIKey(ctx, id, now, reasonRevoked)
		if err != nil || !changed {
			return err
		}
		return tx.AppendAuditEvent(ctx, s.event(m, ownerID, auditRevoked, keyData(k)))
	})
	if err != nil {
		return err
	}
	s.invalidate(ctx, id)
	return nil
}

func (s *Service) invalidate(ctx context.Context, ids ...string) {
	if err := s.d.Authn.Invalidate(ctx, ids...); err != nil {
		s.d.Log.ErrorContext(ctx, "apikey: other nodes were not told of a key change; they notice within the cache TTL", "api_key_ids", ids, "error", err)
	}
}

// ParseOverlap reads a rotation overlap ("24h", "0s"; "" is
// DefaultOverlap), between 0 and MaxOverlap.
func ParseOverlap(s string) (time.Duration, error) {
	if s == "" {
		return DefaultOverlap, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > MaxOverlap {
		return 0, httpapi.Validation(httpapi.FieldError{Field: "overlap", Rule: "invalid",
			Message: fmt.Sprintf("Give a duration such as \"24h\" or \"0s\", at most %s.", MaxOverlap)})
	}
	return d, nil
}

// Rotate replaces key id of ownerID with a new one with the same name,
// permissions, networks and tier, and the same lifetime (at most MaxTTL);
// the old key keeps working for overlap (revoked now when 0).
func (s *Service) Rotate(ctx context.Context, m httpapi.Meta, ownerID, id string, overlap time.Duration) (Created, error) {
	now := s.now()
	var out Created
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		old, err := owned(ctx, tx, ownerID, id)
		if err != nil {
			return err
		}
		if !old.RevokedAt.IsZero() || (!old.ExpiresAt.IsZero() && !now.Before(old.ExpiresAt)) {
			return ErrNotLive
		}
		life := old.ExpiresAt.Sub(old.CreatedAt)
		if life <= 0 || life > s.d.MaxTTL {
			life = s.d.MaxTTL
		}
		exp := now.Add(life)
		in := KeyInput{Name: old.Name, Permissions: old.Permissions, AllowedCIDRs: old.AllowedCIDRs, RateLimitTier: old.RateLimitTier, ExpiresAt: &exp}
		k, token, err := s.newKey(old.Kind, ownerID, in, m, now)
		if err != nil {
			return err
		}
		k.RotatedFrom = old.ID
		if k, err = tx.CreateAPIKey(ctx, k); err != nil {
			return err
		}
		if overlap == 0 {
			old, _, err = tx.RevokeAPIKey(ctx, old.ID, now, reasonRotated)
		} else {
			old, err = tx.ShortenAPIKey(ctx, old.ID, now.Add(overlap))
		}
		if err != nil {
			return err
		}
		data := keyData(k)
		data["old_expires_at"] = old.ExpiresAt
		data["overlap"] = overlap.String()
		out = Created{Key: k, Secret: token}
		return tx.AppendAuditEvent(ctx, s.event(m, ownerID, auditRotated, data))
	})
	if err != nil {
		return Created{}, err
	}
	s.invalidate(ctx, id)
	return out, nil
}

// Usage returns the last 90 days of use of key id of ownerID.
func (s *Service) Usage(ctx context.Context, ownerID, id string) ([]store.APIKeyUsage, error) {
	if _, err := owned(ctx, s.d.Store, ownerID, id); err != nil {
		return nil, err
	}
	to := s.now().Truncate(24 * time.Hour)
	return s.d.Store.ListAPIKeyUsage(ctx, id, to.AddDate(0, 0, -(usageDays-1)), to)
}

// ServiceAccountInput is a request for a service account.
type ServiceAccountInput struct {
	Name           string `json:"name"`
	Description    string `json:"description,omitempty"`
	OrganizationID string `json:"organization_id,omitempty"`
	// Roles are role IDs or names, granted to the account (in the
	// organisation when it has one).
	Roles []string `json:"roles"`
}

// ServiceAccountWithRoles is a service account and the roles it was
// granted at creation.
type ServiceAccountWithRoles struct {
	Account store.ServiceAccount
	Roles   []store.Role
}

// resolveRole finds a role by ID or name usable in orgID: the
// organisation's own roles, then global ones.
func resolveRole(ctx context.Context, tx Tx, ref, orgID string) (store.Role, error) {
	r, err := tx.GetRole(ctx, ref)
	if errors.Is(err, store.ErrNotFound) && orgID != "" {
		r, err = tx.GetRoleByName(ctx, ref, orgID)
	}
	if errors.Is(err, store.ErrNotFound) {
		r, err = tx.GetRoleByName(ctx, ref, "")
	}
	if err != nil {
		return store.Role{}, err
	}
	if r.OrganizationID != "" && r.OrganizationID != orgID {
		return store.Role{}, store.ErrNotFound
	}
	return r, nil
}

// CreateServiceAccount creates a service account and grants it roles, in
// one transaction.
func (s *Service) CreateServiceAccount(ctx context.Context, m httpapi.Meta, in ServiceAccountInput) (ServiceAccountWithRoles, error) {
	var errs []httpapi.FieldError
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || utf8.RuneCountInString(in.Name) > maxNameLen || strings.ContainsFunc(in.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		errs = append(errs, httpapi.FieldError{Field: "name", Rule: "invalid", Message: fmt.Sprintf("Give a name of 1 to %d printable characters.", maxNameLen)})
	}
	if utf8.RuneCountInString(in.Description) > 1000 {
		errs = append(errs, httpapi.FieldError{Field: "description", Rule: "too_long", Message: "At most 1000 characters."})
	}
	if len(in.Roles) > maxPermissions {
		errs = append(errs, httpapi.FieldError{Field: "roles", Rule: "too_many", Message: fmt.Sprintf("At most %d roles.", maxPermissions)})
	}
	if len(errs) > 0 {
		return ServiceAccountWithRoles{}, httpapi.Validation(errs...)
	}
	now := s.now()
	var out ServiceAccountWithRoles
	err := s.d.Store.InTx(ctx, func(tx Tx) error {
		var roles []store.Role
		var errs []httpapi.FieldError
		seen := map[string]bool{}
		for i, ref := range in.Roles {
			r, err := resolveRole(ctx, tx, ref, in.OrganizationID)
			if errors.Is(err, store.ErrNotFound) {
				errs = append(errs, httpapi.FieldError{Field: fmt.Sprintf("roles[%d]", i), Rule: "unknown", Message: "No such role here."})
				continue
			}
			if err != nil {
				return err
			}
			if !seen[r.ID] {
				seen[r.ID] = true
				roles = append(roles, r)
			}
		}
		if len(errs) > 0 {
			return httpapi.Validation(errs...)
		}
		sa, err := tx.CreateServiceAccount(ctx, store.ServiceAccount{Name: in.Name, Description: in.Description,
			OrganizationID: in.OrganizationID, CreatedAt: now, CreatedBy: m.ActorID})
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.Validation(httpapi.FieldError{Field: "organization_id", Rule: "unknown", Message: "No such organisation."})
		}
		if err != nil {
			return err
		}
		ids := make([]string, 0, len(roles))
		for _, r := range roles {
			if _, err := tx.CreateGrant(ctx, store.RoleGrant{UserID: sa.ID, RoleID: r.ID, OrganizationID: in.OrganizationID,
				CreatedAt: now, CreatedBy: m.ActorID}); err != nil {
				return err
			}
			ids = append(ids, r.ID)
		}
		out = ServiceAccountWithRoles{Account: sa, Roles: roles}
		return tx.AppendAuditEvent(ctx, s.event(m, sa.ID, auditSACreated, map[string]any{
			"name": sa.Name, "organization_id": sa.OrganizationID, "role_ids": ids}))
	})
	if err != nil {
		return ServiceAccountWithRoles{}, err
	}
	return out, nil
}

// ListServiceAccounts lists the service accounts of orgID ("" for all).
func (s *Service) ListServiceAccounts(ctx context.Context, orgID string) ([]store.ServiceAccount, error) {
	return s.d.Store.ListServiceAccounts(ctx, orgID)
}

// GetServiceAccount returns one service account.
func (s *Service) GetServiceAccount(ctx context.Context, id string) (store.ServiceAccount, error) {
	return s.d.Store.GetServiceAccount(ctx, id)
}

// CreateServiceKey creates a key for service account saID.
func (s *Service) CreateServiceKey(ctx context.Context, m httpapi.Meta, saID string, in KeyInput) (Created, error) {
	if _, err := s.d.Store.GetServiceAccount(ctx, saID); err != nil {
		return Created{}, err
	}
	now := s.now()
	if errs := s.validate(&in, store.APIKeyService, now); len(errs) > 0 {
		return Created{}, httpapi.Validation(errs...)
	}
	return s.create(ctx, m, store.APIKeyService, saID, in, "", now)
}
