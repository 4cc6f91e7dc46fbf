ALTER TABLE oauth_clients DROP COLUMN rate_limit_exempt;
ALTER TABLE oauth_clients DROP COLUMN rate_limit_tier;
