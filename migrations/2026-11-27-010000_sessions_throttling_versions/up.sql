-- Sessions that can end (refresh-token families), sign-in throttling shared by every replica, and a
-- version per news item for entity tags.

-- One row per sign-in. Every refresh token descends from one; revoking the family ends the session
-- at once, since access tokens name their family and every request checks it.
CREATE TABLE refresh_families (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The absolute session lifetime: no refresh extends a family past it.
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX refresh_families_user_id_idx ON refresh_families (user_id);

-- Refresh tokens, stored only as their SHA-256. `rotated_at` is set when a token is exchanged; a
-- second exchange of the same token is reuse, and revokes its family.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id uuid NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz
);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);

-- Failed sign-ins per key (`email:<lower(email)>` or `ip:<address>`) in a fixed window.
CREATE TABLE signin_failures (
    key text PRIMARY KEY,
    window_started_at timestamptz NOT NULL,
    failures integer NOT NULL CHECK (failures >= 0)
);

-- Bumped by every write; the entity tag of a news item is its version.
ALTER TABLE news ADD COLUMN version bigint NOT NULL DEFAULT 1;
