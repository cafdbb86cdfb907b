-- One canonical form per email (issue 11). Uniqueness, every look-up and every throttle key use
-- `email_canonical`, which the server computes (`domain::canonical_email`: trimmed, NFKC, fully
-- case-folded, the dot of `İ` dropped) and stores; PostgreSQL's `lower()` disagreed with Rust on
-- U+0130 and folds neither `ß` nor `ẞ` to `ss`, so SQL no longer decides what is one address.
--
-- Rows that exist before this migration are filled in by the server, in Rust, right after it
-- migrates (`db::users::fill_missing_canonical_emails`): one definition of the form, whatever the
-- database's collation. Until then a row is NULL, which the unique index ignores and no look-up
-- matches; the partial index finds those rows without a scan of the table.
ALTER TABLE users
    ADD COLUMN email_canonical text CHECK (octet_length(email_canonical) <= 1024);
CREATE UNIQUE INDEX users_email_canonical_key ON users (email_canonical);
CREATE INDEX users_email_canonical_missing_idx ON users (id) WHERE email_canonical IS NULL;
DROP INDEX users_email_lower_key;

-- `signin_failures` now also counts sign-ups per client address (keys `signup-ip:…`); its keys
-- are `ip:<address>`, `account:<canonical email>` and `account-ip:<address> <canonical email>`.
