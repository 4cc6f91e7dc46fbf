-- Public clients (RFC 6749 §2.1): mobile and single-page apps, which cannot
-- keep a secret. They have none, and identify themselves by their ID only.
ALTER TABLE oauth_clients ADD COLUMN public boolean NOT NULL DEFAULT false;
ALTER TABLE oauth_clients ADD CONSTRAINT oauth_clients_public_no_secret CHECK (NOT public OR secret_hash IS NULL);
