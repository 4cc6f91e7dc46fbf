package sqldb

import (
	"context"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func (t *Tables) scanAPI(r sqlrow.Scanner) (store.API, error) {
	return sqlrow.ScanAPI(r, t.d.TimeDest, t.d.ListDest)
}

// CreateAPI implements store.APIStore.
func (t *Tables) CreateAPI(ctx context.Context, a store.API) (store.API, error) {
	a, err := sqlrow.PrepareAPI(a, t.now())
	if err != nil {
		return store.API{}, t.errorf("create api: %w", err)
	}
	created, err := row(ctx, t, Write, t.scanAPI, `INSERT INTO apis (`+sqlrow.APIColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+sqlrow.APIColumns,
		sqlrow.APIValues(a, t.d.TimeValue, t.d.ListValue)...)
	if err != nil {
		return store.API{}, t.errorf("create api %q: %w", a.Identifier, t.d.MapErr(err))
	}
	return created, nil
}

// GetAPI implements store.APIStore, reading the primary: an API just
// registered must be usable at once.
func (t *Tables) GetAPI(ctx context.Context, id string) (store.API, error) {
	if !sqlrow.Storable(id) {
		return store.API{}, t.errorf("get api %q: %w", id, store.ErrNotFound)
	}
	a, err := row(ctx, t, Primary, t.scanAPI, "SELECT "+sqlrow.APIColumns+" FROM apis WHERE id = $1", id)
	if err != nil {
		return store.API{}, t.errorf("get api %q: %w", id, t.d.MapErr(err))
	}
	return a, nil
}

// GetAPIByIdentifier implements store.APIStore, from the primary.
func (t *Tables) GetAPIByIdentifier(ctx context.Context, identifier string) (store.API, error) {
	if !sqlrow.Storable(identifier) {
		return store.API{}, t.errorf("get api %q: %w", identifier, store.ErrNotFound)
	}
	a, err := row(ctx, t, Primary, t.scanAPI, "SELECT "+sqlrow.APIColumns+" FROM apis WHERE identifier = $1", identifier)
	if err != nil {
		return store.API{}, t.errorf("get api %q: %w", identifier, t.d.MapErr(err))
	}
	return a, nil
}

// ListAPIs implements store.APIStore: oldest first, ties broken by ID.
func (t *Tables) ListAPIs(ctx context.Context) ([]store.API, error) {
	list, err := rows(ctx, t, Primary, t.scanAPI, "SELECT "+sqlrow.APIColumns+" FROM apis ORDER BY created_at, id")
	if err != nil {
		return nil, t.errorf("list apis: %w", err)
	}
	return list, nil
}

// UpdateAPI implements store.APIStore.
func (t *Tables) UpdateAPI(ctx context.Context, a store.API) (store.API, error) {
	if !sqlrow.Storable(a.ID) {
		return store.API{}, t.errorf("update api %q: %w", a.ID, store.ErrNotFound)
	}
	if a.UpdatedAt.IsZero() {
		a.UpdatedAt = t.now()
	}
	// The identifier is not updated; PrepareAPI only needs one to check.
	a.Identifier = "-"
	a, err := sqlrow.PrepareAPI(a, a.UpdatedAt)
	if err != nil {
		return store.API{}, t.errorf("update api: %w", err)
	}
	updated, err := row(ctx, t, Write, t.scanAPI, `UPDATE apis SET name = $2, scopes = $3, updated_at = $4
		WHERE id = $1 RETURNING `+sqlrow.APIColumns, a.ID, a.Name, t.d.ListValue(a.Scopes), t.d.TimeValue(a.UpdatedAt))
	if err != nil {
		return store.API{}, t.errorf("update api %q: %w", a.ID, t.d.MapErr(err))
	}
	return updated, nil
}

// DeleteAPI implements store.APIStore.
func (t *Tables) DeleteAPI(ctx context.Context, id string) error {
	if !sqlrow.Storable(id) {
		return t.errorf("delete api %q: %w", id, store.ErrNotFound)
	}
	return t.deleteOne(ctx, "delete api "+quote(id), "DELETE FROM apis WHERE id = $1", id)
}
