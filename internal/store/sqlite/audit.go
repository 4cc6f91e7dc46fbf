package sqlite

import (
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// The audit methods are shared with PostgreSQL (sqldb). StartSession
// records its sign-in event in its own statement with these.
const insertAuditEvent = `INSERT INTO audit_events
	(id, occurred_at, actor_id, subject_id, action, ip, user_agent, request_id, data)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

// auditEventValues are insertAuditEvent's arguments for a prepared event.
func auditEventValues(e store.AuditEvent, data []byte) []any {
	return []any{e.ID, e.OccurredAt.UnixMicro(), sqlrow.Null(e.ActorID), sqlrow.Null(e.SubjectID), e.Action,
		sqlrow.Null(e.IP), sqlrow.Null(e.UserAgent), sqlrow.Null(e.RequestID), string(data)}
}
