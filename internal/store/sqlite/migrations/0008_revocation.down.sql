DROP TABLE access_denials;
DROP TABLE revocation_state;
