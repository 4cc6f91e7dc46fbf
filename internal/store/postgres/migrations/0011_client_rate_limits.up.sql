-- Rate limits per application (issue 15): the tier whose limits a client's
-- requests are counted under, and a flag that exempts a trusted client.
ALTER TABLE oauth_clients ADD COLUMN rate_limit_tier text CHECK (rate_limit_tier <> '');
ALTER TABLE oauth_clients ADD COLUMN rate_limit_exempt boolean NOT NULL DEFAULT false;
