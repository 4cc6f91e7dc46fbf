-- Sign-in sessions and their refresh token families, and registered OAuth
-- clients. Times are INTEGER microseconds since the Unix epoch, UTC; lists
-- are JSON arrays of strings.
CREATE TABLE sessions (
    id                 TEXT    PRIMARY KEY NOT NULL,
    user_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The client the user signed in through; NULL for Gatehouse's own API.
    -- Not a foreign key: deleting a client leaves its sessions to expire.
    client_id          TEXT,
    created_at         INTEGER NOT NULL,
    last_seen_at       INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    ip                 TEXT,
    user_agent         TEXT,
    browser            TEXT,
    os                 TEXT,
    device_type        TEXT,
    device_fingerprint TEXT,
    amr                TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(amr) AND json_type(amr) = 'array'),
    auth_time          INTEGER,
    revoked_at         INTEGER,
    revoked_reason     TEXT
) STRICT;

-- A user's sessions, newest first.
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at DESC);
-- The kill switch (sessions created before a moment).
CREATE INDEX sessions_created_idx ON sessions (created_at);
-- Purging sessions that ended.
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens: only the SHA-256 of each token is stored. A token is
-- live until rotated_at (exchanged for successor_id) or revoked_at is set.
-- parent_id and successor_id are plain references within the family, which
-- is deleted with its session.
CREATE TABLE refresh_tokens (
    id               TEXT    PRIMARY KEY NOT NULL,
    session_id       TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id          TEXT    NOT NULL,
    client_id        TEXT,
    scope            TEXT,
    token_hash       TEXT    NOT NULL UNIQUE CHECK (token_hash <> ''),
    parent_id        TEXT,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    idle_expires_at  INTEGER,
    rotated_at       INTEGER,
    successor_id     TEXT,
    -- The successor's token sealed with the keyring, kept for the reuse
    -- grace window only: rotation clears it on the grandparent and
    -- revocation and purging clear it too.
    sealed_successor TEXT,
    revoked_at       INTEGER
) STRICT;

CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
-- Purging stale sealed successors.
CREATE INDEX refresh_tokens_sealed_idx ON refresh_tokens (rotated_at) WHERE sealed_successor IS NOT NULL;

-- Registered OAuth clients. id is the client_id; secret_hash is the hash of
-- the client secret, never the secret.
CREATE TABLE oauth_clients (
    id          TEXT    PRIMARY KEY NOT NULL CHECK (id <> ''),
    name        TEXT,
    secret_hash TEXT,
    scopes      TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    disabled_at INTEGER
) STRICT;
