ALTER TABLE sessions DROP COLUMN scope;
ALTER TABLE sessions DROP COLUMN audience;
DROP TABLE apis;
