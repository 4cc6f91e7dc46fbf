-- The PostgreSQL migration of this number makes rotation's updates HOT
-- (heap-only) updates; SQLite has no such thing, and nothing changes here.
SELECT 1;
