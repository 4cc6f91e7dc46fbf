-- Organisations (groups of users with a policy) and their members.
CREATE TABLE organizations (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL CHECK (name <> ''),
    slug       text        NOT NULL UNIQUE CHECK (slug <> ''),
    policy     jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(policy) = 'object'),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE organization_members (
    org_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

-- The organisations of a user.
CREATE INDEX organization_members_user_idx ON organization_members (user_id);
