-- Second factors: MFA devices, backup codes and the one-time codes sent by
-- SMS or email. Times are INTEGER microseconds since the Unix epoch, UTC.
CREATE TABLE mfa_devices (
    id           TEXT    PRIMARY KEY NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type         TEXT    NOT NULL CHECK (type IN ('totp', 'sms', 'email')),
    name         TEXT,
    -- The TOTP secret sealed with the keyring, never the plaintext.
    secret       TEXT,
    phone_number TEXT,
    email        TEXT,
    -- NULL while enrolment is pending.
    confirmed_at INTEGER,
    is_default   INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    -- The last TOTP time step accepted: AcceptTOTPStep moves it forward
    -- only, so each step (each code) is accepted once.
    last_step    INTEGER NOT NULL DEFAULT 0,
    last_used_at INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

-- A user's devices. The index is unique so that mfa_codes can reference a
-- device together with its owner; it also serves every lookup by user.
CREATE UNIQUE INDEX mfa_devices_user_key ON mfa_devices (user_id, id);
-- At most one default device per user.
CREATE UNIQUE INDEX mfa_devices_default_key ON mfa_devices (user_id) WHERE is_default;

-- Backup codes: only a hash of each code is stored. A code is used once
-- (used_at set); generating a new set deletes the old one.
CREATE TABLE mfa_backup_codes (
    id         TEXT    PRIMARY KEY NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL CHECK (code_hash <> ''),
    used_at    INTEGER,
    created_at INTEGER NOT NULL,
    -- Also the index of a user's codes (user_id leads).
    UNIQUE (user_id, code_hash)
) STRICT;

-- One-time codes sent by SMS or email (or held for enrolment
-- confirmation); only a keyed hash of the code is stored. A code sent for a
-- device belongs to the device's owner and goes with the device.
CREATE TABLE mfa_codes (
    id          TEXT    PRIMARY KEY NOT NULL,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id   TEXT,
    channel     TEXT    NOT NULL CHECK (channel IN ('sms', 'email')),
    code_hash   TEXT    NOT NULL CHECK (code_hash <> ''),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER,
    created_at  INTEGER NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES mfa_devices (user_id, id) ON DELETE CASCADE
) STRICT;

-- The latest code of a user, channel and device (AttemptMFACode) and the
-- codes a new one supersedes (CreateMFACode).
CREATE INDEX mfa_codes_user_idx ON mfa_codes (user_id, channel, device_id);
