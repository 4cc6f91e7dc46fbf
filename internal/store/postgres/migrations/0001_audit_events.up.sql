-- Append-only audit log: rows are inserted, never changed or removed.
CREATE TABLE audit_events (
    id          uuid        PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor_id    text,
    subject_id  text,
    action      text        NOT NULL CHECK (action <> ''),
    ip          text,
    user_agent  text,
    request_id  text,
    data        jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(data) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Listing is newest first with keyset pagination on (occurred_at, id), either
-- for one subject, for one actor or over everything.
CREATE INDEX audit_events_subject_idx ON audit_events (subject_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_occurred_idx ON audit_events (occurred_at DESC, id DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

-- Statement-level, so it also fires for an UPDATE or DELETE matching no row
-- and for TRUNCATE, which row triggers do not see.
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
