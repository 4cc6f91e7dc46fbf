package sqldb

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func (t *Tables) scanServiceAccount(r sqlrow.Scanner) (store.ServiceAccount, error) {
	return sqlrow.ScanServiceAccount(r, t.d.TimeDest)
}

func (t *Tables) scanAPIKey(r sqlrow.Scanner) (store.APIKey, error) {
	return sqlrow.ScanAPIKey(r, t.d.TimeDest, t.d.NullTimeDest, t.d.ListDest)
}

func (t *Tables) scanAPIKeyUsage(r sqlrow.Scanner) (store.APIKeyUsage, error) {
	return sqlrow.ScanAPIKeyUsage(r, t.d.TimeDest, t.d.NullTimeDest)
}

// CreateServiceAccountTx is store.APIKeyStore's CreateServiceAccount
// without the transaction its two statements need: the user row, then
// the service account's.
func (t *Tables) CreateServiceAccountTx(ctx context.Context, sa store.ServiceAccount) (store.ServiceAccount, error) {
	sa, err := sqlrow.PrepareServiceAccount(sa, t.now())
	if err != nil {
		return store.ServiceAccount{}, t.errorf("create service account: %w", err)
	}
	email := store.ServiceAccountEmail(sa.ID)
	if _, err := t.CreateUser(ctx, store.User{
		ID: sa.ID, Email: email, EmailNormalized: email, Name: sa.Name,
		Status: store.UserActive, Kind: store.UserKindService,
	}); err != nil {
		return store.ServiceAccount{}, t.errorf("create service account %s: %w", sa.ID, err)
	}
	_, err = t.x.Exec(ctx, `INSERT INTO service_accounts (user_id, name, description, organization_id, created_at, created_by)
		VALUES ($1, $2, $3, $4, $5, $6)`, sa.ID, sa.Name, sqlrow.Null(sa.Description), sqlrow.Null(sa.OrganizationID),
		t.d.TimeValue(sa.CreatedAt), sqlrow.Null(sa.CreatedBy))
	if err != nil {
		return store.ServiceAccount{}, t.errorf("create service account %s: %w", sa.ID, t.d.MapRefErr(err))
	}
	return sa, nil
}

const selectServiceAccounts = "SELECT " + sqlrow.ServiceAccountColumns +
	" FROM service_accounts JOIN users ON users.id = service_accounts.user_id WHERE users.deleted_at IS NULL"

// GetServiceAccount implements store.APIKeyStore.
func (t *Tables) GetServiceAccount(ctx context.Context, id string) (store.ServiceAccount, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.ServiceAccount{}, t.errorf("get service account %q: %w", id, store.ErrNotFound)
	}
	sa, err := row(ctx, t, Primary, t.scanServiceAccount, selectServiceAccounts+" AND service_accounts.user_id = $1", canon)
	if err != nil {
		return store.ServiceAccount{}, t.errorf("get service account %s: %w", canon, t.d.MapErr(err))
	}
	return sa, nil
}

// ListServiceAccounts implements store.APIKeyStore.
func (t *Tables) ListServiceAccounts(ctx context.Context, orgID string) ([]store.ServiceAccount, error) {
	const order = " ORDER BY service_accounts.created_at, service_accounts.user_id"
	if orgID == "" {
		list, err := rows(ctx, t, Primary, t.scanServiceAccount, selectServiceAccounts+order)
		if err != nil {
			return nil, t.errorf("list service accounts: %w", err)
		}
		return list, nil
	}
	canon, ok := sqlrow.ParseID(orgID)
	if !ok {
		return nil, nil
	}
	list, err := rows(ctx, t, Primary, t.scanServiceAccount, selectServiceAccounts+" AND service_accounts.organization_id = $1"+order, canon)
	if err != nil {
		return nil, t.errorf("list service accounts of %s: %w", canon, err)
	}
	return list, nil
}

var insertAPIKey = `INSERT INTO api_keys (` + strings.ReplaceAll(sqlrow.APIKeyColumns, "CAST(rotated_from AS TEXT)", "rotated_from") +
	`) VALUES (` + numbered(sqlrow.APIKeyColumnCount) + `) RETURNING ` + sqlrow.APIKeyColumns

// numbered returns "$1, $2, …, $n".
func numbered(n int) string {
	p := make([]string, n)
	for i := range p {
		p[i] = "$" + strconv.Itoa(i+1)
	}
	return strings.Join(p, ", ")
}

