-- Risk scoring (issue 17): each user's behavioural model, a JSON document
-- written by internal/risk. Times are INTEGER microseconds since the Unix
-- epoch, UTC.
CREATE TABLE user_risk_profiles (
    user_id    TEXT    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    profile    TEXT    NOT NULL CHECK (json_valid(profile) AND json_type(profile) = 'object'),
    updated_at INTEGER NOT NULL
);

-- Where a sign-in came from (NULL when unknown) and its risk assessment:
-- the score (NULL when it was not scored) and the reason codes, strongest
-- first, as a JSON array.
ALTER TABLE sessions ADD COLUMN country TEXT;
ALTER TABLE sessions ADD COLUMN city TEXT;
ALTER TABLE sessions ADD COLUMN asn INTEGER CHECK (asn > 0 AND asn <= 4294967295);
ALTER TABLE sessions ADD COLUMN risk_score INTEGER CHECK (risk_score BETWEEN 0 AND 100);
ALTER TABLE sessions ADD COLUMN risk_reasons TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(risk_reasons) AND json_type(risk_reasons) = 'array');
