-- The password-hashing share of each client address, counted across every replica (issue 14): a
-- row per bcrypt job of an address waiting or running on any replica. Before a job is queued its
-- replica takes a slot with `take_hash_slot` (refused when the address has HASH_QUEUE_MAX_PER_IP
-- live slots: 429), and deletes it by `holder` when the job ends or its request is dropped. A
-- replica that dies leaves its slots behind; each expires at `expires_at` (a lease as long as a
-- request may run, REQUEST_TIMEOUT_SECS) and is no longer counted, and the periodic clean-up
-- deletes it (`db::hash_slots`).
CREATE TABLE hash_slots (
    holder uuid PRIMARY KEY,
    -- The client address share (`domain::client_share`: an IPv4 address, an IPv6 /64).
    client text NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Counting an address's live slots, and the clean-up by age.
CREATE INDEX hash_slots_client_idx ON hash_slots (client, expires_at);
CREATE INDEX hash_slots_expires_at_idx ON hash_slots (expires_at);

-- Takes one of `client`'s `max_slots` slots for `holder`, for `lease`; false (nothing taken) when
-- the address already has that many live ones. One statement, so one round trip: a transaction-
-- scoped advisory lock on the address serialises takers of the same address across replicas (it
-- is released only after the caller's transaction, this statement, has committed), and being
-- VOLATILE, each statement below sees every slot committed before the lock was granted. The
-- address's expired slots are deleted on the way.
CREATE FUNCTION take_hash_slot(client text, holder uuid, max_slots integer, lease interval)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('hash_slots ' || take_hash_slot.client, 0));
    DELETE FROM hash_slots s
        WHERE s.client = take_hash_slot.client AND s.expires_at <= clock_timestamp();
    IF (SELECT count(*) FROM hash_slots s WHERE s.client = take_hash_slot.client) >= max_slots THEN
        RETURN false;
    END IF;
    INSERT INTO hash_slots (holder, client, expires_at)
        VALUES (take_hash_slot.holder, take_hash_slot.client, clock_timestamp() + lease);
    RETURN true;
END
$$;
