ALTER TABLE sessions DROP COLUMN audience;
DROP TABLE apis;
