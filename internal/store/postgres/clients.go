package postgres

import (
	"context"
	"fmt"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func scanClient(row sqlrow.Scanner) (store.Client, error) {
	return sqlrow.ScanClient(row, timeDest, nullTimeDest, listDest)
}

// CreateClient implements store.ClientStore.
func (s *Store) CreateClient(ctx context.Context, c store.Client) (store.Client, error) {
	c, err := sqlrow.PrepareClient(c, s.now())
	if err != nil {
		return store.Client{}, fmt.Errorf("postgres: create client: %w", err)
	}
	created, err := scanClient(s.q.QueryRow(ctx, `INSERT INTO oauth_clients (`+sqlrow.ClientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+sqlrow.ClientColumns,
		sqlrow.ClientValues(c, timeValue, listValue)...))
	if err != nil {
		return store.Client{}, fmt.Errorf("postgres: create client %q: %w", c.ID, mapErr(err))
	}
	return created, nil
}

// GetClient implements store.ClientStore, reading the primary: a client
// just disabled or deleted must not authenticate on a lagging replica.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	if !sqlrow.Storable(id) {
		return store.Client{}, fmt.Errorf("postgres: get client %q: %w", id, store.ErrNotFound)
	}
	c, err := scanClient(s.q.QueryRow(ctx, "SELECT "+sqlrow.ClientColumns+" FROM oauth_clients WHERE id = $1", id))
	if err != nil {
		return store.Client{}, fmt.Errorf("postgres: get client %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ListClients implements store.ClientStore: oldest first, ties broken by
// ID.
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.q.Query(ctx, "SELECT "+sqlrow.ClientColumns+" FROM oauth_clients ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("postgres: list clients: %w", mapErr(err))
	}
	defer rows.Close()
	var list []store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list clients: %w", err)
		}
		list = append(list, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list clients: %w", mapErr(err))
	}
	return list, nil
}

// DeleteClient implements store.ClientStore.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if !sqlrow.Storable(id) {
		return fmt.Errorf("postgres: delete client %q: %w", id, store.ErrNotFound)
	}
	tag, err := s.q.Exec(ctx, "DELETE FROM oauth_clients WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("postgres: delete client %q: %w", id, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete client %q: %w", id, store.ErrNotFound)
	}
	return nil
}
