-- Webhooks (issue 16): customer endpoints, the events recorded for them in
-- the transaction of the change they describe (the outbox), one delivery
-- per event and endpoint, and the attempts of each delivery.
CREATE TABLE webhook_endpoints (
    id                         text        PRIMARY KEY CHECK (id <> ''),
    url                        text        NOT NULL CHECK (url <> ''),
    events                     text[]      NOT NULL DEFAULT '{}',
    description                text,
    -- An organisation-scoped endpoint goes with its organisation.
    organization_id            uuid        REFERENCES organizations (id) ON DELETE CASCADE,
    enabled                    boolean     NOT NULL,
    disabled_reason            text        CHECK (disabled_reason IN ('admin', 'gone', 'failing')),
    -- The signing secrets, sealed by the application.
    secret                     text        NOT NULL CHECK (secret <> ''),
    previous_secret            text        CHECK (previous_secret <> ''),
    previous_secret_expires_at timestamptz,
    failing_since              timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    CHECK (enabled = (disabled_reason IS NULL)),
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);

-- The organisation-scoped endpoints of an organisation (and its cascade).
CREATE INDEX webhook_endpoints_organization_idx ON webhook_endpoints (organization_id);

-- data is json, not jsonb: it keeps the bytes the application wrote, so the
-- body signed on every attempt is the same.
CREATE TABLE webhook_events (
    id               text        PRIMARY KEY CHECK (id <> ''),
    type             text        NOT NULL CHECK (type <> ''),
    occurred_at      timestamptz NOT NULL,
    data             json        NOT NULL CHECK (json_typeof(data) = 'object'),
    user_id          text,
    organization_ids text[]      NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL
);

-- The retention job removes old events no delivery refers to.
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);

-- event_type is the event's type, copied for the listing filter.
CREATE TABLE webhook_deliveries (
    id              text        PRIMARY KEY CHECK (id <> ''),
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        text        NOT NULL REFERENCES webhook_events (id),
    event_type      text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);

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
    delivery_id text        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL CHECK (attempt > 0),
    endpoint_id text        NOT NULL,
    at          timestamptz NOT NULL,
    status_code integer     NOT NULL CHECK (status_code BETWEEN 0 AND 999),
    latency_ms  bigint      NOT NULL CHECK (latency_ms >= 0),
    error       text,
    response    text,
    PRIMARY KEY (delivery_id, attempt)
);

-- The attempts of a delivery, oldest first.
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, at);
-- The statistics of an endpoint since a time.
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, at);
