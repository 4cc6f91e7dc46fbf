-- Registered resource servers (RFC 8707 resource indicators): a token asked
-- for with resource=<identifier> carries the identifier as its aud.
CREATE TABLE apis (
    id         TEXT    PRIMARY KEY NOT NULL CHECK (id <> ''),
    identifier TEXT    NOT NULL UNIQUE CHECK (identifier <> ''),
    name       TEXT    NOT NULL CHECK (name <> ''),
    scopes     TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
-- What a sign-in was granted: the aud of its access tokens ('[]': the
-- default audience in force when a token is issued).
ALTER TABLE sessions ADD COLUMN audience TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(audience) AND json_type(audience) = 'array');
-- and the scope (space-separated; its refresh tokens carry it too).
ALTER TABLE sessions ADD COLUMN scope TEXT;
