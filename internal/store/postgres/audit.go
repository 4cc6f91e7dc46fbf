package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

func timeDest(t *time.Time) any { return t }

// AppendAuditEvent implements store.AuditLog.
func (s *Store) AppendAuditEvent(ctx context.Context, e store.AuditEvent) error {
	e, data, err := sqlrow.PrepareAuditEvent(e, s.now())
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	_, err = s.q.Exec(ctx, insertAuditEvent, auditEventValues(e, data)...)
	if err != nil {
		return fmt.Errorf("postgres: append audit event: %w", mapErr(err))
	}
	return nil
}

// ListAuditEvents implements store.AuditLog. Outside a transaction it reads
// from a replica when one is configured and healthy.
func (s *Store) ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, string, error) {
	limit := sqlrow.AuditLimit(f.Limit)
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.SubjectID != "" {
		where = append(where, "subject_id = "+arg(f.SubjectID))
	}
	if f.ActorID != "" {
		where = append(where, "actor_id = "+arg(f.ActorID))
	}
	if f.Cursor != "" {
		at, id, err := sqlrow.DecodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list audit events: %w", err)
		}
		where = append(where, fmt.Sprintf("(occurred_at, id) < (%s, %s::uuid)", arg(at), arg(id)))
	}
	q := "SELECT " + sqlrow.AuditColumns + " FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY occurred_at DESC, id DESC LIMIT " + arg(limit+1)

	rows, err := s.reader(ctx).Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list audit events: %w", mapErr(err))
	}
	defer rows.Close()
	events := make([]store.AuditEvent, 0, limit+1)
	for rows.Next() {
		e, err := sqlrow.ScanAuditEvent(rows, timeDest)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list audit events: %w", err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("postgres: list audit events: %w", mapErr(err))
	}
	events, next := sqlrow.AuditPage(events, limit)
	return events, next, nil
}

const (
	// auditEventInto and auditEventParams make up insertAuditEvent; a
	// statement that inserts an event only on a condition (INSERT … SELECT
	// … WHERE) uses them too.
	auditEventInto   = `INSERT INTO audit_events (id, occurred_at, actor_id, subject_id, action, ip, user_agent, request_id, data)`
	auditEventParams = `$1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb`
	insertAuditEvent = auditEventInto + ` VALUES (` + auditEventParams + `)`
)

// auditEventValues are insertAuditEvent's arguments for a prepared event.
func auditEventValues(e store.AuditEvent, data []byte) []any {
	return []any{e.ID, e.OccurredAt, sqlrow.Null(e.ActorID), sqlrow.Null(e.SubjectID), e.Action,
		sqlrow.Null(e.IP), sqlrow.Null(e.UserAgent), sqlrow.Null(e.RequestID), string(data)}
}
