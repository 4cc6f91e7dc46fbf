DROP TABLE oauth_clients;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
