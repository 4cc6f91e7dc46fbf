-- Risk scoring (issue 17): each user's behavioural model, a JSON document
-- written by internal/risk. Times are INTEGER microseconds since the Unix
-- epoch, UTC.
CREATE TABLE user_risk_profiles (
    user_id    TEXT    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    profile    TEXT    NOT NULL CHECK (json_valid(profile) AND json_type(profile) = 'object'),
    updated_at INTEGER NOT NULL
);
