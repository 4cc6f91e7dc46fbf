package sqldb

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func (t *Tables) scanClient(r sqlrow.Scanner) (store.Client, error) {
	return sqlrow.ScanClient(r, t.d.TimeDest, t.d.NullTimeDest, t.d.ListDest)
}

// CreateClient implements store.ClientStore.
func (t *Tables) CreateClient(ctx context.Context, c store.Client) (store.Client, error) {
	c, err := sqlrow.PrepareClient(c, t.now())
	if err != nil {
		return store.Client{}, t.errorf("create client: %w", err)
	}
	created, err := row(ctx, t, Write, t.scanClient, `INSERT INTO oauth_clients (`+sqlrow.ClientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING `+sqlrow.ClientColumns,
		sqlrow.ClientValues(c, t.d.TimeValue, t.d.ListValue)...)
	if err != nil {
		return store.Client{}, t.errorf("create client %q: %w", c.ID, t.d.MapErr(err))
	}
	return created, nil
}

// GetClient implements store.ClientStore, reading the primary: a client
// just disabled or deleted must not authenticate on a lagging replica.
func (t *Tables) GetClient(ctx context.Context, id string) (store.Client, error) {
	if !sqlrow.Storable(id) {
		return store.Client{}, t.errorf("get client %q: %w", id, store.ErrNotFound)
	}
	c, err := row(ctx, t, Primary, t.scanClient, "SELECT "+sqlrow.ClientColumns+" FROM oauth_clients WHERE id = $1", id)
	if err != nil {
		return store.Client{}, t.errorf("get client %q: %w", id, t.d.MapErr(err))
	}
	return c, nil
}

// ListClients implements store.ClientStore: oldest first, ties broken by
// ID, from the primary.
func (t *Tables) ListClients(ctx context.Context) ([]store.Client, error) {
	list, err := rows(ctx, t, Primary, t.scanClient, "SELECT "+sqlrow.ClientColumns+" FROM oauth_clients ORDER BY created_at, id")
	if err != nil {
		return nil, t.errorf("list clients: %w", err)
	}
	return list, nil
}

// DeleteClient implements store.ClientStore.
func (t *Tables) DeleteClient(ctx context.Context, id string) error {
	if !sqlrow.Storable(id) {
		return t.errorf("delete client %q: %w", id, store.ErrNotFound)
	}
	return t.deleteOne(ctx, "delete client "+quote(id), "DELETE FROM oauth_clients WHERE id = $1", id)
}

// SetClientRateLimits implements store.ClientStore.
func (t *Tables) SetClientRateLimits(ctx context.Context, id, tier string, exempt bool, at time.Time) (store.Client, error) {
	if !sqlrow.Storable(id) {
		return store.Client{}, t.errorf("set client rate limits %q: %w", id, store.ErrNotFound)
	}
	if tier != "" && !sqlrow.Storable(tier) {
		return store.Client{}, t.errorf("set client rate limits %q: the tier must be UTF-8 text without NUL", id)
	}
	c, err := row(ctx, t, Write, t.scanClient, `UPDATE oauth_clients SET rate_limit_tier = $2, rate_limit_exempt = $3, updated_at = $4
		WHERE id = $1 RETURNING `+sqlrow.ClientColumns, id, sqlrow.Null(tier), exempt, t.d.TimeValue(sqlrow.Micro(at)))
	if err != nil {
		return store.Client{}, t.errorf("set client rate limits %q: %w", id, t.d.MapErr(err))
	}
	return c, nil
}
