-- S1 as one statement: the session check and the news item in one round trip. No row: the
-- session has ended (401); a row with a null news id: no such news item (404).
\set n random(1, 100000)
\set s random(1, 10000)
SELECT u.id, u.email, u.name, u.role, u.created_at, n.id, n.title, n.body, n.date_created, n.date_updated, n.author_id, n.version FROM users u JOIN refresh_families f ON f.user_id = u.id AND f.id = (SELECT family_id FROM bench.sessions WHERE n = :s) AND f.revoked_at IS NULL AND f.expires_at > CURRENT_TIMESTAMP LEFT JOIN news n ON n.id = (SELECT id FROM bench.news_ids WHERE n = :n) WHERE u.id = (SELECT user_id FROM bench.sessions WHERE n = :s);
