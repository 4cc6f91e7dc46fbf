-- Accounts. A soft-deleted user keeps its row (deleted_at set) and gives up
-- its email address, which the partial unique index only reserves for users
-- not deleted.
CREATE TABLE users (
    id                uuid        PRIMARY KEY,
    email             text        NOT NULL CHECK (email <> ''),
    -- COLLATE "C": ordering and comparison by code point whatever the
    -- database's locale, as on SQLite, so keyset pages are stable.
    email_normalized  text        COLLATE "C" NOT NULL CHECK (email_normalized <> ''),
    email_verified_at timestamptz,
    pending_email     text,
    password_hash     text,
    name              text,
    given_name        text,
    family_name       text,
    locale            text,
    zoneinfo          text,
    phone_number      text,
    picture           text,
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    app_metadata      jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(app_metadata) = 'object'),
    department        text,
    job_title         text,
    employee_id       text,
    status            text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'locked')),
    is_admin          boolean     NOT NULL DEFAULT false,
    last_login_at     timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    deleted_at        timestamptz
);

CREATE UNIQUE INDEX users_email_normalized_key ON users (email_normalized) WHERE deleted_at IS NULL;
-- Listing by creation time (keyset on (created_at, id)); listing by email
-- uses the unique index above.
CREATE INDEX users_created_idx ON users (created_at, id) WHERE deleted_at IS NULL;

-- Links to external identity providers (social login).
CREATE TABLE identities (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   text        NOT NULL CHECK (provider <> ''),
    subject    text        NOT NULL CHECK (subject <> ''),
    email      text,
    linked_at  timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, subject)
);

CREATE INDEX identities_user_idx ON identities (user_id);

-- Single-use tokens sent by email; only their SHA-256 is stored.
CREATE TABLE one_time_tokens (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text        NOT NULL CHECK (purpose IN ('verify_email', 'email_change', 'password_reset')),
    token_hash  text        NOT NULL UNIQUE CHECK (token_hash <> ''),
    email       text,
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz,
    created_at  timestamptz NOT NULL
);

CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, purpose);
-- At most one unconsumed token per user and purpose: a new one replaces it
-- (CreateOneTimeToken upserts on this index), so even concurrent requests
-- for a new link leave a single valid one.
CREATE UNIQUE INDEX one_time_tokens_unconsumed_key ON one_time_tokens (user_id, purpose) WHERE consumed_at IS NULL;
