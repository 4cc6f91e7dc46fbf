-- Organisations (groups of users with a policy) and their members. Times
-- are INTEGER microseconds since the Unix epoch, UTC.
CREATE TABLE organizations (
    id         TEXT    PRIMARY KEY NOT NULL,
    name       TEXT    NOT NULL CHECK (name <> ''),
    slug       TEXT    NOT NULL UNIQUE CHECK (slug <> ''),
    policy     TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(policy) AND json_type(policy) = 'object'),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE organization_members (
    org_id     TEXT    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
) STRICT;

-- The organisations of a user.
CREATE INDEX organization_members_user_idx ON organization_members (user_id);
