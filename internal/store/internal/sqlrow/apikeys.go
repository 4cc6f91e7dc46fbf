package sqlrow

import (
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// ServiceAccountColumns is the column list ScanServiceAccount expects, in
// order, qualified by table so that it may follow a join with users.
const ServiceAccountColumns = "service_accounts.user_id, service_accounts.name, service_accounts.description, " +
	"CAST(service_accounts.organization_id AS TEXT), service_accounts.created_at, service_accounts.created_by"

// ScanServiceAccount scans one row selected with ServiceAccountColumns.
func ScanServiceAccount(s Scanner, td TimeDest) (store.ServiceAccount, error) {
	var (
		sa            store.ServiceAccount
		desc, org, by *string
	)
	if err := s.Scan(&sa.ID, &sa.Name, &desc, &org, td(&sa.CreatedAt), &by); err != nil {
		return store.ServiceAccount{}, err
	}
	sa.Description, sa.OrganizationID, sa.CreatedBy = deref(desc), deref(org), deref(by)
	sa.CreatedAt = sa.CreatedAt.UTC()
	return sa, nil
}

// PrepareServiceAccount validates sa for CreateServiceAccount: a UUIDv7
// replaces an empty ID, CreatedAt becomes now when zero. An
// OrganizationID that is not a UUID is store.ErrNotFound.
func PrepareServiceAccount(sa store.ServiceAccount, now time.Time) (store.ServiceAccount, error) {
	id, err := newID(sa.ID)
	if err != nil {
		return sa, fmt.Errorf("service account: %w", err)
	}
	sa.ID = id
	if sa.Name == "" {
		return sa, errors.New("service account: Name is required")
	}
	for name, v := range map[string]string{"Name": sa.Name, "Description": sa.Description, "CreatedBy": sa.CreatedBy} {
		if !validText(v) {
			return sa, fmt.Errorf("service account: %s is not valid UTF-8 text without NUL", name)
		}
	}
	if sa.OrganizationID != "" {
		org, ok := ParseID(sa.OrganizationID)
		if !ok {
			return sa, fmt.Errorf("service account: organization %q: %w", sa.OrganizationID, store.ErrNotFound)
		}
		sa.OrganizationID = org
	}
	if sa.CreatedAt.IsZero() {
		sa.CreatedAt = now
	}
	sa.CreatedAt = Micro(sa.CreatedAt)
	return sa, nil
}

// APIKeyColumns is the column list ScanAPIKey expects, in order.
const APIKeyColumns = "id, owner_id, kind, name, prefix, hash, permissions, allowed_cidrs, rate_limit_tier, " +
	"expires_at, revoked_at, revoked_reason, CAST(rotated_from AS TEXT), created_at, created_by, last_used_at, last_used_ip"

// APIKeyColumnCount is how many columns APIKeyColumns lists.
const APIKeyColumnCount = 17

// ScanAPIKey scans one row selected with APIKeyColumns. td scans a NOT
// NULL time column, ntd a nullable one, ld a list column. Empty lists are
// read back as nil.
func ScanAPIKey(s Scanner, td, ntd TimeDest, ld ListDest) (store.APIKey, error) {
	var (
		k                          store.APIKey
		tier, reason, from, by, ip *string
	)
	err := s.Scan(&k.ID, &k.OwnerID, &k.Kind, &k.Name, &k.Prefix, &k.Hash, ld(&k.Permissions), ld(&k.AllowedCIDRs), &tier,
		ntd(&k.ExpiresAt), ntd(&k.RevokedAt), &reason, &from, td(&k.CreatedAt), &by, ntd(&k.LastUsedAt), &ip)
	if err != nil {
		return store.APIKey{}, err
	}
	k.RateLimitTier, k.RevokedReason, k.RotatedFrom, k.CreatedBy, k.LastUsedIP = deref(tier), deref(reason), deref(from), deref(by), deref(ip)
	k.Permissions, k.AllowedCIDRs = nilIfEmpty(k.Permissions), nilIfEmpty(k.AllowedCIDRs)
	for _, t := range []*time.Time{&k.ExpiresAt, &k.RevokedAt, &k.CreatedAt, &k.LastUsedAt} {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
	return k, nil
}

// PrepareAPIKey validates k for CreateAPIKey: a UUIDv7 replaces an empty
// ID, CreatedAt becomes now when zero, nil lists become empty ones. An
// OwnerID that is not a UUID is store.ErrNotFound.
func PrepareAPIKey(k store.APIKey, now time.Time) (store.APIKey, error) {
	id, err := newID(k.ID)
	if err != nil {
		return k, fmt.Errorf("api key: %w", err)
	}
	k.ID = id
	owner, ok := ParseID(k.OwnerID)
	if !ok {
		return k, fmt.Errorf("api key: owner %q: %w", k.OwnerID, store.ErrNotFound)
	}
	k.OwnerID = owner
	if k.Kind != store.APIKeyPersonal && k.Kind != store.APIKeyService {
		return k, fmt.Errorf("api key: unknown kind %q", k.Kind)
	}
	if len(k.Hash) == 0 {
		return k, errors.New("api key: Hash is required")
	}
	if k.RotatedFrom != "" {
		from, ok := ParseID(k.RotatedFrom)
		if !ok {
			return k, fmt.Errorf("api key: RotatedFrom %q is not a UUID", k.RotatedFrom)
		}
		k.RotatedFrom = from
	}
	for name, v := range map[string]string{
		"Name": k.Name, "Prefix": k.Prefix, "RateLimitTier": k.RateLimitTier, "RevokedReason": k.RevokedReason,
		"CreatedBy": k.CreatedBy, "LastUsedIP": k.LastUsedIP,
	} {
		if !validText(v) {
			return k, fmt.Errorf("api key: %s is not valid UTF-8 text without NUL", name)
		}
	}
	if k.Permissions, err = prepareList("api key: Permissions", k.Permissions); err != nil {
		return k, err
	}
	if k.AllowedCIDRs, err = prepareList("api key: AllowedCIDRs", k.AllowedCIDRs); err != nil {
		return k, err
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now
	}
	k.CreatedAt = Micro(k.CreatedAt)
	return k, nil
}

// APIKeyValues returns the values of APIKeyColumns for a prepared key, in
// order, with times converted by tv, lists by lv and empty optional
// strings as NULL.
func APIKeyValues(k store.APIKey, tv TimeValue, lv ListValue) []any {
	return []any{
		k.ID, k.OwnerID, k.Kind, k.Name, k.Prefix, k.Hash, lv(k.Permissions), lv(k.AllowedCIDRs), Null(k.RateLimitTier),
		tv(k.ExpiresAt), tv(k.RevokedAt), Null(k.RevokedReason), Null(k.RotatedFrom), tv(k.CreatedAt), Null(k.CreatedBy),
		tv(k.LastUsedAt), Null(k.LastUsedIP),
	}
}

// APIKeyUsageColumns is the column list ScanAPIKeyUsage expects, in order.
const APIKeyUsageColumns = "key_id, day, requests, refusals, last_ip, last_at"

// ScanAPIKeyUsage scans one row selected with APIKeyUsageColumns.
func ScanAPIKeyUsage(s Scanner, td, ntd TimeDest) (store.APIKeyUsage, error) {
	var (
		u  store.APIKeyUsage
		ip *string
	)
	if err := s.Scan(&u.KeyID, td(&u.Day), &u.Requests, &u.Refusals, &ip, ntd(&u.LastAt)); err != nil {
		return store.APIKeyUsage{}, err
	}
	u.LastIP = deref(ip)
	u.Day = u.Day.UTC()
	if !u.LastAt.IsZero() {
		u.LastAt = u.LastAt.UTC()
	}
	return u, nil
}

// UsageDay returns the UTC midnight of t's day.
func UsageDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
