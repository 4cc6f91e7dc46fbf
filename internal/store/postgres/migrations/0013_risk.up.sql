-- Risk scoring (issue 17): each user's behavioural model, a JSON document
-- written by internal/risk. json, not jsonb: the document comes back as
-- the application wrote it.
CREATE TABLE user_risk_profiles (
    user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    profile    json        NOT NULL CHECK (json_typeof(profile) = 'object'),
    updated_at timestamptz NOT NULL
);
