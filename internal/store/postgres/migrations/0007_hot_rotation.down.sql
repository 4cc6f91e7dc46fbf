CREATE INDEX refresh_tokens_sealed_idx ON refresh_tokens (rotated_at) WHERE sealed_successor IS NOT NULL;
ALTER TABLE sessions RESET (fillfactor);
ALTER TABLE refresh_tokens RESET (fillfactor);
