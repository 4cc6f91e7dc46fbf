DROP INDEX security_incidents_notified_idx;
ALTER TABLE security_incidents DROP COLUMN escalations;
ALTER TABLE security_incidents DROP COLUMN notified_at;
ALTER TABLE security_incidents DROP COLUMN severity;
ALTER TABLE security_events DROP COLUMN account;
