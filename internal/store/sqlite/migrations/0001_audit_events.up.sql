-- Append-only audit log: rows are inserted, never changed or removed.
-- Times are INTEGER microseconds since the Unix epoch, UTC, as everywhere in
-- the SQLite schema.
CREATE TABLE audit_events (
    id          TEXT    PRIMARY KEY NOT NULL,
    occurred_at INTEGER NOT NULL,
    actor_id    TEXT,
    subject_id  TEXT,
    action      TEXT    NOT NULL CHECK (action <> ''),
    ip          TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    data        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data) AND json_type(data) = 'object'),
    created_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER))
) STRICT;

-- Listing is newest first with keyset pagination on (occurred_at, id), either
-- for one subject, for one actor or over everything.
CREATE INDEX audit_events_subject_idx ON audit_events (subject_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_occurred_idx ON audit_events (occurred_at DESC, id DESC);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE is not allowed');
END;
