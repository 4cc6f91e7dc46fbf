ALTER TABLE oauth_clients DROP CONSTRAINT oauth_clients_public_no_secret;
ALTER TABLE oauth_clients DROP COLUMN public;
