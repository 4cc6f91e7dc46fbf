-- Second factors: MFA devices, backup codes and the one-time codes sent by
-- SMS or email.
CREATE TABLE mfa_devices (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type         text        NOT NULL CHECK (type IN ('totp', 'sms', 'email')),
    name         text,
    -- The TOTP secret sealed with the keyring, never the plaintext.
    secret       text,
    phone_number text,
    email        text,
    -- NULL while enrolment is pending.
    confirmed_at timestamptz,
    is_default   boolean     NOT NULL DEFAULT false,
    -- The last TOTP time step accepted: AcceptTOTPStep moves it forward
    -- only, so each step (each code) is accepted once.
    last_step    bigint      NOT NULL DEFAULT 0,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- A user's devices. The index is unique so that mfa_codes can reference a
-- device together with its owner; it also serves every lookup by user.
CREATE UNIQUE INDEX mfa_devices_user_key ON mfa_devices (user_id, id);
-- At most one default device per user.
CREATE UNIQUE INDEX mfa_devices_default_key ON mfa_devices (user_id) WHERE is_default;

-- Backup codes: only a hash of each code is stored. A code is used once
-- (used_at set); generating a new set deletes the old one.
CREATE TABLE mfa_backup_codes (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  text        NOT NULL CHECK (code_hash <> ''),
    used_at    timestamptz,
    created_at timestamptz NOT NULL,
    -- Also the index of a user's codes (user_id leads).
    UNIQUE (user_id, code_hash)
);

-- One-time codes sent by SMS or email (or held for enrolment
-- confirmation); only a keyed hash of the code is stored. A code sent for a
-- device belongs to the device's owner and goes with the device.
CREATE TABLE mfa_codes (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id   uuid,
    channel     text        NOT NULL CHECK (channel IN ('sms', 'email')),
    code_hash   text        NOT NULL CHECK (code_hash <> ''),
    attempts    integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz,
    created_at  timestamptz NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES mfa_devices (user_id, id) ON DELETE CASCADE
);

-- The latest code of a user, channel and device (AttemptMFACode) and the
-- codes a new one supersedes (CreateMFACode).
CREATE INDEX mfa_codes_user_idx ON mfa_codes (user_id, channel, device_id);
