package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pipeTx is a transaction for the hot paths whose BEGIN and COMMIT travel
// with its statements: BEGIN in the first batch, COMMIT in the last, so a
// transaction that reads, decides in Go and writes takes two round trips
// instead of one per statement. Statements of one batch still run one
// after another, each (under READ COMMITTED) with a snapshot taken when it
// starts: a statement queued after a SELECT … FOR UPDATE sees what the
// holder of that lock committed.
//
// Inside InTx a pipeTx runs in the enclosing transaction and sends neither
// BEGIN nor COMMIT.
type pipeTx struct {
	conn  *pgxpool.Conn // our own transaction's connection; nil inside InTx
	outer pgx.Tx        // the enclosing transaction, or nil
	begun bool
	done  bool
}

// pipelined runs fn in a pipeTx. Unless fn's last send committed, the
// transaction is rolled back; a connection that cannot be rolled back is
// closed rather than returned to the pool.
func (s *Store) pipelined(ctx context.Context, fn func(p *pipeTx) error) error {
	if s.tx != nil {
		return fn(&pipeTx{outer: s.tx})
	}
	conn, err := s.primary.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: acquire: %w", mapErr(err))
	}
	p := &pipeTx{conn: conn}
	defer func() {
		pc := conn.Conn().PgConn()
		if !pc.IsClosed() && pc.TxStatus() != 'I' {
			rctx, cancel := rollbackContext(ctx)
			defer cancel()
			if _, err := conn.Exec(rctx, "ROLLBACK"); err != nil {
				_ = conn.Conn().Close(rctx)
			}
		}
		conn.Release() // destroys a connection left busy, closed or in a transaction
	}()
	return fn(p)
}

// reopen lets a pipeTx whose last send committed begin a new transaction
// on the same connection with its next send. Inside InTx the enclosing
// transaction goes on: the next send runs in it.
func (p *pipeTx) reopen() {
	p.begun, p.done = p.conn == nil && p.begun, false
}

// send sends the statements queued in b in one round trip, preceded by
// BEGIN if the transaction has not begun and followed by COMMIT if last;
// read consumes b's results, one per statement, in order. A batch may be
// empty (a commit alone). After an error the transaction is lost: return
// the error from pipelined's fn. The server runs a batch whole unless a
// statement fails, so an error read finds in a result the server did not
// reject (a scan into the wrong type, say) does not stop a COMMIT queued
// in the same batch.
func (p *pipeTx) send(ctx context.Context, b *pgx.Batch, last bool, read func(pgx.BatchResults) error) error {
	if p.done {
		return errors.New("postgres: pipelined transaction already ended")
	}
	own := p.conn != nil
	lead, commit := own && !p.begun, own && last
	full := b
	if lead || commit {
		full = &pgx.Batch{}
		if lead {
			full.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
		}
		full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
		if commit {
			full.Queue("COMMIT")
		}
	}
	if len(full.QueuedQueries) == 0 {
		p.done = last
		return nil
	}
	var br pgx.BatchResults
	if own {
		br = p.conn.SendBatch(ctx, full)
	} else {
		br = p.outer.SendBatch(ctx, full)
	}
	err := func() error {
		if lead {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("postgres: begin: %w", err)
			}
			p.begun = true
		}
		if read != nil {
			if err := read(br); err != nil {
				return err
			}
		}
		if commit {
			tag, err := br.Exec()
			if err != nil {
				return fmt.Errorf("postgres: commit: %w", err)
			}
			if tag.String() == "ROLLBACK" {
				return fmt.Errorf("postgres: commit: %w", pgx.ErrTxCommitRollback)
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	p.done = last || err != nil
	return err
}
