-- Webhooks (issue 16): customer endpoints, the events recorded for them in
-- the transaction of the change they describe (the outbox), one delivery
-- per event and endpoint, and the attempts of each delivery. Times are
-- INTEGER microseconds since the Unix epoch, UTC.
CREATE TABLE webhook_endpoints (
    id                         TEXT    PRIMARY KEY NOT NULL CHECK (id <> ''),
    url                        TEXT    NOT NULL CHECK (url <> ''),
    events                     TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(events) AND json_type(events) = 'array'),
    description                TEXT,
    -- An organisation-scoped endpoint goes with its organisation.
    organization_id            TEXT    REFERENCES organizations (id) ON DELETE CASCADE,
    enabled                    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    disabled_reason            TEXT    CHECK (disabled_reason IN ('admin', 'gone', 'failing')),
    -- The signing secrets, sealed by the application.
    secret                     TEXT    NOT NULL CHECK (secret <> ''),
    previous_secret            TEXT    CHECK (previous_secret <> ''),
    previous_secret_expires_at INTEGER,
    failing_since              INTEGER,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL,
    CHECK (enabled = (disabled_reason IS NULL)),
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
) STRICT;

-- The organisation-scoped endpoints of an organisation (and its cascade).
CREATE INDEX webhook_endpoints_organization_idx ON webhook_endpoints (organization_id);

-- data keeps the bytes the application wrote, so the body signed on every
-- attempt is the same.
CREATE TABLE webhook_events (
    id               TEXT    PRIMARY KEY NOT NULL CHECK (id <> ''),
    type             TEXT    NOT NULL CHECK (type <> ''),
    occurred_at      INTEGER NOT NULL,
    data             TEXT    NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object'),
    user_id          TEXT,
    organization_ids TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(organization_ids) AND json_type(organization_ids) = 'array'),
    created_at       INTEGER NOT NULL
) STRICT;

-- The retention job removes old events no delivery refers to.
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);

-- event_type is the event's type, copied for the listing filter.
CREATE TABLE webhook_deliveries (
    id              TEXT    PRIMARY KEY NOT NULL CHECK (id <> ''),
    endpoint_id     TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT    NOT NULL REFERENCES webhook_events (id),
    event_type      TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
) STRICT;

-- The delivery log of an endpoint, newest first with keyset pagination on
-- (created_at, id), over every status or one; the first also serves the
-- endpoint's cascade and the statistics.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_endpoint_status_idx ON webhook_deliveries (endpoint_id, status, created_at DESC, id DESC);
-- The queue depth and the age of the oldest pending delivery.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (created_at) WHERE status = 'pending';
-- The retention job, and whether an event still has deliveries.
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

-- One row per attempt: attempt counts them from 1 within a delivery.
-- endpoint_id is the delivery's, copied for the statistics; the delivery's
-- foreign key removes the attempts with it.
CREATE TABLE webhook_attempts (
    delivery_id TEXT    NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL CHECK (attempt > 0),
    endpoint_id TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER NOT NULL CHECK (status_code BETWEEN 0 AND 999),
    latency_ms  INTEGER NOT NULL CHECK (latency_ms >= 0),
    error       TEXT,
    response    TEXT,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;

-- The attempts of a delivery, oldest first.
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, at);
-- The statistics of an endpoint since a time.
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, at);
