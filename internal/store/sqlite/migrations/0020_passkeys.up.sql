-- WebAuthn passkeys: a user's credentials for passwordless
-- sign-in and as a second factor. Nothing here is secret: public_key is the
-- credential's COSE_Key. The user handle is the user's UUID, so it has no
-- column. transports is a JSON array in the authenticator's order (an empty
-- list is read back as none, as every list column). sign_count is the
-- authenticator's 32-bit counter; UsePasskey moves it with a
-- compare-and-set. cloned_at is set once, when an assertion's count went
-- backwards; the credential is refused from then on. Times are INTEGER
-- microseconds since the Unix epoch, UTC.
CREATE TABLE passkeys (
    id               TEXT    PRIMARY KEY NOT NULL,
    user_id          TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id    BLOB    NOT NULL CHECK (length(credential_id) BETWEEN 1 AND 1023),
    public_key       BLOB    NOT NULL CHECK (length(public_key) > 0),
    attestation_type TEXT    NOT NULL,
    aaguid           BLOB    NOT NULL CHECK (length(aaguid) = 16),
    sign_count       INTEGER NOT NULL DEFAULT 0 CHECK (sign_count BETWEEN 0 AND 4294967295),
    transports       TEXT    NOT NULL DEFAULT '[]',
    backup_eligible  INTEGER NOT NULL DEFAULT 0 CHECK (backup_eligible IN (0, 1)),
    backup_state     INTEGER NOT NULL DEFAULT 0 CHECK (backup_state IN (0, 1)),
    user_verified    INTEGER NOT NULL DEFAULT 0 CHECK (user_verified IN (0, 1)),
    name             TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    last_used_at     INTEGER,
    cloned_at        INTEGER
) STRICT;

-- A credential ID names one passkey, whoever holds it (sign-in looks the
-- credential up before it knows the user).
CREATE UNIQUE INDEX passkeys_credential_id_key ON passkeys (credential_id);

-- The passkeys of a user, oldest first.
CREATE INDEX passkeys_user_idx ON passkeys (user_id, created_at, id);
