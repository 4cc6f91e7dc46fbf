-- Access-token signing keys. private_key is the private JWK sealed with the
-- encryption keyring (bound to the key id), so the database never holds a
-- private key in plaintext; public_key is the public JWK as JSON text.
-- A key with retired_at NULL is current (the newest current one signs); a
-- retired key still verifies until expires_at, and is purged after it.
-- Times are INTEGER microseconds since the Unix epoch, UTC.
CREATE TABLE signing_keys (
    id           TEXT    PRIMARY KEY NOT NULL CHECK (id <> ''),
    algorithm    TEXT    NOT NULL CHECK (algorithm IN ('RS256', 'ES256', 'EdDSA')),
    private_key  TEXT    NOT NULL CHECK (private_key <> ''),
    public_key   TEXT    NOT NULL CHECK (public_key <> ''),
    created_at   INTEGER NOT NULL,
    activated_at INTEGER NOT NULL,
    retired_at   INTEGER,
    expires_at   INTEGER
) STRICT;
