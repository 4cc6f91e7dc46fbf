-- Removes the built-in roles with their grants; the permissions stay
-- only where a role still uses them.
DELETE FROM role_grants WHERE role_id IN ('0192f000-0000-7000-8000-000000000001', '0192f000-0000-7000-8000-000000000002', '0192f000-0000-7000-8000-000000000003', '0192f000-0000-7000-8000-000000000004');
DELETE FROM role_parents WHERE parent_id IN ('0192f000-0000-7000-8000-000000000001', '0192f000-0000-7000-8000-000000000002', '0192f000-0000-7000-8000-000000000003', '0192f000-0000-7000-8000-000000000004');
DELETE FROM roles WHERE id IN ('0192f000-0000-7000-8000-000000000001', '0192f000-0000-7000-8000-000000000002', '0192f000-0000-7000-8000-000000000003', '0192f000-0000-7000-8000-000000000004');
DELETE FROM permissions WHERE name IN ('*', 'apis:read', 'apis:write', 'audit:read', 'clients:read', 'clients:write', 'organizations:read', 'organizations:write', 'rate-limits:*', 'rate-limits:read', 'rate-limits:write', 'rbac:read', 'rbac:write', 'security:*', 'security:read', 'security:write', 'sessions:*', 'sessions:read', 'sessions:write', 'tokens:revoke', 'users:*', 'users:read', 'users:write', 'webhooks:read', 'webhooks:write')
    AND name NOT IN (SELECT permission FROM role_permissions);
