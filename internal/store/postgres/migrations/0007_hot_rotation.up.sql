-- Every refresh updates two token rows (the presented token, and its
-- parent's sealed successor) and the session row. These can be HOT updates
-- (a new row version on the same page, no new index entries) if no indexed
-- column changes and the page has room. So: room on each page for a few
-- new versions, and no index on the columns rotation changes. The partial
-- index on rotated_at (for purging stale sealed successors) went against
-- both; the hourly purge now scans the table for them instead.
ALTER TABLE refresh_tokens SET (fillfactor = 70);
ALTER TABLE sessions SET (fillfactor = 80);
DROP INDEX refresh_tokens_sealed_idx;
