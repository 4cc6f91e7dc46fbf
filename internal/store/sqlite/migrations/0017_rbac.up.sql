-- Role-based access control (issue 18): registered permissions, roles
-- (global or of an organisation) with the permissions they allow or deny
-- and the parent roles they inherit from, and grants of roles to users.
-- Times are INTEGER microseconds since the Unix epoch, UTC.
--
-- A role's permissions and parents are child tables, not JSON columns:
-- their foreign keys let the database itself refuse to delete a permission
-- a role uses, or a role that is granted or is another's parent (no ON
-- DELETE: the store maps the violation to a conflict, whatever runs
-- concurrently), keep every parent an existing role, and let a recursive
-- query walk the parents by index.
CREATE TABLE permissions (
    name        TEXT    PRIMARY KEY NOT NULL CHECK (name <> ''),
    description TEXT,
    created_at  INTEGER NOT NULL
) STRICT;

-- A role of an organisation goes with it; its grants and links are within
-- that organisation, so they go too.
CREATE TABLE roles (
    id              TEXT    PRIMARY KEY NOT NULL,
    name            TEXT    NOT NULL CHECK (name <> ''),
    description     TEXT,
    organization_id TEXT    REFERENCES organizations (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- Names are unique among an organisation's roles, and among the global
-- roles.
CREATE UNIQUE INDEX roles_org_name_idx ON roles (organization_id, name) WHERE organization_id IS NOT NULL;
CREATE UNIQUE INDEX roles_global_name_idx ON roles (name) WHERE organization_id IS NULL;
-- The listing, oldest first.
CREATE INDEX roles_created_idx ON roles (created_at, id);

-- position keeps the order of a role's Allow and Deny lists.
CREATE TABLE role_permissions (
    role_id    TEXT    NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    effect     TEXT    NOT NULL CHECK (effect IN ('allow', 'deny')),
    permission TEXT    NOT NULL REFERENCES permissions (name),
    condition  TEXT,
    position   INTEGER NOT NULL CHECK (position >= 0),
    PRIMARY KEY (role_id, effect, permission)
) STRICT;

-- Whether a permission is in use.
CREATE INDEX role_permissions_permission_idx ON role_permissions (permission);

-- position keeps the order of a role's Parents. organization_id is the
-- role's (role_id's), copied so that deleting an organisation removes the
-- links among its roles in its own cascade, as on PostgreSQL (which checks
-- parent_id's key as it deletes each role of the organisation).
CREATE TABLE role_parents (
    role_id         TEXT    NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    parent_id       TEXT    NOT NULL REFERENCES roles (id),
    organization_id TEXT    REFERENCES organizations (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL CHECK (position >= 0),
    PRIMARY KEY (role_id, parent_id),
    CHECK (role_id <> parent_id)
) STRICT;

-- The children of a role; the links of an organisation (its cascade).
CREATE INDEX role_parents_parent_idx ON role_parents (parent_id);
CREATE INDEX role_parents_organization_idx ON role_parents (organization_id);

-- created_by is who made the grant, kept after its actor is gone.
CREATE TABLE role_grants (
    id              TEXT    PRIMARY KEY NOT NULL,
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id         TEXT    NOT NULL REFERENCES roles (id),
    organization_id TEXT    REFERENCES organizations (id) ON DELETE CASCADE,
    valid_from      INTEGER,
    valid_until     INTEGER,
    condition       TEXT,
    created_at      INTEGER NOT NULL,
    created_by      TEXT,
    CHECK (valid_from < valid_until)
) STRICT;

-- The grants of a user (a permission check) and of a role ("who can").
CREATE INDEX role_grants_user_idx ON role_grants (user_id, created_at, id);
CREATE INDEX role_grants_role_idx ON role_grants (role_id, created_at, id);
-- The grants of an organisation (its cascade).
CREATE INDEX role_grants_organization_idx ON role_grants (organization_id);
-- The role.expired job.
CREATE INDEX role_grants_valid_until_idx ON role_grants (valid_until) WHERE valid_until IS NOT NULL;
