-- Accounts. A soft-deleted user keeps its row (deleted_at set) and gives up
-- its email address, which the partial unique index only reserves for users
-- not deleted. Times are INTEGER microseconds since the Unix epoch, UTC.
CREATE TABLE users (
    id                TEXT    PRIMARY KEY NOT NULL,
    email             TEXT    NOT NULL CHECK (email <> ''),
    email_normalized  TEXT    NOT NULL CHECK (email_normalized <> ''),
    email_verified_at INTEGER,
    pending_email     TEXT,
    password_hash     TEXT,
    name              TEXT,
    given_name        TEXT,
    family_name       TEXT,
    locale            TEXT,
    zoneinfo          TEXT,
    phone_number      TEXT,
    picture           TEXT,
    metadata          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    app_metadata      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(app_metadata) AND json_type(app_metadata) = 'object'),
    department        TEXT,
    job_title         TEXT,
    employee_id       TEXT,
    status            TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'locked')),
    is_admin          INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    last_login_at     INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    deleted_at        INTEGER
) STRICT;

CREATE UNIQUE INDEX users_email_normalized_key ON users (email_normalized) WHERE deleted_at IS NULL;
-- Listing by creation time (keyset on (created_at, id)); listing by email
-- uses the unique index above.
CREATE INDEX users_created_idx ON users (created_at, id) WHERE deleted_at IS NULL;

-- Links to external identity providers (social login).
CREATE TABLE identities (
    id         TEXT    PRIMARY KEY NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   TEXT    NOT NULL CHECK (provider <> ''),
    subject    TEXT    NOT NULL CHECK (subject <> ''),
    email      TEXT,
    linked_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    updated_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    UNIQUE (provider, subject)
) STRICT;

CREATE INDEX identities_user_idx ON identities (user_id);

-- Single-use tokens sent by email; only their SHA-256 is stored.
CREATE TABLE one_time_tokens (
    id          TEXT    PRIMARY KEY NOT NULL,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT    NOT NULL CHECK (purpose IN ('verify_email', 'email_change', 'password_reset')),
    token_hash  TEXT    NOT NULL UNIQUE CHECK (token_hash <> ''),
    email       TEXT,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, purpose);
-- At most one unconsumed token per user and purpose: a new one replaces it
-- (CreateOneTimeToken upserts on this index).
CREATE UNIQUE INDEX one_time_tokens_unconsumed_key ON one_time_tokens (user_id, purpose) WHERE consumed_at IS NULL;
