package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// pgStats reads PostgreSQL's per-table access counters of the server's
// database, to count the lookups and writes a request costs. The counters
// of a backend reach pg_stat_user_tables up to about ten seconds after its
// last transaction (PostgreSQL 15 flushes idle backends' statistics every
// 10 s), so a reading is only complete after the server has been idle that
// long; callers wait before each reading.
type pgStats struct{ conn *pgx.Conn }

func openPGStats(ctx context.Context, url string) (*pgStats, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	return &pgStats{conn: conn}, nil
}

func (p *pgStats) Close(ctx context.Context) { p.conn.Close(ctx) }

// counters are the database's cumulative counters: per table, and the
// transactions of the whole database.
type counters struct {
	tables map[string]tableCounters
	xacts  int64
}

// tableCounters are one table's cumulative counters.
type tableCounters struct {
	IdxScan, SeqScan, Ins, Upd, HotUpd, Del int64
}

// snapshot reads the counters of every table except River's job queue
// tables, whose background polling is not part of any request.
func (p *pgStats) snapshot(ctx context.Context) (counters, error) {
	c := counters{}
	if err := p.conn.QueryRow(ctx, `
SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&c.xacts); err != nil {
		return c, err
	}
	var err error
	c.tables, err = p.tables(ctx)
	return c, err
}

func (p *pgStats) tables(ctx context.Context) (map[string]tableCounters, error) {
	rows, err := p.conn.Query(ctx, `
SELECT relname, COALESCE(idx_scan, 0), COALESCE(seq_scan, 0), n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
FROM pg_stat_user_tables
WHERE relname NOT LIKE 'river\_%'`)
	if err != nil {
		return nil, err
	}
	out := map[string]tableCounters{}
	for rows.Next() {
		var name string
		var c tableCounters
		if err := rows.Scan(&name, &c.IdxScan, &c.SeqScan, &c.Ins, &c.Upd, &c.HotUpd, &c.Del); err != nil {
			return nil, err
		}
		out[name] = c
	}
	return out, rows.Err()
}

// dbCost is what the requests of one scenario cost the database, per
// request.
type dbCost struct {
	Requests int64 `json:"requests"` // requests the counters cover (warm-up included)
	// Transactions are the database's committed and rolled-back
	// transactions per request; a statement outside a transaction is one.
	// They include the job queue's background polling (a few a second).
	Transactions float64 `json:"transactions_per_request"`
	// Lookups are index scans plus sequential scans per request, by table
	// and in total; Writes are rows inserted, updated or deleted.
	Lookups      float64            `json:"lookups_per_request"`
	Writes       float64            `json:"row_writes_per_request"`
	LookupsTable map[string]float64 `json:"lookups_per_request_by_table"`
	SeqScans     float64            `json:"seq_scans_per_request"`
	// HotUpdates are updated rows per request that were heap-only tuple
	// (HOT) updates: no index touched.
	HotUpdates float64 `json:"hot_updates_per_request"`
	Updates    float64 `json:"updates_per_request"`
}

func costOf(before, after counters, requests int64) *dbCost {
	c := &dbCost{Requests: requests, LookupsTable: map[string]float64{}}
	if requests == 0 {
		return c
	}
	n := float64(requests)
	// Less the one transaction of the reading itself.
	c.Transactions = float64(after.xacts-before.xacts-1) / n
	for name, a := range after.tables {
		b := before.tables[name]
		look := (a.IdxScan - b.IdxScan) + (a.SeqScan - b.SeqScan)
		c.Lookups += float64(look) / n
		c.SeqScans += float64(a.SeqScan-b.SeqScan) / n
		c.Writes += float64((a.Ins-b.Ins)+(a.Upd-b.Upd)+(a.Del-b.Del)) / n
		c.Updates += float64(a.Upd-b.Upd) / n
		c.HotUpdates += float64(a.HotUpd-b.HotUpd) / n
		if look != 0 {
			c.LookupsTable[name] = float64(look) / n
		}
	}
	return c
}

// String is "2.00 transactions, 2.00 lookups (oauth_clients 1.00, users 1.00), …".
func (c *dbCost) String() string {
	names := make([]string, 0, len(c.LookupsTable))
	for n := range c.LookupsTable {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f", n, c.LookupsTable[n]))
	}
	by := ""
	if len(parts) > 0 {
		by = " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("%.2f transactions, %.2f table lookups%s, %.2f seq scans, %.2f row writes (%.2f of %.2f updates HOT) per request",
		c.Transactions, c.Lookups, by, c.SeqScans, c.Writes, c.HotUpdates, c.Updates)
}
