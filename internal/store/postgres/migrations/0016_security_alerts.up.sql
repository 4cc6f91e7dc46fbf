-- Alerting on security events and incidents (issue 17): the account a
-- failed sign-in tried (the user's ID, or a keyed hash of an unknown login
-- name), so that credential stuffing counts accounts that do not exist
-- too; an incident's severity, when administrators were last notified of
-- it and how many times it was escalated.
ALTER TABLE security_events ADD COLUMN account text;
ALTER TABLE security_incidents ADD COLUMN severity text NOT NULL DEFAULT 'medium'
    CHECK (severity IN ('low', 'medium', 'high', 'critical'));
ALTER TABLE security_incidents ADD COLUMN notified_at timestamptz;
ALTER TABLE security_incidents ADD COLUMN escalations integer NOT NULL DEFAULT 0 CHECK (escalations >= 0);
-- Escalation: the open incidents notified longest ago.
CREATE INDEX security_incidents_notified_idx ON security_incidents (notified_at) WHERE status = 'open' AND notified_at IS NOT NULL;
