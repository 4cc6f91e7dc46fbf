-- Role-based access control (issue 18): registered permissions, roles
-- (global or of an organisation) with the permissions they allow or deny
-- and the parent roles they inherit from, and grants of roles to users.
--
-- A role's permissions and parents are child tables, not JSON columns:
-- their foreign keys let the database itself refuse to delete a permission
-- a role uses, or a role that is granted or is another's parent (no ON
-- DELETE: the store maps the violation to a conflict, whatever runs
-- concurrently), keep every parent an existing role, and let a recursive
-- query walk the parents by index.
CREATE TABLE permissions (
    name        text        PRIMARY KEY CHECK (name <> ''),
    description text,
    created_at  timestamptz NOT NULL
);

-- A role of an organisation goes with it; its grants and links are within
-- that organisation, so they go too.
CREATE TABLE roles (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL CHECK (name <> ''),
    description     text,
    organization_id uuid        REFERENCES organizations (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- Names are unique among an organisation's roles, and among the global
-- roles.
CREATE UNIQUE INDEX roles_org_name_idx ON roles (organization_id, name) WHERE organization_id IS NOT NULL;
CREATE UNIQUE INDEX roles_global_name_idx ON roles (name) WHERE organization_id IS NULL;
-- The listing, oldest first.
CREATE INDEX roles_created_idx ON roles (created_at, id);

-- position keeps the order of a role's Allow and Deny lists.
CREATE TABLE role_permissions (
    role_id    uuid    NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    effect     text    NOT NULL CHECK (effect IN ('allow', 'deny')),
    permission text    NOT NULL REFERENCES permissions (name),
    condition  text,
    position   integer NOT NULL CHECK (position >= 0),
    PRIMARY KEY (role_id, effect, permission)
);

-- Whether a permission is in use.
CREATE INDEX role_permissions_permission_idx ON role_permissions (permission);

-- position keeps the order of a role's Parents. organization_id is the
-- role's (role_id's), copied so that deleting an organisation removes the
-- links among its roles in its own cascade: PostgreSQL checks parent_id's
-- key as it deletes each role of the organisation, which may come before
-- the cascade of the role that named it as a parent.
CREATE TABLE role_parents (
    role_id         uuid    NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    parent_id       uuid    NOT NULL REFERENCES roles (id),
    organization_id uuid    REFERENCES organizations (id) ON DELETE CASCADE,
    position        integer NOT NULL CHECK (position >= 0),
    PRIMARY KEY (role_id, parent_id),
    CHECK (role_id <> parent_id)
);

-- The children of a role; the links of an organisation (its cascade).
CREATE INDEX role_parents_parent_idx ON role_parents (parent_id);
CREATE INDEX role_parents_organization_idx ON role_parents (organization_id);

-- created_by is who made the grant, kept after its actor is gone.
CREATE TABLE role_grants (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id         uuid        NOT NULL REFERENCES roles (id),
    organization_id uuid        REFERENCES organizations (id) ON DELETE CASCADE,
    valid_from      timestamptz,
    valid_until     timestamptz,
    condition       text,
    created_at      timestamptz NOT NULL,
    created_by      text,
    CHECK (valid_from < valid_until)
);

-- The grants of a user (a permission check) and of a role ("who can").
CREATE INDEX role_grants_user_idx ON role_grants (user_id, created_at, id);
CREATE INDEX role_grants_role_idx ON role_grants (role_id, created_at, id);
-- The grants of an organisation (its cascade).
CREATE INDEX role_grants_organization_idx ON role_grants (organization_id);
-- The role.expired job.
CREATE INDEX role_grants_valid_until_idx ON role_grants (valid_until) WHERE valid_until IS NOT NULL;
