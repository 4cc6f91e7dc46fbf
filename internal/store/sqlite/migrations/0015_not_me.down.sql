DROP TABLE not_me_tokens;
ALTER TABLE users DROP COLUMN password_reset_required_at;
