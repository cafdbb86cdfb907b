-- Account self-service and mail (issue 13).

-- When the owner of the account's current email proved they read mail sent to it; NULL until then.
-- Accounts made before this migration start unverified.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- One-time tokens sent by mail: password reset, email verification, email change. Stored only as
-- the SHA-256 of the token (256 random bits); the token itself exists only in the mail (and in
-- `mail_outbox.body` until it is sent). A user has at most one live token per purpose: issuing a
-- new one deletes the older (it is superseded), and using one deletes it, so a used, superseded or
-- unknown token are the same absence.
CREATE TABLE account_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose text NOT NULL CHECK (purpose IN ('password_reset', 'email_verify', 'email_change')),
    -- For `email_change`: the address to switch to once confirmed, and its canonical form.
    new_email text CHECK (char_length(new_email) BETWEEN 3 AND 254),
    new_email_canonical text CHECK (octet_length(new_email_canonical) <= 1024),
    -- For `email_verify`: the address the token proves, so a token sent before an email change
    -- cannot verify the address after it.
    email_canonical text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CHECK ((purpose = 'email_change') = (new_email IS NOT NULL AND new_email_canonical IS NOT NULL))
);
CREATE UNIQUE INDEX account_tokens_user_purpose_key ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);

-- Every mail, written in the transaction of the change that causes it and sent by a worker in
-- each replica (`FOR UPDATE SKIP LOCKED`, so replicas share the work and no mail goes twice at
-- once). `body` is erased once the mail is sent or given up: it may carry a one-time token.
CREATE TABLE mail_outbox (
    id uuid PRIMARY KEY,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the mail is next due: now for a new one; after a failure, the backoff; while a worker
    -- sends it, the end of its lease (a worker that dies mid-send leaves it to another).
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    failed_at timestamptz,
    last_error text
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
