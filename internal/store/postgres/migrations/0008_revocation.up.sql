-- The durable side of access-token revocation. Redis (or the in-process
-- store) keeps a per-request cache of it; when that cache loses its data it
-- is rebuilt from these rows and from sessions.revoked_at.
--
-- revocation_state has exactly one row: the epoch that marks a complete
-- cache (random, fixed here) and the kill-switch time, which only moves
-- forward (GREATEST in the update).
CREATE TABLE revocation_state (
    id            smallint    PRIMARY KEY CHECK (id = 1),
    epoch         text        NOT NULL CHECK (epoch <> ''),
    revoke_before timestamptz
);
INSERT INTO revocation_state (id, epoch) VALUES (1, md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));

-- Denied access tokens: every token of a session (kind 'session') or one
-- token without a session by its jti (kind 'token'), until the last of
-- them has expired.
CREATE TABLE access_denials (
    kind       text        NOT NULL CHECK (kind IN ('session', 'token')),
    id         text        NOT NULL CHECK (id <> ''),
    until      timestamptz NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX access_denials_until_idx ON access_denials (until);
