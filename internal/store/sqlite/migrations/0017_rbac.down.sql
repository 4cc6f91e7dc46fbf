DROP TABLE role_grants;
DROP TABLE role_parents;
DROP TABLE role_permissions;
DROP TABLE roles;
DROP TABLE permissions;
