package sqlite

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
		return store.Client{}, fmt.Errorf("sqlite: create client: %w", err)
	}
	var created store.Client
	err = s.write(ctx, func(q querier) error {
		created, err = scanClient(q.QueryRowContext(ctx, `INSERT INTO oauth_clients (`+sqlrow.ClientColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+sqlrow.ClientColumns,
			sqlrow.ClientValues(c, timeValue, listValue)...))
		return err
	})
	if err != nil {
		return store.Client{}, fmt.Errorf("sqlite: create client %q: %w", c.ID, mapErr(err))
	}
	return created, nil
}

// GetClient implements store.ClientStore.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	if !sqlrow.Storable(id) {
		return store.Client{}, fmt.Errorf("sqlite: get client %q: %w", id, store.ErrNotFound)
	}
	c, err := scanClient(s.read().QueryRowContext(ctx, "SELECT "+sqlrow.ClientColumns+" FROM oauth_clients WHERE id = ?", id))
	if err != nil {
		return store.Client{}, fmt.Errorf("sqlite: get client %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ListClients implements store.ClientStore: oldest first, ties broken by
// ID.
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.read().QueryContext(ctx, "SELECT "+sqlrow.ClientColumns+" FROM oauth_clients ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("sqlite: list clients: %w", mapErr(err))
	}
	defer rows.Close()
	var list []store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list clients: %w", err)
		}
		list = append(list, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list clients: %w", mapErr(err))
	}
	return list, nil
}

// DeleteClient implements store.ClientStore.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if !sqlrow.Storable(id) {
		return fmt.Errorf("sqlite: delete client %q: %w", id, store.ErrNotFound)
	}
	var n int64
	err := s.write(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, "DELETE FROM oauth_clients WHERE id = ?", id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete client %q: %w", id, mapErr(err))
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete client %q: %w", id, store.ErrNotFound)
	}
	return nil
}
