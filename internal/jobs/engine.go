package jobs

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// riverEngine implements engine for River's transaction type TTx (pgx.Tx
// or *sql.Tx).
type riverEngine[TTx any] struct {
	client   *river.Client[TTx]
	migrator *rivermigrate.Migrator[TTx]
	// asTx converts the caller's transaction, failing with ErrTxType.
	asTx func(tx any) (TTx, error)
}

func newEngine[TTx any](driver riverdriver.Driver[TTx], rc *river.Config, logger *slog.Logger, asTx func(any) (TTx, error)) (*riverEngine[TTx], error) {
	client, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &riverEngine[TTx]{client: client, migrator: migrator, asTx: asTx}, nil
}

func (e *riverEngine[TTx]) start(ctx context.Context) error { return e.client.Start(ctx) }
func (e *riverEngine[TTx]) stop(ctx context.Context) error  { return e.client.Stop(ctx) }
func (e *riverEngine[TTx]) stopAndCancel(ctx context.Context) error {
	return e.client.StopAndCancel(ctx)
}

func (e *riverEngine[TTx]) insertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	return e.client.InsertMany(ctx, params)
}

func (e *riverEngine[TTx]) insertManyTx(ctx context.Context, tx any, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	t, err := e.asTx(tx)
	if err != nil {
		return nil, err
	}
	return e.client.InsertManyTx(ctx, t, params)
}

func (e *riverEngine[TTx]) jobGet(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	return e.client.JobGet(ctx, id)
}

func (e *riverEngine[TTx]) migrateUp(ctx context.Context) ([]int, error) {
	res, err := e.migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, err
	}
	applied := make([]int, len(res.Versions))
	for i, v := range res.Versions {
		applied[i] = v.Version
	}
	return applied, nil
}

func (e *riverEngine[TTx]) migrationVersions(ctx context.Context) (applied, all []int, err error) {
	existing, err := e.migrator.ExistingVersions(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range existing {
		applied = append(applied, m.Version)
	}
	for _, m := range e.migrator.AllVersions() {
		all = append(all, m.Version)
	}
	return applied, all, nil
}
