-- Registered resource servers (RFC 8707 resource indicators): a token asked
-- for with resource=<identifier> carries the identifier as its aud.
CREATE TABLE apis (
    id         text        PRIMARY KEY CHECK (id <> ''),
    identifier text        NOT NULL UNIQUE CHECK (identifier <> ''),
    name       text        NOT NULL CHECK (name <> ''),
    scopes     text[]      NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- What a sign-in was granted: the aud of its access tokens ('{}': the
-- default audience in force when a token is issued).
ALTER TABLE sessions ADD COLUMN audience text[] NOT NULL DEFAULT '{}';
-- and the scope (space-separated; its refresh tokens carry it too).
ALTER TABLE sessions ADD COLUMN scope text;
