package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// AppendAuditEvent implements store.AuditLog.
func (s *Store) AppendAuditEvent(ctx context.Context, e store.AuditEvent) error {
	e, data, err := sqlrow.PrepareAuditEvent(e, s.now())
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	err = s.write(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, insertAuditEvent, auditEventValues(e, data)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: append audit event: %w", mapErr(err))
	}
	return nil
}

// ListAuditEvents implements store.AuditLog. It reads through the reader
// pool, or the transaction inside InTx.
func (s *Store) ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, string, error) {
	limit := sqlrow.AuditLimit(f.Limit)
	var (
		where []string
		args  []any
	)
	if f.SubjectID != "" {
		where = append(where, "subject_id = ?")
		args = append(args, f.SubjectID)
	}
	if f.ActorID != "" {
		where = append(where, "actor_id = ?")
		args = append(args, f.ActorID)
	}
	if f.Cursor != "" {
		at, id, err := sqlrow.DecodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list audit events: %w", err)
		}
		where = append(where, "(occurred_at, id) < (?, ?)")
		args = append(args, at.UnixMicro(), id)
	}
	q := "SELECT " + sqlrow.AuditColumns + " FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY occurred_at DESC, id DESC LIMIT ?"
	args = append(args, limit+1)

	rows, err := s.read().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list audit events: %w", mapErr(err))
	}
	defer rows.Close()
	events := make([]store.AuditEvent, 0, limit+1)
	for rows.Next() {
		e, err := sqlrow.ScanAuditEvent(rows, timeDest)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list audit events: %w", err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list audit events: %w", mapErr(err))
	}
	events, next := sqlrow.AuditPage(events, limit)
	return events, next, nil
}

const insertAuditEvent = `INSERT INTO audit_events
	(id, occurred_at, actor_id, subject_id, action, ip, user_agent, request_id, data)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

// auditEventValues are insertAuditEvent's arguments for a prepared event.
func auditEventValues(e store.AuditEvent, data []byte) []any {
	return []any{e.ID, e.OccurredAt.UnixMicro(), sqlrow.Null(e.ActorID), sqlrow.Null(e.SubjectID), e.Action,
		sqlrow.Null(e.IP), sqlrow.Null(e.UserAgent), sqlrow.Null(e.RequestID), string(data)}
}
