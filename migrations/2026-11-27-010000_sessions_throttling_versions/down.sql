ALTER TABLE news DROP COLUMN version;
DROP TABLE signin_failures;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
