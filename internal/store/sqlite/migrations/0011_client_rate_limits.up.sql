-- Rate limits per application (issue 15): the tier whose limits a client's
-- requests are counted under, and a flag that exempts a trusted client.
ALTER TABLE oauth_clients ADD COLUMN rate_limit_tier TEXT CHECK (rate_limit_tier <> '');
ALTER TABLE oauth_clients ADD COLUMN rate_limit_exempt INTEGER NOT NULL DEFAULT 0 CHECK (rate_limit_exempt IN (0, 1));
