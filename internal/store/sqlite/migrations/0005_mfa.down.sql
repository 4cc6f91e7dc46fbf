DROP TABLE mfa_codes;
DROP TABLE mfa_backup_codes;
DROP TABLE mfa_devices;
