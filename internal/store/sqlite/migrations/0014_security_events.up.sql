-- Security events and incidents (issue 17): one record of every
-- security-relevant event (lockouts, refresh token reuse, risk decisions,
-- MFA failures, anomalies, admin changes to security settings), and the
-- incidents that correlation groups them into. user_id and actor_id are
-- not foreign keys: the record outlives the accounts it names. Times are
-- INTEGER microseconds since the Unix epoch, UTC.
CREATE TABLE security_incidents (
    id          TEXT    PRIMARY KEY NOT NULL CHECK (id <> ''),
    type        TEXT    NOT NULL CHECK (type <> ''),
    status      TEXT    NOT NULL CHECK (status IN ('open', 'resolved')),
    -- What correlates the incident's events: the IP, the device
    -- fingerprint or the user ID, depending on its type.
    key         TEXT    NOT NULL CHECK (key <> ''),
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    ips         TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(ips) AND json_type(ips) = 'array'),
    user_ids    TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(user_ids) AND json_type(user_ids) = 'array'),
    event_count INTEGER NOT NULL CHECK (event_count >= 0),
    resolved_at INTEGER,
    resolved_by TEXT,
    note        TEXT,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
) STRICT;

-- At most one open incident per type and key: correlation extends it.
CREATE UNIQUE INDEX security_incidents_open_idx ON security_incidents (type, key) WHERE status = 'open';
-- The listing, newest first with keyset pagination on (first_seen, id),
-- over everything, one status or one type.
CREATE INDEX security_incidents_first_seen_idx ON security_incidents (first_seen DESC, id DESC);
CREATE INDEX security_incidents_status_idx ON security_incidents (status, first_seen DESC, id DESC);
CREATE INDEX security_incidents_type_idx ON security_incidents (type, first_seen DESC, id DESC);

CREATE TABLE security_events (
    id          TEXT    PRIMARY KEY NOT NULL CHECK (id <> ''),
    type        TEXT    NOT NULL CHECK (type <> ''),
    severity    TEXT    NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    occurred_at INTEGER NOT NULL,
    user_id     TEXT,
    actor_id    TEXT,
    ip          TEXT,
    country     TEXT,
    city        TEXT,
    asn         INTEGER CHECK (asn >= 0),
    device      TEXT,
    score       INTEGER CHECK (score BETWEEN 0 AND 100),
    reasons     TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(reasons) AND json_type(reasons) = 'array'),
    incident_id TEXT    REFERENCES security_incidents (id) ON DELETE SET NULL,
    data        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data) AND json_type(data) = 'object')
) STRICT;

-- The listing, newest first with keyset pagination on (occurred_at, id),
-- unfiltered or by type, severity, user or IP; the user, IP and device
-- indexes also serve correlation (the events of one key in a window).
CREATE INDEX security_events_occurred_idx ON security_events (occurred_at DESC, id DESC);
CREATE INDEX security_events_type_idx ON security_events (type, occurred_at DESC, id DESC);
CREATE INDEX security_events_severity_idx ON security_events (severity, occurred_at DESC, id DESC);
CREATE INDEX security_events_user_idx ON security_events (user_id, occurred_at DESC, id DESC) WHERE user_id IS NOT NULL;
CREATE INDEX security_events_ip_idx ON security_events (ip, occurred_at DESC, id DESC) WHERE ip IS NOT NULL;
CREATE INDEX security_events_device_idx ON security_events (device, occurred_at) WHERE device IS NOT NULL;
-- The events of an incident.
CREATE INDEX security_events_incident_idx ON security_events (incident_id, occurred_at DESC, id DESC) WHERE incident_id IS NOT NULL;
