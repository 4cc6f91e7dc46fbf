DROP TABLE one_time_tokens;
DROP TABLE identities;
DROP TABLE users;
