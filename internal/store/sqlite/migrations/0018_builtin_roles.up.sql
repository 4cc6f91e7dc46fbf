-- Gatehouse's own administration API moves onto RBAC (issue 18): the
-- permissions each admin route requires, the built-in roles (fixed IDs,
-- internal/rbac's BuiltinRoles) and, so that every existing
-- administrator keeps their access, a global grant of `admin` to each
-- user flagged is_admin. Startup adds a built-in permission or role a
-- later release defines; this migration runs once.
INSERT INTO permissions (name, description, created_at) VALUES
    ('*', 'Everything', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('apis:read', 'Read registered APIs (resource servers)', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('apis:write', 'Register, change and delete APIs', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('audit:read', 'Read the audit trail', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('clients:read', 'List OAuth clients', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('clients:write', 'Create, change and delete OAuth clients', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('organizations:read', 'Read organisations and their members', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('organizations:write', 'Create, change and delete organisations and their members', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('rate-limits:*', 'Every action on rate-limits', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('rate-limits:read', 'Read the rate-limit policy and its refusals', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('rate-limits:write', 'Lift rate-limit blocks', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('rbac:read', 'Read permissions, roles, grants and access reports', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('rbac:write', 'Manage permissions, roles and grants', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('security:*', 'Every action on security', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('security:read', 'Read security events and incidents', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('security:write', 'Resolve security incidents', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('sessions:*', 'Every action on sessions', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('sessions:read', 'List users'' sessions', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('sessions:write', 'End users'' sessions', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('tokens:revoke', 'Revoke every token issued before a time (the kill switch)', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('users:*', 'Every action on users', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('users:read', 'Read user accounts and their profiles', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('users:write', 'Change, disable, enable, unlock and delete user accounts', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('webhooks:read', 'Read webhook endpoints and deliveries', CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('webhooks:write', 'Create, change, test and replay webhook endpoints', CAST(unixepoch('subsec') * 1000000 AS INTEGER))
ON CONFLICT (name) DO NOTHING;

INSERT INTO roles (id, name, description, organization_id, created_at, updated_at) VALUES
    ('0192f000-0000-7000-8000-000000000001', 'admin', 'Built-in: every permission', NULL, CAST(unixepoch('subsec') * 1000000 AS INTEGER), CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('0192f000-0000-7000-8000-000000000002', 'user-admin', 'Built-in: users and their sessions', NULL, CAST(unixepoch('subsec') * 1000000 AS INTEGER), CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('0192f000-0000-7000-8000-000000000003', 'security-admin', 'Built-in: security events and incidents, rate limits, the kill switch', NULL, CAST(unixepoch('subsec') * 1000000 AS INTEGER), CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
    ('0192f000-0000-7000-8000-000000000004', 'auditor', 'Built-in: read-only access to users, the audit trail and access reports', NULL, CAST(unixepoch('subsec') * 1000000 AS INTEGER), CAST(unixepoch('subsec') * 1000000 AS INTEGER));

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
SELECT lower(substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-' ||
             substr('89ab', 1 + (abs(random()) % 4), 1) || substr(h, 18, 3) || '-' || substr(h, 21, 12)),
       id, '0192f000-0000-7000-8000-000000000001', NULL, CAST(unixepoch('subsec') * 1000000 AS INTEGER)
FROM (SELECT id, hex(randomblob(16)) AS h FROM users WHERE is_admin = 1 AND deleted_at IS NULL);
