-- Gatehouse's own administration API moves onto RBAC (issue 18): the
-- permissions each admin route requires, the built-in roles (fixed IDs,
-- internal/rbac's BuiltinRoles) and, so that every existing
-- administrator keeps their access, a global grant of `admin` to each
-- user flagged is_admin. Startup adds a built-in permission or role a
-- later release defines; this migration runs once.
INSERT INTO permissions (name, description, created_at) VALUES
    ('*', 'Everything', now()),
    ('apis:read', 'Read registered APIs (resource servers)', now()),
    ('apis:write', 'Register, change and delete APIs', now()),
    ('audit:read', 'Read the audit trail', now()),
    ('clients:read', 'List OAuth clients', now()),
    ('clients:write', 'Create, change and delete OAuth clients', now()),
    ('organizations:read', 'Read organisations and their members', now()),
    ('organizations:write', 'Create, change and delete organisations and their members', now()),
    ('rate-limits:*', 'Every action on rate-limits', now()),
    ('rate-limits:read', 'Read the rate-limit policy and its refusals', now()),
    ('rate-limits:write', 'Lift rate-limit blocks', now()),
    ('rbac:read', 'Read permissions, roles, grants and access reports', now()),
    ('rbac:write', 'Manage permissions, roles and grants', now()),
    ('security:*', 'Every action on security', now()),
    ('security:read', 'Read security events and incidents', now()),
    ('security:write', 'Resolve security incidents', now()),
    ('sessions:*', 'Every action on sessions', now()),
    ('sessions:read', 'List users'' sessions', now()),
    ('sessions:write', 'End users'' sessions', now()),
    ('tokens:revoke', 'Revoke every token issued before a time (the kill switch)', now()),
    ('users:*', 'Every action on users', now()),
    ('users:read', 'Read user accounts and their profiles', now()),
    ('users:write', 'Change, disable, enable, unlock and delete user accounts', now()),
    ('webhooks:read', 'Read webhook endpoints and deliveries', now()),
    ('webhooks:write', 'Create, change, test and replay webhook endpoints', now())
ON CONFLICT (name) DO NOTHING;

INSERT INTO roles (id, name, description, organization_id, created_at, updated_at) VALUES
    ('0192f000-0000-7000-8000-000000000001', 'admin', 'Built-in: every permission', NULL, now(), now()),
    ('0192f000-0000-7000-8000-000000000002', 'user-admin', 'Built-in: users and their sessions', NULL, now(), now()),
    ('0192f000-0000-7000-8000-000000000003', 'security-admin', 'Built-in: security events and incidents, rate limits, the kill switch', NULL, now(), now()),
    ('0192f000-0000-7000-8000-000000000004', 'auditor', 'Built-in: read-only access to users, the audit trail and access reports', NULL, now(), now());

INSERT INTO role_permissions (role_id, effect, permission, condition, position) VALUES
    ('0192f000-0000-7000-8000-000000000001', 'allow', '*', NULL, 0),
    ('0192f000-0000-7000-8000-000000000002', 'allow', 'users:*', NULL, 0),
    ('0192f000-0000-7000-8000-000000000002', 'allow', 'sessions:*', NULL, 1),
    ('0192f000-0000-7000-8000-000000000003', 'allow', 'security:*', NULL, 0),
    ('0192f000-0000-7000-8000-000000000003', 'allow', 'rate-limits:*', NULL, 1),
    ('0192f000-0000-7000-8000-000000000003', 'allow', 'tokens:revoke', NULL, 2),
    ('0192f000-0000-7000-8000-000000000003', 'allow', 'sessions:read', NULL, 3),
    ('0192f000-0000-7000-8000-000000000003', 'allow', 'users:read', NULL, 4),
    ('0192f000-0000-7000-8000-000000000004', 'allow', 'users:read', NULL, 0),
    ('0192f000-0000-7000-8000-000000000004', 'allow', 'sessions:read', NULL, 1),
    ('0192f000-0000-7000-8000-000000000004', 'allow', 'audit:read', NULL, 2),
    ('0192f000-0000-7000-8000-000000000004', 'allow', 'rbac:read', NULL, 3),
    ('0192f000-0000-7000-8000-000000000004', 'allow', 'security:read', NULL, 4);

INSERT INTO role_grants (id, user_id, role_id, organization_id, created_at)
SELECT gen_random_uuid(), id, '0192f000-0000-7000-8000-000000000001', NULL, now()
FROM users WHERE is_admin AND deleted_at IS NULL;
