-- Access-token signing keys. private_key is the private JWK sealed with the
-- encryption keyring (bound to the key id), so the database never holds a
-- private key in plaintext; public_key is the public JWK as JSON text.
-- A key with retired_at NULL is current (the newest current one signs); a
-- retired key still verifies until expires_at, and is purged after it.
CREATE TABLE signing_keys (
    id           text        PRIMARY KEY CHECK (id <> ''),
    algorithm    text        NOT NULL CHECK (algorithm IN ('RS256', 'ES256', 'EdDSA')),
    private_key  text        NOT NULL CHECK (private_key <> ''),
    public_key   text        NOT NULL CHECK (public_key <> ''),
    created_at   timestamptz NOT NULL,
    activated_at timestamptz NOT NULL,
    retired_at   timestamptz,
    expires_at   timestamptz
);
