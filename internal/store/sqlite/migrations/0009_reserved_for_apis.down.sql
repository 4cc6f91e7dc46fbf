-- Version 9 is reserved for the registered APIs (RFC 8707 audiences, issue 14
-- item 2), which are built in parallel with 0010; migrations must run without
-- gaps, so this no-op holds the number until that migration replaces it.
SELECT 1;
