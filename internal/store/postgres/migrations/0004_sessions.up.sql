-- Sign-in sessions and their refresh token families, and registered OAuth
-- clients.
--
-- Every write to a session's family (rotation, reuse detection,
-- revocation) first locks the session row, then the token rows: one lock
-- order, so they neither deadlock nor miss a token inserted by a
-- concurrent rotation.
CREATE TABLE sessions (
    id                 uuid        PRIMARY KEY,
    user_id            uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The client the user signed in through; NULL for Gatehouse's own API.
    -- Not a foreign key: deleting a client leaves its sessions to expire.
    client_id          text,
    created_at         timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    ip                 text,
    user_agent         text,
    browser            text,
    os                 text,
    device_type        text,
    device_fingerprint text,
    amr                text[]      NOT NULL DEFAULT '{}',
    auth_time          timestamptz,
    revoked_at         timestamptz,
    revoked_reason     text
);

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
    id               uuid        PRIMARY KEY,
    session_id       uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id          uuid        NOT NULL,
    client_id        text,
    scope            text,
    token_hash       text        NOT NULL UNIQUE CHECK (token_hash <> ''),
    parent_id        uuid,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    idle_expires_at  timestamptz,
    rotated_at       timestamptz,
    successor_id     uuid,
    -- The successor's token sealed with the keyring, kept for the reuse
    -- grace window only: rotation clears it on the grandparent and
    -- revocation and purging clear it too.
    sealed_successor text,
    revoked_at       timestamptz
);

CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
-- Purging stale sealed successors.
CREATE INDEX refresh_tokens_sealed_idx ON refresh_tokens (rotated_at) WHERE sealed_successor IS NOT NULL;

-- Registered OAuth clients. id is the client_id; secret_hash is the hash of
-- the client secret, never the secret.
CREATE TABLE oauth_clients (
    id          text        PRIMARY KEY CHECK (id <> ''),
    name        text,
    secret_hash text,
    scopes      text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    disabled_at timestamptz
);
