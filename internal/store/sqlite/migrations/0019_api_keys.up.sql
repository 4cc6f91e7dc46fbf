-- API keys and service accounts (issue 19). A service account is a row of
-- users (kind 'service_account') so that it holds roles like anyone, plus
-- a service_accounts row for what only service accounts have. Times are
-- INTEGER microseconds since the Unix epoch, UTC.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'service_account'));

-- created_by is who created it, kept after its actor is gone.
CREATE TABLE service_accounts (
    user_id         TEXT    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL CHECK (name <> ''),
    description     TEXT,
    organization_id TEXT    REFERENCES organizations (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    created_by      TEXT
) STRICT;

-- The listing of an organisation's service accounts, oldest first.
CREATE INDEX service_accounts_organization_idx ON service_accounts (organization_id, created_at, user_id);

-- Only a keyed hash of the secret is kept; prefix is for display.
-- permissions and allowed_cidrs are JSON arrays in the caller's order (an
-- empty list is read back as none, as every list column). rotated_from
-- names the key this one replaced, without a reference: the old key may
-- be deleted.
CREATE TABLE api_keys (
    id              TEXT    PRIMARY KEY NOT NULL,
    owner_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL CHECK (kind IN ('personal', 'service')),
    name            TEXT    NOT NULL,
    prefix          TEXT    NOT NULL,
    hash            BLOB    NOT NULL UNIQUE,
    permissions     TEXT    NOT NULL DEFAULT '[]',
    allowed_cidrs   TEXT    NOT NULL DEFAULT '[]',
    rate_limit_tier TEXT,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    revoked_reason  TEXT,
    rotated_from    TEXT,
    created_at      INTEGER NOT NULL,
    created_by      TEXT,
    last_used_at    INTEGER,
    last_used_ip    TEXT
) STRICT;

-- The keys of an owner, newest first.
CREATE INDEX api_keys_owner_idx ON api_keys (owner_id, created_at, id);

-- One row per key and UTC day.
CREATE TABLE api_key_usage (
    key_id   TEXT    NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day      INTEGER NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0 CHECK (requests >= 0),
    refusals INTEGER NOT NULL DEFAULT 0 CHECK (refusals >= 0),
    last_ip  TEXT,
    last_at  INTEGER,
    PRIMARY KEY (key_id, day)
) STRICT;
