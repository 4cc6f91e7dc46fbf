package postgres

import (
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/store/internal/sqlrow"
)

// The audit methods are shared with SQLite (sqldb). StartSession records
// its sign-in event in its own statement with these.
// auditEventInto and auditEventParams make up a statement that inserts an
// event only on a condition (INSERT … SELECT … WHERE).
const (
	auditEventInto   = `INSERT INTO audit_events (id, occurred_at, actor_id, subject_id, action, ip, user_agent, request_id, data)`
	auditEventParams = `$1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb`
)

// auditEventValues are auditEventParams' arguments for a prepared event.
func auditEventValues(e store.AuditEvent, data []byte) []any {
	return []any{e.ID, e.OccurredAt, sqlrow.Null(e.ActorID), sqlrow.Null(e.SubjectID), e.Action,
		sqlrow.Null(e.IP), sqlrow.Null(e.UserAgent), sqlrow.Null(e.RequestID), string(data)}
}
