-- Public clients (RFC 6749 §2.1): mobile and single-page apps, which cannot
-- keep a secret. They have none, and identify themselves by their ID only.
-- (SQLite adds a column with a CHECK only when it is true of the rows there
-- are: every existing client is confidential, public = 0.)
ALTER TABLE oauth_clients ADD COLUMN public INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1) AND (public = 0 OR secret_hash IS NULL));
