-- Idempotency keys of `POST /news` (issue 12): the first response given to a request with a key,
-- kept for 24 hours so that a retry on any replica gets it again instead of creating a second item.
--
-- A row is claimed (inserted, its response still NULL), the news item created and the response
-- recorded in ONE transaction: no committed row lacks its response, no news item created with a key
-- lacks its row, and a request that fails or whose server dies leaves no row, so its key stays free
-- (there is no stale claim to take over). While that transaction runs, a transaction-scoped advisory
-- lock on the key tells a concurrent retry to answer 409 rather than wait (`db::idempotency`).
CREATE TABLE idempotency_keys (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key text NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 255),
    -- SHA-256 of the request (method, path and the parsed body): a retry must match it.
    request_hash bytea NOT NULL CHECK (octet_length(request_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The response, replayed byte for byte; NULL only inside the claiming transaction.
    response_status smallint CHECK (response_status BETWEEN 200 AND 299),
    response_body bytea,
    response_location text,
    response_etag text,
    PRIMARY KEY (user_id, key)
);

-- The periodic clean-up deletes by age.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
