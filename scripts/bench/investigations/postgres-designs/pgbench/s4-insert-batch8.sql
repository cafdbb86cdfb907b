-- S4's statement for eight news items at once (one multi-row INSERT, one commit): what batching
-- the creates that arrive together would save PostgreSQL per row. version = 7 marks its rows.
\set n random(1, 99993)
\set u random(1, 10000)
INSERT INTO news (id, title, body, date_created, date_updated, author_id, version) SELECT gen_random_uuid(), t.title, t.body, now(), now(), (SELECT id FROM bench.user_ids WHERE n = :u), 7 FROM bench.news_text t WHERE t.n BETWEEN :n AND :n + 7 RETURNING id, title, body, date_created, date_updated, author_id, version;
