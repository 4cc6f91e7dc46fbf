-- WebAuthn passkeys: a user's credentials for passwordless
-- sign-in and as a second factor. Nothing here is secret: public_key is the
-- credential's COSE_Key. The user handle is the user's UUID, so it has no
-- column. transports keeps the authenticator's order (an empty list is read
-- back as none, as every list column). sign_count is the authenticator's
-- 32-bit counter; UsePasskey moves it with a compare-and-set. cloned_at is
-- set once, when an assertion's count went backwards; the credential is
-- refused from then on.
CREATE TABLE passkeys (
    id               uuid        PRIMARY KEY,
    user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id    bytea       NOT NULL CHECK (octet_length(credential_id) BETWEEN 1 AND 1023),
    public_key       bytea       NOT NULL CHECK (octet_length(public_key) > 0),
    attestation_type text        NOT NULL,
    aaguid           bytea       NOT NULL CHECK (octet_length(aaguid) = 16),
    sign_count       bigint      NOT NULL DEFAULT 0 CHECK (sign_count BETWEEN 0 AND 4294967295),
    transports       text[]      NOT NULL DEFAULT '{}',
    backup_eligible  boolean     NOT NULL DEFAULT false,
    backup_state     boolean     NOT NULL DEFAULT false,
    user_verified    boolean     NOT NULL DEFAULT false,
    name             text        NOT NULL,
    created_at       timestamptz NOT NULL,
    last_used_at     timestamptz,
    cloned_at        timestamptz
);

-- A credential ID names one passkey, whoever holds it (sign-in looks the
-- credential up before it knows the user).
CREATE UNIQUE INDEX passkeys_credential_id_key ON passkeys (credential_id);

-- The passkeys of a user, oldest first.
CREATE INDEX passkeys_user_idx ON passkeys (user_id, created_at, id);
