DROP TABLE user_risk_profiles;
