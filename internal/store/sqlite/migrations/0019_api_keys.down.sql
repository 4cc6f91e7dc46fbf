DROP TABLE api_key_usage;
DROP TABLE api_keys;
DROP TABLE service_accounts;
ALTER TABLE users DROP COLUMN kind;
