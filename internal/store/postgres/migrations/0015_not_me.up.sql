-- "Was this you?" (issue 17). A user who disowns a sign-in must reset the
-- password before signing in with it again: password_reset_required_at is
-- when they disowned it (NULL: no reset required).
ALTER TABLE users ADD COLUMN password_reset_required_at timestamptz;

-- The "this wasn't me" links of new-sign-in emails (store.PurposeNotMe):
-- one-time tokens with the columns of one_time_tokens (only the token's
-- SHA-256 is stored) that do not replace each other, so that every such
-- email keeps a working link. They have a table of their own because
-- one_time_tokens keeps one unconsumed token per user and purpose, and the
-- previous release's upsert needs that index as it is: changing it would
-- break that release's nodes during a rolling deploy (docs/migrations.md).
CREATE TABLE not_me_tokens (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text        NOT NULL DEFAULT 'not_me' CHECK (purpose = 'not_me'),
    token_hash  text        NOT NULL UNIQUE CHECK (token_hash <> ''),
    email       text,
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz,
    created_at  timestamptz NOT NULL
);

-- A user's tokens, deleted together when one of them is redeemed.
CREATE INDEX not_me_tokens_user_idx ON not_me_tokens (user_id);
