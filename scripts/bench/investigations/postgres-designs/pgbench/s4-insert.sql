-- S4's statement (insert one news item, returning it) with a seeded text of realistic length.
-- version = 7 marks the rows it adds, so that they can be deleted afterwards.
\set n random(1, 100000)
\set u random(1, 10000)
INSERT INTO news (id, title, body, date_created, date_updated, author_id, version) SELECT gen_random_uuid(), t.title, t.body, now(), now(), (SELECT id FROM bench.user_ids WHERE n = :u), 7 FROM bench.news_text t WHERE t.n = :n RETURNING id, title, body, date_created, date_updated, author_id, version;
