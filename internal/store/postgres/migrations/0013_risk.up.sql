-- Risk scoring (issue 17): each user's behavioural model, a JSON document
-- written by internal/risk. json, not jsonb: the document comes back as
-- the application wrote it.
CREATE TABLE user_risk_profiles (
    user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    profile    json        NOT NULL CHECK (json_typeof(profile) = 'object'),
    updated_at timestamptz NOT NULL
);

-- Where a sign-in came from (NULL when unknown) and its risk assessment:
-- the score (NULL when it was not scored) and the reason codes, strongest
-- first.
ALTER TABLE sessions ADD COLUMN country text;
ALTER TABLE sessions ADD COLUMN city text;
ALTER TABLE sessions ADD COLUMN asn bigint CHECK (asn > 0 AND asn <= 4294967295);
ALTER TABLE sessions ADD COLUMN risk_score smallint CHECK (risk_score BETWEEN 0 AND 100);
ALTER TABLE sessions ADD COLUMN risk_reasons text[] NOT NULL DEFAULT '{}';
