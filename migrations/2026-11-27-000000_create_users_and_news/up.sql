-- Users, their credentials (kept apart so that no query for a user can carry the hash by accident),
-- and news.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    name text CHECK (char_length(name) BETWEEN 1 AND 100),
    -- A text with a CHECK rather than an enum type: adding a role is one ALTER, and diesel needs no
    -- custom SQL type.
    role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Emails are unique case-insensitively; lookups use lower(email) so that this index serves them.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE user_credentials (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    password_hash text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE news (
    id uuid PRIMARY KEY,
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 100000),
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now(),
    author_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE
);

-- Keyset pagination walks (date_created, id) in either direction.
CREATE INDEX news_date_created_id_idx ON news (date_created, id);
CREATE INDEX news_author_date_created_id_idx ON news (author_id, date_created, id);

-- Full-text search over title and body. An expression index rather than a generated tsvector column:
-- the query repeats the same expression (see db::news), and the schema stays free of a type diesel
-- does not know. (Superseded by migration 2026-11-27-020000: a stored tsvector column, decision log
-- D6 in BENCHMARKS.md.)
CREATE INDEX news_fulltext_idx ON news USING gin (to_tsvector('english', title || ' ' || body));