// CreateAPIKey implements store.APIKeyStore.
func (t *Tables) CreateAPIKey(ctx context.Context, k store.APIKey) (store.APIKey, error) {
	k, err := sqlrow.PrepareAPIKey(k, t.now())
	if err != nil {
		return store.APIKey{}, t.errorf("create api key: %w", err)
	}
	created, err := row(ctx, t, Write, t.scanAPIKey, insertAPIKey, sqlrow.APIKeyValues(k, t.d.TimeValue, t.d.ListValue)...)
	if err != nil {
		return store.APIKey{}, t.errorf("create api key %s: %w", k.ID, t.d.MapRefErr(err))
	}
	return created, nil
}

// GetAPIKey implements store.APIKeyStore.
func (t *Tables) GetAPIKey(ctx context.Context, id string) (store.APIKey, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.APIKey{}, t.errorf("get api key %q: %w", id, store.ErrNotFound)
	}
	k, err := row(ctx, t, Primary, t.scanAPIKey, "SELECT "+sqlrow.APIKeyColumns+" FROM api_keys WHERE id = $1", canon)
	if err != nil {
		return store.APIKey{}, t.errorf("get api key %s: %w", canon, t.d.MapErr(err))
	}
	return k, nil
}

// GetAPIKeyByHash implements store.APIKeyStore with one indexed query,
// hash IN ($1, …), on both engines.
func (t *Tables) GetAPIKeyByHash(ctx context.Context, hashes [][]byte) (store.APIKey, error) {
	args := make([]any, 0, len(hashes))
	for _, h := range hashes {
		if len(h) > 0 {
			args = append(args, h)
		}
	}
	if len(args) == 0 {
		return store.APIKey{}, t.errorf("get api key by hash: %w", store.ErrNotFound)
	}
	// Hashes are unique: at most one key per hash. Should two of the
	// hashes name two keys, the oldest wins, the same on every call.
	k, err := row(ctx, t, Primary, t.scanAPIKey, "SELECT "+sqlrow.APIKeyColumns+
		" FROM api_keys WHERE hash IN ("+numbered(len(args))+") ORDER BY created_at, id LIMIT 1", args...)
	if err != nil {
		return store.APIKey{}, t.errorf("get api key by hash: %w", t.d.MapErr(err))
	}
	return k, nil
}

// ListAPIKeys implements store.APIKeyStore.
func (t *Tables) ListAPIKeys(ctx context.Context, ownerID string) ([]store.APIKey, error) {
	canon, ok := sqlrow.ParseID(ownerID)
	if !ok {
		return nil, nil
	}
	list, err := rows(ctx, t, Primary, t.scanAPIKey, "SELECT "+sqlrow.APIKeyColumns+
		" FROM api_keys WHERE owner_id = $1 ORDER BY created_at DESC, id DESC", canon)
	if err != nil {
		return nil, t.errorf("list api keys of %s: %w", canon, err)
	}
	return list, nil
}

// RevokeAPIKey implements store.APIKeyStore. A zero at means now.
func (t *Tables) RevokeAPIKey(ctx context.Context, id string, at time.Time, reason string) (store.APIKey, bool, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.APIKey{}, false, t.errorf("revoke api key %q: %w", id, store.ErrNotFound)
	}
	if at.IsZero() {
		at = t.now()
	}
	k, err := row(ctx, t, Write, t.scanAPIKey, `UPDATE api_keys SET revoked_at = $2, revoked_reason = $3
		WHERE id = $1 AND revoked_at IS NULL RETURNING `+sqlrow.APIKeyColumns, canon, t.d.TimeValue(at), sqlrow.Null(reason))
	if err == nil {
		return k, true, nil
	}
	if err = t.d.MapErr(err); !notFound(err) {
		return store.APIKey{}, false, t.errorf("revoke api key %s: %w", canon, err)
	}
	// Already revoked, or absent.
	k, err = t.GetAPIKey(ctx, canon)
	return k, false, err
}

