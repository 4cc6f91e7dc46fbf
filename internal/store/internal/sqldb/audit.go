package sqldb

import (
	"context"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// AppendAuditEvent implements store.AuditLog.
func (t *Tables) AppendAuditEvent(ctx context.Context, e store.AuditEvent) error {
	e, data, err := sqlrow.PrepareAuditEvent(e, t.now())
	if err != nil {
		return t.errorf("%w", err)
	}
	_, err = t.x.Exec(ctx, `INSERT INTO audit_events (id, occurred_at, actor_id, subject_id, action, ip, user_agent, request_id, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.ID, t.d.TimeValue(e.OccurredAt), sqlrow.Null(e.ActorID), sqlrow.Null(e.SubjectID), e.Action,
		sqlrow.Null(e.IP), sqlrow.Null(e.UserAgent), sqlrow.Null(e.RequestID), string(data))
	if err != nil {
		return t.errorf("append audit event: %w", t.d.MapErr(err))
	}
	return nil
}

// ListAuditEvents implements store.AuditLog: newest first, by keyset
// cursor. Outside a transaction it reads from a replica when one is
// configured and healthy.
func (t *Tables) ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, string, error) {
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
			return nil, "", t.errorf("list audit events: %w", err)
		}
		where = append(where, fmt.Sprintf("(occurred_at, id) < (%s, %s)", arg(t.d.TimeValue(at)), arg(id)))
	}
	q := "SELECT " + sqlrow.AuditColumns + " FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY occurred_at DESC, id DESC LIMIT " + arg(limit+1)

	events := make([]store.AuditEvent, 0, limit+1)
	err := t.x.Rows(ctx, Replica, q, args, func(r sqlrow.Scanner) error {
		e, err := sqlrow.ScanAuditEvent(r, t.d.TimeDest)
		if err != nil {
			return err
		}
		events = append(events, e)
		return nil
	})
	if err != nil {
		return nil, "", t.errorf("list audit events: %w", t.d.MapErr(err))
	}
	events, next := sqlrow.AuditPage(events, limit)
	return events, next, nil
}
