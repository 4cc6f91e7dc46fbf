-- API keys and service accounts (issue 19). A service account is a row of
-- users (kind 'service_account') so that it holds roles like anyone, plus
-- a service_accounts row for what only service accounts have.
ALTER TABLE users ADD COLUMN kind text NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'service_account'));

-- created_by is who created it, kept after its actor is gone.
CREATE TABLE service_accounts (
    user_id         uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    name            text        NOT NULL CHECK (name <> ''),
    description     text,
    organization_id uuid        REFERENCES organizations (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    created_by      text
);

-- The listing of an organisation's service accounts, oldest first.
CREATE INDEX service_accounts_organization_idx ON service_accounts (organization_id, created_at, user_id);

-- Only a keyed hash of the secret is kept; prefix is for display.
-- permissions and allowed_cidrs keep the caller's order (an empty list is
-- read back as none, as every list column). rotated_from names the key
-- this one replaced, without a reference: the old key may be deleted.
CREATE TABLE api_keys (
    id              uuid        PRIMARY KEY,
    owner_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            text        NOT NULL CHECK (kind IN ('personal', 'service')),
    name            text        NOT NULL,
    prefix          text        NOT NULL,
    hash            bytea       NOT NULL UNIQUE,
    permissions     text[]      NOT NULL DEFAULT '{}',
    allowed_cidrs   text[]      NOT NULL DEFAULT '{}',
    rate_limit_tier text,
    expires_at      timestamptz,
    revoked_at      timestamptz,
    revoked_reason  text,
    rotated_from    uuid,
    created_at      timestamptz NOT NULL,
    created_by      text,
    last_used_at    timestamptz,
    last_used_ip    text
);

-- The keys of an owner, newest first.
CREATE INDEX api_keys_owner_idx ON api_keys (owner_id, created_at, id);

-- One row per key and UTC day.
CREATE TABLE api_key_usage (
    key_id   uuid        NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day      timestamptz NOT NULL,
    requests bigint      NOT NULL DEFAULT 0 CHECK (requests >= 0),
    refusals bigint      NOT NULL DEFAULT 0 CHECK (refusals >= 0),
    last_ip  text,
    last_at  timestamptz,
    PRIMARY KEY (key_id, day)
);