// ShortenAPIKey implements store.APIKeyStore.
func (t *Tables) ShortenAPIKey(ctx context.Context, id string, at time.Time) (store.APIKey, error) {
	canon, ok := sqlrow.ParseID(id)
	if !ok {
		return store.APIKey{}, t.errorf("shorten api key %q: %w", id, store.ErrNotFound)
	}
	if at.IsZero() {
		// Zero is "never expires": nothing is shorter than the key already is.
		return t.GetAPIKey(ctx, canon)
	}
	k, err := row(ctx, t, Write, t.scanAPIKey, `UPDATE api_keys SET expires_at = $2
		WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2) RETURNING `+sqlrow.APIKeyColumns, canon, t.d.TimeValue(at))
	if err == nil {
		return k, nil
	}
	if err = t.d.MapErr(err); !notFound(err) {
		return store.APIKey{}, t.errorf("shorten api key %s: %w", canon, err)
	}
	return t.GetAPIKey(ctx, canon)
}

// RecordAPIKeyUseTx is store.APIKeyStore's RecordAPIKeyUse without the
// transaction its statements need. For each use, the key's UPDATE comes
// first: it finds whether the key exists (an unknown key is skipped, so no
// statement fails on the usage row's reference) and, on PostgreSQL, locks
// its row so that it cannot be deleted before the usage row is written.
// Uses are taken in key order, so that two flushes naming the same keys
// lock them in the same order and never deadlock.
func (t *Tables) RecordAPIKeyUseTx(ctx context.Context, uses []store.APIKeyUse) error {
	known := make([]store.APIKeyUse, 0, len(uses))
	for _, u := range uses {
		if canon, ok := sqlrow.ParseID(u.KeyID); ok {
			u.KeyID = canon
			known = append(known, u)
		}
	}
	slices.SortStableFunc(known, func(a, b store.APIKeyUse) int { return strings.Compare(a.KeyID, b.KeyID) })
	for _, u := range known {
		canon := u.KeyID
		if u.Requests < 0 || u.Refusals < 0 {
			return t.errorf("record api key use %s: negative counts", canon)
		}
		if !sqlrow.Storable(u.IP) && u.IP != "" {
			return t.errorf("record api key use %s: IP is not valid UTF-8 text without NUL", canon)
		}
		at := u.At
		if at.IsZero() {
			at = t.now()
		}
		atv, ip := t.d.TimeValue(at), sqlrow.Null(u.IP)
		n, err := t.x.Exec(ctx, `UPDATE api_keys SET
			last_used_ip = CASE WHEN last_used_at IS NULL OR last_used_at < $2 THEN $3 ELSE last_used_ip END,
			last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2 THEN $2 ELSE last_used_at END
			WHERE id = $1`, canon, atv, ip)
		if err != nil {
			return t.errorf("record api key use %s: %w", canon, t.d.MapErr(err))
		}
		if n == 0 {
			continue
		}
		_, err = t.x.Exec(ctx, `INSERT INTO api_key_usage (key_id, day, requests, refusals, last_ip, last_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (key_id, day) DO UPDATE SET
				requests = api_key_usage.requests + excluded.requests,
				refusals = api_key_usage.refusals + excluded.refusals,
				last_ip = CASE WHEN api_key_usage.last_at IS NULL OR api_key_usage.last_at < excluded.last_at
					THEN excluded.last_ip ELSE api_key_usage.last_ip END,
				last_at = CASE WHEN api_key_usage.last_at IS NULL OR api_key_usage.last_at < excluded.last_at
					THEN excluded.last_at ELSE api_key_usage.last_at END`,
			canon, t.d.TimeValue(sqlrow.UsageDay(at)), u.Requests, u.Refusals, ip, atv)
		if err != nil {
			return t.errorf("record api key use %s: %w", canon, t.d.MapRefErr(err))
		}
	}
	return nil
}

// ListAPIKeyUsage implements store.APIKeyStore.
func (t *Tables) ListAPIKeyUsage(ctx context.Context, keyID string, from, to time.Time) ([]store.APIKeyUsage, error) {
	canon, ok := sqlrow.ParseID(keyID)
	if from.IsZero() {
		from = time.Unix(0, 0) // no lower bound
	}
	if !ok || from.After(to) {
		return nil, nil
	}
	list, err := rows(ctx, t, Primary, t.scanAPIKeyUsage, "SELECT "+sqlrow.APIKeyUsageColumns+
		" FROM api_key_usage WHERE key_id = $1 AND day >= $2 AND day <= $3 ORDER BY day", canon, t.d.TimeValue(from), t.d.TimeValue(to))
	if err != nil {
		return nil, t.errorf("list usage of api key %s: %w", canon, err)
	}
	return list, nil
}
