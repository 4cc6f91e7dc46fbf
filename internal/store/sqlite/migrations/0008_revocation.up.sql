-- The durable side of access-token revocation. The kv store keeps a
-- per-request cache of it; when that cache loses its data (the in-process
-- store at every start) it is rebuilt from these rows and from
-- sessions.revoked_at.
--
-- revocation_state has exactly one row: the epoch that marks a complete
-- cache (random, fixed here) and the kill-switch time, which only moves
-- forward (max() in the update). Times are INTEGER microseconds since the
-- Unix epoch, UTC.
CREATE TABLE revocation_state (
    id            INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    epoch         TEXT    NOT NULL CHECK (epoch <> ''),
    revoke_before INTEGER
) STRICT;
INSERT INTO revocation_state (id, epoch) VALUES (1, lower(hex(randomblob(16))));

-- Denied access tokens: every token of a session (kind 'session') or one
-- token without a session by its jti (kind 'token'), until the last of
-- them has expired.
CREATE TABLE access_denials (
    kind  TEXT    NOT NULL CHECK (kind IN ('session', 'token')),
    id    TEXT    NOT NULL CHECK (id <> ''),
    until INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT;
CREATE INDEX access_denials_until_idx ON access_denials (until);
