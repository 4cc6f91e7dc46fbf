ALTER TABLE sessions DROP COLUMN risk_reasons;
ALTER TABLE sessions DROP COLUMN risk_score;
ALTER TABLE sessions DROP COLUMN asn;
ALTER TABLE sessions DROP COLUMN city;
ALTER TABLE sessions DROP COLUMN country;
DROP TABLE user_risk_profiles;
